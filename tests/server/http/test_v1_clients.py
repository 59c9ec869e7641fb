"""KServe's own REST client with its defaults (kserve.InferenceRESTClient(), which speaks KServe's V1 protocol)
against real gunicorn on 127.0.0.1, run from its own venv (.venv-kserve, as tests/server/test_v2_clients.py):
readiness and predictions for every task equal the native endpoint's; errors reach it in KServe's shape.

    .venv/bin/python -m pytest tests/server/http/test_v1_clients.py
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import requests

from benchmarks.harness.paths import MODELS_DIR, ROOT, TASKS
from benchmarks.harness.server import Server
from service.core import manifest as manifest_mod

pytestmark = pytest.mark.slow
API_KEY = "v1-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
KSERVE_PYTHON = Path(os.environ.get("TOYSEQ_KSERVE_PYTHON") or ROOT / ".venv-kserve" / "bin" / "python")


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_copy):
    with Server(tmp_path_factory.mktemp("v1") / "gunicorn.log", {"TOYSEQ_API_KEY": API_KEY}, models_copy) as s:
        yield s


def body_for(task: str) -> dict:
    m = manifest_mod.load(MODELS_DIR / task, check_hash=False)
    base = m["example"]["input"]
    options = {"steps": 2} if m["output"]["rollout"] else {}
    return {"instances": [list(base), list(reversed(base))], **options}


def test_kserve_rest_client_with_its_defaults_predicts_like_the_native_endpoint(server):
    if not KSERVE_PYTHON.exists():
        pytest.skip(
            f"KServe's SDK is not installed: {KSERVE_PYTHON} missing (.ci/run creates .venv-kserve with "
            "`pip install kserve==0.21.0`)"
        )
    jobs = [{"model": task, "body": body_for(task)} for task in TASKS]
    jobs.append({"model": "echo", "body": {"instances": [[1, 100]]}})  # out of range: KServe's error shape
    jobs.append({"model": "nope", "body": {"instances": [[1]]}})
    run = subprocess.run(
        [str(KSERVE_PYTHON), str(ROOT / "tests" / "support" / "kserve_v1_driver.py")],
        input=json.dumps({"url": server.url, "headers": AUTH, "jobs": jobs}),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    assert result["ready"] == {**dict.fromkeys(TASKS, True), "nope": 404}
    for job, answer in zip(jobs[: len(TASKS)], result["answers"]):
        body = dict(job["body"])
        native = requests.post(
            f"{server.url}/tasks/{job['model']}/predict",
            json={"inputs": body.pop("instances"), **body},
            headers=AUTH,
            timeout=30,
        ).json()
        extras = {k: v for k, v in native.items() if k not in ("task", "model", "outputs")}
        assert answer == {"predictions": native["outputs"], **extras}, job["model"]
    assert result["errors"] == [
        {
            "model": "echo",
            "status": 400,
            "body": {"error": "invalid input: /instances/0/1: 100 is outside 0..99 for task echo"},
        },
        {"model": "nope", "status": 404, "body": result["errors"][1]["body"]},
    ]
    assert result["errors"][1]["body"]["error"].startswith("Model with name nope does not exist.")
