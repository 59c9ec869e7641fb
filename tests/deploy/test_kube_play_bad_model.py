"""A corrupt model in the pod, both ways the manifests allow (tests/deploy/test_kube_play.py's set-up):

- `TOYSEQ_STRICT: "false"`: the pod serves the other tasks and is ready (the readiness probe's
  `/v2/health/ready` 200), `/readyz` names the broken task, `/v2/models/<task>/ready` and its predict answer
  503, and the image's own HEALTHCHECK command passes, so neither Kubernetes nor Docker takes the pod out;
- `TOYSEQ_STRICT: "true"` (the shipped ConfigMap): the container exits 3 with one line naming the task and
  no traceback, and never becomes ready.

The models are a copy of the committed ones with echo's model.onnx replaced by garbage whose sha256 the
manifest records (so only onnxruntime can refuse it), mounted read-only at /models (a hostPath volume).

    source ../shared/container/prepare.sh && .venv/bin/python -m pytest tests/deploy/test_kube_play_bad_model.py -s
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from benchmarks.harness.paths import MODELS_DIR, ROOT
from benchmarks.harness.server import free_port
from tests.support.bad_models import corrupt_with_matching_hash
from tests.support.container import BUILD_TIMEOUT, READY_TIMEOUT
from tests.support.k8s import pod_manifest

pytestmark = pytest.mark.slow
BROKEN, GOOD = "echo", "echo-lag"


@pytest.fixture()
def broken_models():
    """World-readable (the container runs as uid 10001), so not under pytest's 0700 tmp_path."""
    folder = Path(tempfile.mkdtemp(prefix="toyseq-pod-models-"))
    try:
        shutil.copytree(MODELS_DIR, folder / "models")
        corrupt_with_matching_hash(folder / "models" / BROKEN)
        for path in (folder, *folder.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield folder / "models"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def pod(engine, image, tmp_path, models: Path, strict: str):
    """The Deployment under `podman kube play` with `models` at /models and TOYSEQ_STRICT=`strict`."""
    port, suffix = free_port(), uuid.uuid4().hex[:8]
    docs, secret = pod_manifest(image, port, suffix, grpc_port=free_port())
    docs[0]["data"].update({"TOYSEQ_MODELS_DIR": "/models", "TOYSEQ_STRICT": strict})
    spec = docs[1]["spec"]["template"]["spec"]
    spec["volumes"].append({"name": f"models-{suffix}", "hostPath": {"path": str(models), "type": "Directory"}})
    spec["containers"][0]["volumeMounts"].append({"name": f"models-{suffix}", "mountPath": "/models", "readOnly": True})
    path = tmp_path / f"pod-{suffix}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
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
        engine.run("kube", "play", "--network", "host", str(path), timeout=120)
        yield name, f"http://127.0.0.1:{port}", secret["stringData"]["api-key"]
    finally:
        engine.run("kube", "down", str(path), check=False, timeout=120)
        engine.run("secret", "rm", secret_name, check=False)
        for volume in spec["volumes"]:
            if "emptyDir" in volume:
                engine.run("volume", "rm", "-f", volume["name"], check=False)


def healthcheck_command() -> list[str]:
    """The Dockerfile's HEALTHCHECK CMD, as the image runs it."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return json.loads(re.search(r"^HEALTHCHECK .*? CMD (\[.*\])\s*$", text, re.M).group(1))


@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_a_corrupt_model_leaves_the_pod_ready_with_the_task_named(engine, image, tmp_path, broken_models):
    if engine.name != "podman":
        pytest.skip("kube play needs podman")
    with pod(engine, image, tmp_path, broken_models, strict="false") as (name, url, key):
        deadline, ready = time.monotonic() + READY_TIMEOUT, None
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                ready = requests.get(url + "/v2/health/ready", timeout=2)
                if ready.status_code == 200:
                    break
            time.sleep(0.5)
        logs = engine.run("logs", name, check=False)
        assert ready is not None and ready.status_code == 200, (logs.stdout + logs.stderr)[-3000:]
        readyz = requests.get(url + "/readyz", timeout=10)
        assert readyz.status_code == 200 and "onnxruntime cannot load" in readyz.json()["unavailable"][BROKEN]
        assert requests.get(f"{url}/v2/models/{BROKEN}/ready", timeout=10).status_code == 503
        assert requests.get(f"{url}/v2/models/{GOOD}/ready", timeout=10).status_code == 200
        auth = {"Authorization": f"Bearer {key}"}
        bad = requests.post(f"{url}/tasks/{BROKEN}/predict", json={"inputs": [[1, 2]]}, headers=auth, timeout=10)
        assert bad.status_code == 503 and BROKEN in bad.json()["detail"]
        good = requests.post(f"{url}/tasks/{GOOD}/predict", json={"inputs": [[5, 3, 8]]}, headers=auth, timeout=10)
        assert good.status_code == 200 and good.json()["outputs"] == [[5, 3]]
        # the image's HEALTHCHECK (against /readyz) passes: Docker would keep the container healthy
        check = engine.run("exec", name, *healthcheck_command(), check=False)
        assert check.returncode == 0, check.stderr[-2000:]
        text = logs.stdout + logs.stderr
        assert "Traceback" not in text, text[-3000:]


@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_a_corrupt_model_stops_a_strict_pod_with_exit_3(engine, image, tmp_path, broken_models):
    if engine.name != "podman":
        pytest.skip("kube play needs podman")
    with pod(engine, image, tmp_path, broken_models, strict="true") as (name, url, _key):
        deadline, state = time.monotonic() + READY_TIMEOUT, {}
        while time.monotonic() < deadline:
            inspect = engine.run("inspect", name, check=False)
            if inspect.returncode == 0:
                state = json.loads(inspect.stdout)[0]["State"]
                if state.get("ExitCode") == 3:
                    break
            time.sleep(0.5)
        logs = engine.run("logs", name, check=False)
        text = logs.stdout + logs.stderr
        assert state.get("ExitCode") == 3, (state, text[-3000:])
        assert f"task {BROKEN} cannot be served" in text and "Traceback" not in text, text[-3000:]
        with contextlib.suppress(requests.RequestException):
            assert requests.get(url + "/v2/health/ready", timeout=2).status_code != 200
