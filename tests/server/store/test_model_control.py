"""Model control and statistics against real gunicorn (2 workers) on 127.0.0.1, with the real clients:
`tritonclient.http` (load_model, get_model_repository_index, get_inference_statistics) and the command line.

The swap test replaces echo's folder under steady load from 8 client threads and loads it: no request fails,
every answer comes from the old or the new model, and every request sent after `load` returned gets the new
one, from both workers. The second model is tests/fixtures/echo-seed1/echo: `python -m training train echo
--seed 1 --jobs 1` (training it here would take ~2 minutes on a loaded 2-core machine).

    .venv/bin/python -m pytest tests/server/store/test_model_control.py
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from benchmarks.harness.load import children, wait_for
from benchmarks.harness.paths import MODELS_DIR, ROOT
from benchmarks.harness.server import Server
from service.core import manifest as manifest_mod

pytestmark = pytest.mark.slow
TASK = "echo"
SEED1 = ROOT / "tests" / "fixtures" / "echo-seed1" / TASK
CLIENTS = 8
MAX_SECONDS = 60.0  # the load loop's bound in time; MAX_REQUESTS per client bounds it in count
MAX_REQUESTS = 20_000
API_KEY = "control-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def sha(folder: Path) -> str:
    return manifest_mod.load(folder, check_hash=False)["onnx"]["sha256"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """echo, and echo-lag beside it (a task the swaps must leave alone)."""
    models = tmp_path_factory.mktemp("control") / "models"
    for task in (TASK, "echo-lag"):
        shutil.copytree(MODELS_DIR / task, models / task)
    return models


@pytest.fixture(scope="module")
def server(repo, tmp_path_factory):
    log = tmp_path_factory.mktemp("control-log") / "gunicorn.log"
    env = {"TOYSEQ_MODEL_CONTROL": "explicit", "TOYSEQ_API_KEY": API_KEY, "TOYSEQ_LOG_LEVEL": "warning"}
    with Server(log, env=env, models_dir=repo) as srv:
        yield srv


class Load:
    """8 threads posting echo predictions until stopped (or MAX_SECONDS / MAX_REQUESTS): each answer's send
    time, status, model sha256 and worker (the X-Request-ID's per-worker prefix)."""

    def __init__(self, url: str):
        self.url = url + f"/tasks/{TASK}/predict"
        self.stop = threading.Event()
        self.answers: list[tuple[float, int, str, str]] = []
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(MAX_SECONDS)

    def _run(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        with requests.Session() as http:
            for n in range(MAX_REQUESTS):
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                # A new connection every 10th request, so that both workers keep getting some.
                headers = {**AUTH, "Connection": "close"} if n % 10 == 9 else AUTH
                sent = time.monotonic()
                try:
                    r = http.post(self.url, json={"inputs": [[42, 7, 99]]}, headers=headers, timeout=30)
                except requests.RequestException as err:
                    self.errors.append(repr(err))
                    continue
                model = r.json().get("model", {}).get("sha256", "") if r.status_code == 200 else r.text[:200]
                self.answers.append((sent, r.status_code, model, r.headers.get("X-Request-ID", "")[:16]))

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        while len(self.answers) < count and time.monotonic() < deadline:
            time.sleep(0.02)


def served_sha(url: str) -> str:
    return requests.get(f"{url}/tasks/{TASK}", timeout=10).json()["model"]["sha256"]


def both_workers(url: str, most: int = 5000) -> set[int]:
    """The statuses of echo predictions on new connections until both workers have answered (a worker is the
    X-Request-ID's per-worker prefix), at most `most` requests and MAX_SECONDS."""
    statuses, workers = set(), set()
    deadline = time.monotonic() + MAX_SECONDS
    with requests.Session() as http:
        for _ in range(most):
            if time.monotonic() > deadline:
                break
            r = http.post(
                f"{url}/tasks/{TASK}/predict",
                json={"inputs": [[1]]},
                headers={**AUTH, "Connection": "close"},
                timeout=30,
            )
            statuses.add(r.status_code)
            workers.add(r.headers["X-Request-ID"][:16])
            if len(workers) == 2:
                return statuses
    raise AssertionError(f"only one worker answered, statuses {statuses}")


def replace_folder(src: Path, dest: Path) -> None:
    """What an operator does: copy the new files over the old ones (not atomically)."""
    for name in (manifest_mod.MODEL_FILE, manifest_mod.MANIFEST_FILE):
        shutil.copyfile(src / name, dest / name)


def test_load_swaps_a_retrained_model_under_load_and_loses_nothing(server, repo, tmp_path):
    httpclient = pytest.importorskip("tritonclient.http", reason="pip install -e '.[test]' (tritonclient[http])")
    old = served_sha(server.url)
    # The other model: seed 1's when the committed one serves, and back.
    staged = tmp_path / TASK
    shutil.copytree(SEED1 if old == sha(MODELS_DIR / TASK) else MODELS_DIR / TASK, staged)
    new = sha(staged)
    assert new != old
    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    version = int({e["name"]: e for e in client.get_model_repository_index(headers=AUTH)}[TASK]["version"])
    with Load(server.url) as load:
        load.wait_for(200)
        replace_folder(staged, repo / TASK)
        client.load_model(TASK, headers=AUTH)
        loaded = time.monotonic()
        load.wait_for(len(load.answers) + 400)
    assert not load.errors, load.errors[:3]
    statuses = {status for _, status, _, _ in load.answers}
    assert statuses == {200}, [a for a in load.answers if a[1] != 200][:3]
    assert {model for _, _, model, _ in load.answers} <= {old, new}
    after = [a for a in load.answers if a[0] > loaded]
    assert len(after) >= 300
    assert {model for _, _, model, _ in after} == {new}
    assert len({worker for _, _, _, worker in after}) == 2, "both workers answered after the load"
    before = [a for a in load.answers if a[0] < loaded]
    assert old in {model for _, _, model, _ in before}
    index = {entry["name"]: entry for entry in client.get_model_repository_index(headers=AUTH)}
    # Triton's integer versions: the load took the next number, and every worker serves it under that number
    assert index[TASK] == {"name": TASK, "version": str(version + 1), "state": "READY", "reason": ""}
    answered = [
        requests.get(f"{server.url}/v2/models/{TASK}", headers={"Connection": "close"}, timeout=30).json()
        for _ in range(8)
    ]
    assert {(m["versions"][0], m["parameters"]["sha256"]) for m in answered} == {(str(version + 1), new)}
    assert index["echo-lag"]["state"] == "READY"


@pytest.mark.parametrize("damage", ["corrupt model.onnx", "wrong answers"])
def test_a_bad_replacement_is_refused_under_load_and_the_old_model_keeps_serving(server, repo, tmp_path, damage):
    old = served_sha(server.url)
    saved = tmp_path / "saved"
    shutil.copytree(repo / TASK, saved)
    try:
        with Load(server.url) as load:
            load.wait_for(200)
            if damage == "corrupt model.onnx":
                data = bytearray((repo / TASK / manifest_mod.MODEL_FILE).read_bytes())
                data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
                (repo / TASK / manifest_mod.MODEL_FILE).write_bytes(bytes(data))
                expected = "does not match the manifest's"
            else:  # a valid model of another task under echo's manifest: hash and schema pass, the smoke fails
                manifest = manifest_mod.load(repo / TASK, check_hash=False)
                shutil.copyfile(
                    MODELS_DIR / "echo-lag" / manifest_mod.MODEL_FILE, repo / TASK / manifest_mod.MODEL_FILE
                )
                manifest["onnx"]["sha256"] = sha(MODELS_DIR / "echo-lag")
                (repo / TASK / manifest_mod.MANIFEST_FILE).write_text(__import__("json").dumps(manifest))
                expected = "smoke prediction failed"
            r = requests.post(f"{server.url}/v2/repository/models/{TASK}/load", headers=AUTH, timeout=60)
            refused = time.monotonic()
            load.wait_for(len(load.answers) + 200)
    finally:
        replace_folder(saved, repo / TASK)
    assert r.status_code == 400, r.text
    assert expected in r.json()["error"] and "keeps serving" in r.json()["error"]
    assert not load.errors, load.errors[:3]
    assert {status for _, status, _, _ in load.answers} == {200}
    assert {model for _, _, model, _ in load.answers} == {old}
    assert len([a for a in load.answers if a[0] > refused]) >= 100


def test_unload_and_load_reach_both_workers_and_the_command_line_speaks_for_them(server, repo):
    cli = [sys.executable, "-m", "service.server.cli", "--url", server.url, "--api-key", API_KEY]
    run = subprocess.run([*cli, "unload", TASK], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert both_workers(server.url) == {503}
    with requests.Session() as http:
        assert http.get(f"{server.url}/readyz").status_code == 200  # an unloaded task is not a failure
        assert (
            http.post(f"{server.url}/tasks/echo-lag/predict", json={"inputs": [[1, 2]]}, headers=AUTH).status_code
            == 200
        )
    # A worker started after the unload (gunicorn replacing a killed one) reads the published state first.
    victim = children(server.proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: len(children(server.proc.pid)) == 2 and victim not in children(server.proc.pid), 60)
    assert wait_for(lambda: requests.get(f"{server.url}/readyz", timeout=5).status_code == 200, 60)
    assert both_workers(server.url) == {503}
    index = subprocess.run([*cli, "index"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert '"state": "UNAVAILABLE"' in index.stdout and '"reason": "unloaded' in index.stdout
    run = subprocess.run([*cli, "load", TASK], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert '"workers": 2' in run.stdout
    assert both_workers(server.url) == {200}
    refused = subprocess.run([*cli[:-2], "load", TASK], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr
    stats = subprocess.run([*cli, "stats", "echo-lag"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert stats.returncode == 0 and '"name": "echo-lag"' in stats.stdout and '"compute_infer"' in stats.stdout
    closed = subprocess.run(
        [sys.executable, "-m", "service.server.cli", "--url", "http://127.0.0.1:1", "index"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert closed.returncode == 2 and "cannot reach" in closed.stderr


def test_statistics_sum_both_workers_and_tritonclient_reads_them(server):
    httpclient = pytest.importorskip("tritonclient.http", reason="pip install -e '.[test]' (tritonclient[http])")
    import numpy as np

    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    before = client.get_inference_statistics(model_name="echo-lag", headers=AUTH)["model_stats"][0]
    workers, sent, sequences = set(), 0, 0
    with requests.Session() as http:
        while (len(workers) < 2 or sent < 20) and sent < 200:  # new connections until both workers answered
            rows = [[1, 2, 3]] * (1 + sent % 3)
            r = http.post(
                f"{server.url}/tasks/echo-lag/predict", json={"inputs": rows}, headers={**AUTH, "Connection": "close"}
            )
            assert r.status_code == 200
            workers.add(r.headers["X-Request-ID"][:16])
            sent, sequences = sent + 1, sequences + len(rows)
        bad = http.post(f"{server.url}/tasks/echo-lag/predict", json={"inputs": [[1]]}, headers=AUTH)
        assert bad.status_code == 422
    data = np.array([[5, 3, 8]], dtype=np.int64)
    infer_input = httpclient.InferInput("input", list(data.shape), "INT64")
    # As Triton's simple_http_infer_client.py: binary input, named outputs, extra query parameters and headers.
    infer_input.set_data_from_numpy(data, binary_data=True)
    result = client.infer(
        "echo-lag",
        [infer_input],
        outputs=[httpclient.InferRequestedOutput("output", binary_data=False)],
        query_params={"test_1": 1, "test_2": 2},
        headers={**AUTH, "test": "1"},
    )
    assert result.as_numpy("output").tolist() == [[5, 3]]
    sent, sequences = sent + 1, sequences + 1
    assert len(workers) == 2
    deadline = time.monotonic() + 10
    while True:  # another worker's counts arrive within its 50 ms flush
        stats = client.get_inference_statistics(model_name="echo-lag", headers=AUTH)
        now = stats["model_stats"][0]
        success = now["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"]
        failed = now["inference_stats"]["fail"]["count"] - before["inference_stats"]["fail"]["count"]
        if (success >= sent and failed >= 1) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(stats["model_stats"]) == 1  # what Triton's simple_http_infer_client.py checks
    assert now["name"] == "echo-lag" and now["version"] == "1"  # served since start-up: Triton's first version
    assert success == sent
    parts = now["inference_stats"]
    assert failed == 1
    assert now["inference_count"] - before["inference_count"] == sequences
    assert now["execution_count"] - before["execution_count"] == sent
    assert (
        parts["queue"]["ns"] + sum(parts[k]["ns"] for k in ("compute_input", "compute_infer", "compute_output"))
        == parts["success"]["ns"]
    )
    assert parts["compute_infer"]["ns"] > 0 and now["last_inference"] > (time.time() - 60) * 1000
    everything = client.get_inference_statistics(headers=AUTH)["model_stats"]
    assert {s["name"] for s in everything} == {TASK, "echo-lag"}
    by_version = client.get_inference_statistics("echo-lag", now["version"], headers=AUTH)["model_stats"]
    assert by_version[0]["inference_count"] >= now["inference_count"]
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="has no version"):
        client.get_inference_statistics("echo-lag", "7", headers=AUTH)
