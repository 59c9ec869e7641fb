"""Bad model folders: the task is reported unavailable (readyz, GET /tasks, 503 on predict) while every
other task keeps serving; strict mode refuses to start instead."""

from __future__ import annotations

import shutil

import orjson
import pytest

from benchmarks.harness.paths import TASKS
from service import create_app
from service.core import manifest as manifest_mod
from service.server.store.registry import StartupError
from tests.support.bad_models import FAULTS, wrong_sha
from tests.support.start import run_gunicorn


@pytest.fixture()
def broken(tmp_path, models_copy):
    """A copy of the models with the first task broken by `fault`; returns (models_dir, bad task)."""
    if len(TASKS) < 2:
        pytest.skip("needs two committed models")

    def make(fault: str):
        dest = tmp_path / "models"
        shutil.copytree(models_copy, dest)
        FAULTS[fault][0](dest / TASKS[0])
        return dest, TASKS[0]

    return make


def _example(app, task):
    return app.extensions["toyseq"].registry.predictors[task].manifest["example"]["input"]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_bad_model_makes_only_its_task_unavailable(broken, fault, tmp_path):
    models, bad = broken(fault)
    app = create_app({"models_dir": str(models)})
    client = app.test_client()
    reason_part = FAULTS[fault][1]

    # Ready while some task serves (a load balancer keeps sending the others), the broken one named
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["tasks"] == TASKS[1:]
    assert reason_part in ready.get_json()["unavailable"][bad]
    assert client.get("/v2/health/ready").status_code == 200
    v2_ready = client.get(f"/v2/models/{bad}/ready")
    assert v2_ready.status_code == 503 and v2_ready.get_json() == {"name": bad, "ready": False}

    listed = {t["name"]: t for t in client.get("/tasks").get_json()["tasks"]}
    assert listed[bad]["available"] is False and reason_part in listed[bad]["reason"]

    r = client.post(f"/tasks/{bad}/predict", data=b'{"inputs": [[1]]}', content_type="application/json")
    assert r.status_code == 503 and r.mimetype == "application/problem+json"
    assert reason_part in r.get_json()["detail"]

    for good in TASKS[1:]:
        ok = client.post(
            f"/tasks/{good}/predict",
            data=orjson.dumps({"inputs": [_example(app, good)]}),
            content_type="application/json",
        )
        assert ok.status_code == 200 and listed[good]["available"]

    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'toyseq_model_load_failures_total{{task="{bad}"}} 1.0' in metrics
    for response in (ready, r, client.get("/tasks"), client.get(f"/tasks/{bad}")):
        text = response.get_data(as_text=True)
        assert str(tmp_path) not in text and "Traceback" not in text


@pytest.mark.parametrize("fault", ["corrupt-onnx", "wrong-sha256", "unknown-schema-version"])
def test_strict_mode_refuses_to_start(broken, fault):
    models, bad = broken(fault)
    with pytest.raises(StartupError, match=bad):
        create_app({"models_dir": str(models), "strict": True})


def test_strict_mode_starts_when_every_model_is_good(models_copy):
    assert create_app({"models_dir": str(models_copy), "strict": "1"}).test_client().get("/readyz").status_code == 200


@pytest.mark.slow
def test_gunicorn_serves_other_tasks_and_strict_gunicorn_exits(broken, gunicorn_server):
    import requests

    models, bad = broken("wrong-sha256")
    server = gunicorn_server(models_dir=models)  # ready: the other tasks serve
    ready = requests.get(server.base_url + "/readyz", timeout=10).json()
    assert bad in ready["unavailable"] and bad not in ready["tasks"]
    r = requests.post(f"{server.base_url}/tasks/{bad}/predict", json={"inputs": [[1]]}, timeout=10)
    assert r.status_code == 503 and "sha256" in r.json()["detail"]
    good = TASKS[1]
    example = manifest_mod.load(models / good)["example"]["input"]
    assert requests.post(f"{server.base_url}/tasks/{good}/predict", json={"inputs": [example]}, timeout=10).ok

    with pytest.raises(RuntimeError, match="exited"):
        gunicorn_server({"TOYSEQ_STRICT": "1"}, models_dir=models, wait_ready=False)


def test_not_ready_when_no_task_serves(tmp_path, models_copy):
    only = tmp_path / "models"
    shutil.copytree(models_copy / TASKS[0], only / TASKS[0])
    wrong_sha(only / TASKS[0])
    client = create_app({"models_dir": str(only)}).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and TASKS[0] in ready.get_json()["unavailable"]
    assert client.get("/v2/health/ready").status_code == 503


@pytest.mark.slow
@pytest.mark.parametrize("strict", ["1", "true", "yes"])
def test_strict_gunicorn_exits_3_with_one_line_every_time(broken, tmp_path, strict):
    """Two workers used to find the bad model at once: exit 3 or 1 at random, a HaltServer traceback, and
    a /tmp/toyseq-metrics-* folder left behind. The check now runs before the fork."""
    models, bad = broken("corrupt-onnx")
    for _ in range(3):
        done = run_gunicorn({"TOYSEQ_STRICT": strict}, tmp_path)
        assert done.returncode == 3, done.stderr
        assert f"task {bad} cannot be served" in done.stderr and "onnxruntime cannot load" in done.stderr
        assert "Traceback" not in done.stderr and done.stderr.count("Error:") == 1
        assert not list((tmp_path / "tmp").glob("toyseq-metrics-*"))  # no metrics folder left
