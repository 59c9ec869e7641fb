"""KServe's V1 protocol on the real app (create_app, real onnxruntime sessions): GET /v1/models, GET
/v1/models/<m>, POST /v1/models/<m>:predict with KServe's request forms; every answer equals the native
endpoint's, with the same checks, limits and API key, and KServe's {"error": ...} shape and words.

    .venv/bin/python -m pytest tests/server/http/test_v1.py
"""

from __future__ import annotations

import gzip
import shutil

import orjson
import pytest

from benchmarks.harness.paths import MODELS_DIR, TASKS
from service.core import manifest as manifest_mod


def manifest(task) -> dict:
    return manifest_mod.load(MODELS_DIR / task, check_hash=False)


def rows_of(task) -> list[list]:
    base = manifest(task)["example"]["input"]
    return [list(base), list(reversed(base))]


def options_of(task) -> dict:
    m = manifest(task)["output"]
    if m["rollout"]:
        return {"steps": 3}
    if m["classes"] and m["kind"] != "echo":
        return {"top_k": 2}
    return {}


def post(client, task, body, **kw):
    return client.post(f"/v1/models/{task}:predict", data=orjson.dumps(body), content_type="application/json", **kw)


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json" and list(response.get_json()) == ["error"]
    return response.get_json()["error"]


def test_models_and_readiness(client):
    assert client.get("/v1/models").get_json() == {"models": TASKS}
    for task in TASKS:
        assert client.get(f"/v1/models/{task}").get_json() == {"name": task, "ready": True}
    assert error_of(client.get("/v1/models/nope"), 404).startswith("Model with name nope does not exist.")


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_predict_answers_like_the_native_endpoint(client, task, key):
    rows, options = rows_of(task), options_of(task)
    native = client.post(f"/tasks/{task}/predict", json={"inputs": rows, **options}).get_json()
    for body in ({key: rows, **options}, {key: [{"input": row} for row in rows], **options}):
        r = post(client, task, body)
        assert r.status_code == 200, r.get_data(as_text=True)
        expected = {"predictions": native["outputs"], **{k: v for k, v in native.items() if k not in NATIVE_ONLY}}
        assert r.get_json() == expected


NATIVE_ONLY = ("task", "model", "outputs")


def test_bad_input_is_400_located_in_the_v1_body(client):
    message = error_of(post(client, "echo", {"instances": [[1, 2], [3, 200]]}), 400)
    assert message == "invalid input: /instances/1/1: 200 is outside 0..99 for task echo"
    assert "/inputs/0/0" in error_of(post(client, "echo", {"inputs": [["x"]]}), 400)
    assert error_of(post(client, "echo", {"instances": 3}), 400) == 'Expected "instances" to be a list'  # KServe's
    assert "exactly one of" in error_of(post(client, "echo", {"instances": [[1]], "inputs": [[1]]}), 400)
    assert "unknown field 'signature_name'" in error_of(
        post(client, "echo", {"instances": [[1]], "signature_name": "x"}), 400
    )
    assert "steps" in error_of(post(client, "echo", {"instances": [[1]], "steps": 2}), 400)  # echo cannot roll out
    assert error_of(post(client, "echo", [1]), 400).startswith("the body must be a JSON object")
    r = client.post("/v1/models/echo:predict", data=b"{", content_type="application/json")
    assert error_of(r, 400)
    assert error_of(client.post("/v1/models/echo:predict", data=b"{}", content_type="text/plain"), 415)
    assert error_of(post(client, "nope", {"instances": [[1]]}), 404).startswith("Model with name nope does not exist.")
    assert error_of(client.post("/v1/models/echo:explain", json={}), 404)
    r = client.delete("/v1/models/echo")
    assert error_of(r, 405) and r.headers["Allow"] == "GET"


def test_limits_budget_and_compressed_bodies(make_client):
    client = make_client(max_batch=3, max_body_bytes=4096)
    assert "limit of 3" in error_of(post(client, "echo", {"instances": [[1]] * 4}), 400)
    assert error_of(post(client, "echo", {"instances": [[1] * 2500]}), 413)
    body = gzip.compress(orjson.dumps({"instances": [[5, 3]]}))
    r = client.post(
        "/v1/models/echo-lag:predict", data=body, content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    assert r.get_json() == {"predictions": [[5]], "in_domain": [True]}
    over = make_client(max_request_seconds=0.001)
    assert "TOYSEQ_MAX_REQUEST_SECONDS" in error_of(post(over, "echo", {"instances": [[1] * 1000] * 100}), 400)


def test_the_api_key_guards_predict_only(make_client):
    client = make_client(api_key="k")
    assert error_of(post(client, "echo", {"instances": [[1]]}), 401)
    assert post(client, "echo", {"instances": [[1]]}, headers={"Authorization": "Bearer k"}).status_code == 200
    assert post(client, "echo", {"instances": [[1]]}, headers={"X-API-Key": "k"}).status_code == 200
    assert client.get("/v1/models/echo").status_code == 200 and client.get("/v1/models").status_code == 200


def test_an_unavailable_model_is_not_ready_in_kserves_words(tmp_path):
    from service import create_app

    for task in ("echo", "echo-lag"):
        shutil.copytree(MODELS_DIR / task, tmp_path / task)
    (tmp_path / "echo" / "model.onnx").write_bytes(b"broken")
    client = create_app({"models_dir": str(tmp_path)}).test_client()
    assert error_of(client.get("/v1/models/echo"), 503).startswith("Model with name echo is not ready.")
    assert error_of(post(client, "echo", {"instances": [[1]]}), 503).startswith("Model with name echo is not ready.")
    assert client.get("/v1/models").get_json() == {"models": ["echo", "echo-lag"]}


def test_v1_predictions_are_counted_in_the_statistics(make_client):
    client = make_client()
    before = client.get("/v2/models/echo-lag/stats").get_json()["model_stats"][0]
    assert post(client, "echo-lag", {"instances": [[1, 2], [3, 4]]}).status_code == 200
    after = client.get("/v2/models/echo-lag/stats").get_json()["model_stats"][0]
    assert after["inference_stats"]["success"]["count"] == before["inference_stats"]["success"]["count"] + 1
    assert after["inference_count"] == before["inference_count"] + 2
