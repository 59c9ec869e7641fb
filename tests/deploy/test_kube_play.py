"""The Deployment of deploy/k8s run for real: `podman kube play` on the image built from the Dockerfile (the
image fixture of tests/deploy/test_container.py), called with tritonclient over the Open Inference Protocol,
over HTTP and over gRPC.

What differs from a cluster, and why: one replica; the host network, so the container binds 127.0.0.1:<free
port> (TOYSEQ_BIND in the ConfigMap) and its `ports` go (podman refuses port mappings on the host network);
the probes name that port; the Secret is created with `podman secret create` in the form podman 4's kube play
reads for secretKeyRef (a JSON map of base64 values), and it and the emptyDir get names of their own. Everything
else (env from the ConfigMap, the API key from the Secret, non-root, read-only root filesystem with /tmp an
emptyDir, resource limits) is the manifest's own.

    source ../shared/container/prepare.sh && .venv/bin/python -m pytest tests/deploy/test_kube_play.py -s
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import orjson
import pytest
import requests
import yaml

from benchmarks.harness.server import free_port
from tests.support.container import BUILD_TIMEOUT, READY_TIMEOUT
from tests.support.k8s import pod_manifest

pytestmark = pytest.mark.slow
TASK = "echo-lag"


BIG_ROWS, BIG_LENGTH = 300, 400  # near the largest echo batch the cost budget (TOYSEQ_MAX_REQUEST_SECONDS) admits


def cgroup_memory(podman, name: str) -> dict:
    """The container's memory in MiB: now and the peak so far (cgroup v2, or v1 on a hybrid host)."""
    for now, peak in (
        ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.peak"),
        ("/sys/fs/cgroup/memory/memory.usage_in_bytes", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"),
    ):
        read = podman.run("exec", name, "cat", now, peak, check=False)
        if read.returncode == 0:
            current, top = (int(v) / 2**20 for v in read.stdout.split())
            return {"current_mib": round(current, 1), "peak_mib": round(top, 1)}
    pytest.fail(f"no cgroup memory files in the container: {read.stderr}")


@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_deployment_runs_under_podman_kube_play_and_answers_tritonclient(engine, image, tmp_path):
    if engine.name != "podman":
        pytest.skip("kube play needs podman")
    httpclient = pytest.importorskip("tritonclient.http", reason="pip install -e '.[test]' (tritonclient[http])")
    grpcclient = pytest.importorskip("tritonclient.grpc", reason="pip install -e '.[test]' (tritonclient[grpc])")
    from tritonclient.utils import InferenceServerException

    port, grpc_port, suffix = free_port(), free_port(), uuid.uuid4().hex[:8]
    docs, secret = pod_manifest(image, port, suffix, grpc_port)
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    api_key = secret["stringData"]["api-key"]
    secret_name = f"toyseq-key-{suffix}"
    payload = json.dumps({k: base64.b64encode(v.encode()).decode() for k, v in secret["stringData"].items()})
    subprocess.run(
        [engine.name, "secret", "create", secret_name, "-"],
        input=payload,
        text=True,
        env=engine.env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    name = f"{docs[1]['metadata']['name']}-pod-0-toyseq"
    try:
        started = time.monotonic()
        engine.run("kube", "play", "--network", "host", str(path), timeout=120)
        url = f"http://127.0.0.1:{port}"
        deadline = started + READY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or workers still loading models
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"not ready in {READY_TIMEOUT} s:\n{engine.run('logs', name, check=False).stderr[-3000:]}")
        print(f"\nkube play -> /v2/health/ready 200: {time.monotonic() - started:.1f} s")

        # the manifest's security settings are in force
        inspect = json.loads(engine.run("inspect", name).stdout)[0]
        assert inspect["HostConfig"]["ReadonlyRootfs"] is True
        assert inspect["Config"]["User"].split(":")[0] == "10001"
        assert inspect["HostConfig"]["Memory"] == 512 * 2**20
        assert engine.run("exec", name, "touch", "/app/x", check=False).returncode != 0  # read-only
        assert engine.run("exec", name, "touch", "/tmp/x", check=False).returncode == 0  # the emptyDir

        client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}", network_timeout=30.0)
        try:
            assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(TASK)
            meta = client.get_model_metadata(TASK)
            assert meta["inputs"][0]["name"] == "input" and meta["inputs"][0]["datatype"] == "INT64"
            rows = np.array([[5, 3, 8, 1, 9], [2, 7, 7, 0, 4]], dtype=np.int64)
            tensor = httpclient.InferInput("input", list(rows.shape), "INT64")
            tensor.set_data_from_numpy(rows)  # binary tensor data, tritonclient's default
            result = client.infer(TASK, [tensor], headers={"Authorization": f"Bearer {api_key}"})
            native = requests.post(
                f"{url}/tasks/{TASK}/predict",
                json={"inputs": rows.tolist()},
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=30,
            ).json()
            assert result.as_numpy("output").tolist() == native["outputs"]
            # the key from the Secret is required
            with pytest.raises(InferenceServerException, match="API key"):
                client.infer(TASK, [tensor])
        finally:
            client.close()
        # the same over gRPC, from the same pod: tritonclient.grpc, the Secret's key in `authorization` metadata
        client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{grpc_port}")
        try:
            assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(TASK)
            tensor = grpcclient.InferInput("input", list(rows.shape), "INT64")
            tensor.set_data_from_numpy(rows)
            result = client.infer(TASK, [tensor], headers={"authorization": f"Bearer {api_key}"})
            assert result.as_numpy("output").tolist() == native["outputs"]
            with pytest.raises(InferenceServerException, match="API key"):
                client.infer(TASK, [tensor])
        finally:
            client.close()
        # memory against the limit: two large batches at once (one per worker), then the cgroup's peak
        print(f"container memory ready and after the calls: {cgroup_memory(engine, name)}")
        rng = np.random.default_rng(0)
        batch = orjson.dumps({"inputs": rng.integers(10, 100, size=(BIG_ROWS, BIG_LENGTH)).tolist()})
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(
                    lambda _: requests.post(
                        f"{url}/tasks/echo/predict",
                        data=batch,
                        timeout=120,
                        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
                    ),
                    range(2),
                )
            )
        assert [a.status_code for a in answers] == [200, 200], answers[0].text[:300]
        memory = cgroup_memory(engine, name)
        print(f"after two {len(batch) / 1e6:.1f} MB echo batches at once: {memory}")
        assert memory["peak_mib"] < 512, memory
        # no permission errors with the read-only root filesystem
        logs = engine.run("logs", name, check=False)
        text = logs.stdout + logs.stderr
        assert "Permission denied" not in text and "Read-only file system" not in text, text[-3000:]
    finally:
        engine.run("kube", "down", str(path), check=False, timeout=120)
        engine.run("secret", "rm", secret_name, check=False)
        for volume in docs[1]["spec"]["template"]["spec"]["volumes"]:
            engine.run("volume", "rm", "-f", volume["name"], check=False)
