"""The model repository and statistics extensions through the app factory (one process, real onnxruntime):
who may load, what a refused model looks like, what index and stats answer. The cross-worker behaviour under
load is tests/server/store/test_model_control.py's (real gunicorn).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from benchmarks.harness.paths import MODELS_DIR, ROOT
from service import create_app
from service.core import manifest as manifest_mod

SEED1 = ROOT / "tests" / "fixtures" / "echo-seed1" / "echo"
ROW = {"inputs": [[42, 7, 99]]}


@pytest.fixture()
def repo(tmp_path) -> Path:
    models = tmp_path / "models"
    for task in ("echo", "echo-lag"):
        shutil.copytree(MODELS_DIR / task, models / task)
    return models


def app_for(repo: Path, **settings):
    return create_app({"models_dir": str(repo), **settings}).test_client()


def sha(folder: Path) -> str:
    return manifest_mod.load(folder, check_hash=False)["onnx"]["sha256"]


def test_load_and_unload_are_off_unless_model_control_is_explicit(repo):
    client = app_for(repo)
    for action in ("load", "unload"):
        r = client.post(f"/v2/repository/models/echo/{action}")
        assert r.status_code == 403
        assert r.json == {
            "error": f"model control is off: {action} needs the service started with TOYSEQ_MODEL_CONTROL=explicit"
        }
    assert client.post("/v2/repository/index").status_code == 200  # read-only: always on
    assert client.get("/v2/models/echo/stats").status_code == 200


def test_load_needs_the_api_key_when_one_is_set_and_index_does_not(repo):
    client = app_for(repo, model_control="explicit", api_key="k")
    r = client.post("/v2/repository/models/echo/load")
    assert r.status_code == 401 and "API key" in r.json["error"]
    assert client.post("/v2/repository/models/echo/unload", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.post("/v2/repository/models/echo/load", headers={"X-API-Key": "k"}).status_code == 200
    assert client.post("/v2/repository/index").status_code == 200


def test_a_retrained_model_replaces_the_old_one_and_metadata_follows(repo):
    """Versions are Triton's integers: the model found at start-up is 1, each load takes the next; the sha256
    names the model file in the native answer and the v2 metadata's parameters."""
    client = app_for(repo, model_control="explicit")
    old, new = sha(repo / "echo"), sha(SEED1)
    assert client.get("/v2/models/echo").json["versions"] == ["1"]
    assert client.get("/v2/models/echo").json["parameters"]["sha256"] == old
    for name in ("manifest.json", "model.onnx"):
        shutil.copyfile(SEED1 / name, repo / "echo" / name)
    assert client.post("/tasks/echo/predict", json=ROW).json["model"]["sha256"] == old  # until load
    r = client.post("/v2/repository/models/echo/load", json={"parameters": {"unload_dependents": False}})
    assert r.status_code == 200
    assert r.json == {"name": "echo", "load": True, "version": "2", "sha256": new, "state": "READY", "workers": 1}
    assert client.post("/tasks/echo/predict", json=ROW).json["model"]["sha256"] == new
    assert client.get("/v2/models/echo").json["versions"] == ["2"]
    assert client.get("/v2/models/echo").json["parameters"]["sha256"] == new
    assert client.get("/tasks/echo").json["model"]["sha256"] == new
    assert client.get("/v2/models/echo/versions/1").status_code == 404
    assert client.get("/v2/models/echo/versions/2/config").json["parameters"]["sha256"] == {"string_value": new}
    # an unload keeps the number: the next load is version 3, even of the same file
    assert client.post("/v2/repository/models/echo/unload").status_code == 200
    assert client.post("/v2/repository/models/echo/load").json["version"] == "3"


def corrupt_hash(folder: Path) -> None:
    data = bytearray((folder / "model.onnx").read_bytes())
    data[100] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))


def rewrite_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def not_onnx(folder: Path) -> None:
    (folder / "model.onnx").write_bytes(b"not an onnx model")
    rewrite_manifest(folder, lambda m: m["onnx"].update(sha256=manifest_mod.sha256(folder / "model.onnx")))


def wrong_answers(folder: Path) -> None:
    shutil.copyfile(MODELS_DIR / "echo-lag" / "model.onnx", folder / "model.onnx")
    rewrite_manifest(folder, lambda m: m["onnx"].update(sha256=manifest_mod.sha256(folder / "model.onnx")))


@pytest.mark.parametrize(
    "damage, says",
    [
        (corrupt_hash, "model.onnx sha256"),
        (lambda f: rewrite_manifest(f, lambda m: m.pop("codec", None) or m.pop("input")), "manifest"),
        (lambda f: rewrite_manifest(f, lambda m: m.update(task="echo-lag")), "but its folder is 'echo'"),
        (lambda f: (f / "manifest.json").write_text("{"), "manifest.json is not readable JSON"),
        (not_onnx, "onnxruntime cannot load model.onnx"),
        (wrong_answers, "smoke prediction failed: the worked example [42, 7, 99] gave"),
    ],
    ids=["hash", "schema", "task name", "json", "onnx", "smoke"],
)
def test_a_model_that_fails_a_check_is_refused_and_the_old_one_keeps_serving(repo, damage, says):
    client = app_for(repo, model_control="explicit")
    old = sha(repo / "echo")
    damage(repo / "echo")
    r = client.post("/v2/repository/models/echo/load")
    assert r.status_code == 400, r.json
    assert r.json["error"].startswith("failed to load 'echo': ")  # Triton's words
    assert says in r.json["error"] and r.json["error"].endswith("version 1 keeps serving")
    assert str(repo) not in r.json["error"]  # no server paths in answers
    assert client.post("/tasks/echo/predict", json=ROW).json["model"]["sha256"] == old
    assert client.get("/readyz").status_code == 200


def test_index_lists_states_and_a_new_folder_can_be_loaded(repo):
    client = app_for(repo, model_control="explicit")
    shutil.copytree(MODELS_DIR / "last-value", repo / "last-value")  # added after start-up
    assert client.post("/v2/repository/index").json == [
        {"name": "echo", "version": "1", "state": "READY", "reason": ""},
        {"name": "echo-lag", "version": "1", "state": "READY", "reason": ""},
        {
            "name": "last-value",
            "version": "",
            "state": "UNAVAILABLE",
            "reason": "not loaded: found in the models folder after start-up",
        },
    ]
    assert client.post("/tasks/last-value/predict", json={"inputs": [[1, 2]]}).status_code == 404
    assert client.post("/v2/repository/models/last-value/load").status_code == 200
    assert client.post("/tasks/last-value/predict", json={"inputs": [[1, 2]]}).json["outputs"] == [2]
    assert [e["name"] for e in client.post("/v2/repository/index", json={"ready": True}).json] == [
        "echo",
        "echo-lag",
        "last-value",
    ]
    assert [t["name"] for t in client.get("/tasks").json["tasks"]] == ["echo", "echo-lag", "last-value"]
    assert client.post("/v2/repository/models/echo/unload").json["state"] == "UNAVAILABLE"
    assert [e["name"] for e in client.post("/v2/repository/index", json={"ready": True}).json] == [
        "echo-lag",
        "last-value",
    ]
    r = client.post(
        "/v2/models/echo/infer", json={"inputs": [{"name": "input", "shape": [1, 1], "datatype": "INT64", "data": [1]}]}
    )
    assert r.status_code == 503 and "unloaded" in r.json["error"]
    assert client.get("/v2/health/ready").status_code == 200 and client.get("/readyz").status_code == 200


def test_control_calls_refuse_what_they_cannot_honour(repo):
    client = app_for(repo, model_control="explicit")
    for config, says in [
        ('"parameters": {"config": {{"max_batch_size": "16"}}}', "not valid JSON"),  # Triton's example's bad one
        ("[16]", "must be a JSON object"),
        ('{"instance_group": [{"count": 2}]}', "config field 'instance_group' cannot be overridden"),
        ('{"name": "echo-lag"}', "config field 'name' cannot be overridden"),
        ('{"max_batch_size": 0}', "max_batch_size must be a whole number from 1 to 10000"),
        ('{"max_batch_size": 10001}', "max_batch_size must be a whole number from 1 to 10000"),
        ('{"max_batch_size": "1e3"}', 'got "1e3"'),
    ]:
        r = client.post("/v2/repository/models/echo/load", json={"parameters": {"config": config}})
        assert r.status_code == 400 and r.json["error"].startswith("failed to load 'echo': "), r.json
        assert says in r.json["error"], (config, r.json)
    assert "failed to load 'nope'" in client.post("/v2/repository/models/nope/load").json["error"]
    r = client.post("/v2/repository/models/echo/load", json={"parameters": {"file:1/model.onnx": "AAAA"}})
    assert r.status_code == 400 and "loads a model only from its folder" in r.json["error"]
    assert client.post("/v2/repository/models/..%2Fecho/load").status_code == 404
    assert client.post("/v2/repository/models/nope/unload").status_code == 404
    assert client.post("/v2/repository/index", data="[1]", content_type="application/json").status_code == 400
    assert client.post("/v2/repository/index", json={"ready": "yes"}).status_code == 400
    assert client.get("/v2/repository/index").status_code == 405


def test_statistics_count_successes_failures_and_their_parts(repo):
    client = app_for(repo)
    version = "1"
    empty = client.get("/v2/models/echo/stats").json["model_stats"][0]
    assert empty["inference_stats"]["success"] == {"count": 0, "ns": 0} and empty["last_inference"] == 0
    client.post("/tasks/echo/predict", json={"inputs": [[1, 2], [3]]})
    client.post(
        "/v2/models/echo/infer",
        json={"inputs": [{"name": "input", "shape": [1, 2], "datatype": "INT64", "data": [4, 5]}]},
    )
    client.post("/tasks/echo/predict", json={"inputs": [[1000]]})  # 422: a failure
    (stats,) = client.get(f"/v2/models/echo/versions/{version}/stats").json["model_stats"]
    assert (stats["name"], stats["version"]) == ("echo", version)
    parts = stats["inference_stats"]
    assert parts["success"]["count"] == 2 and parts["fail"]["count"] == 1
    assert stats["inference_count"] == 3 and stats["execution_count"] == 2
    assert (
        sum(parts[k]["ns"] for k in ("queue", "compute_input", "compute_infer", "compute_output"))
        == parts["success"]["ns"]
    )
    assert all(parts[k]["count"] == 2 for k in ("queue", "compute_input", "compute_infer", "compute_output"))
    assert [s["name"] for s in client.get("/v2/models/stats").json["model_stats"]] == ["echo", "echo-lag"]
    assert client.get("/v2/models/nope/stats").status_code == 404
    assert client.get("/v2/models/echo/versions/2/stats").status_code == 404
    assert "statistics" in client.get("/v2").json["extensions"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'toyseq_inference_requests_total{{kind="success",task="echo",version="{version}"}} 2.0' in metrics


def test_a_load_names_the_workers_that_did_not_apply_it_in_time(repo, tmp_path):
    """A live worker that never acknowledges (here: a registration for this test's parent process) makes the load
    answer 503 naming it once TOYSEQ_MODEL_CONTROL_TIMEOUT has passed; the worker that took the call serves it."""
    control = tmp_path / "control"
    client = app_for(repo, model_control="explicit", control_dir=str(control), model_control_timeout=0.3)
    silent = os.getppid()
    (control / "workers" / f"{silent}.json").write_text(json.dumps({"pid": silent, "tasks": {}}))
    for name in ("manifest.json", "model.onnx"):
        shutil.copyfile(SEED1 / name, repo / "echo" / name)
    r = client.post("/v2/repository/models/echo/load")
    assert r.status_code == 503
    assert f"workers {silent} had not applied it within 0.3 s" in r.json["error"]
    assert client.post("/tasks/echo/predict", json=ROW).json["model"]["sha256"] == sha(SEED1)
    state = json.loads((control / "state.json").read_text())
    assert state["tasks"]["echo"] == {
        "generation": 1,
        "action": "load",
        "sha256": sha(SEED1),
        "version": 2,
        "config": {},
    }


def test_a_load_config_overrides_max_batch_size_until_the_next_load(repo):
    """Triton's load with `config` (its simple_*_model_control examples send {"max_batch_size": "16"}): the
    model's batch limit on every path and in its configuration, until a load without it restores the service's."""
    client = app_for(repo, model_control="explicit", max_batch=100)
    r = client.post("/v2/repository/models/echo/load", json={"parameters": {"config": '{"max_batch_size": "16"}'}})
    assert r.status_code == 200 and r.json["config"] == {"max_batch_size": 16} and r.json["version"] == "2"
    assert client.get("/v2/models/echo/config").json["max_batch_size"] == 16
    assert client.get("/v2/models/echo-lag/config").json["max_batch_size"] == 100  # the others keep the service's
    assert client.post("/tasks/echo/predict", json={"inputs": [[1]] * 16}).status_code == 200
    r = client.post("/tasks/echo/predict", json={"inputs": [[1]] * 17})
    assert r.status_code == 422 and "limit of 16" in r.json["detail"]
    body = {"inputs": [{"name": "input", "shape": [17, 1], "datatype": "INT64", "data": [1] * 17}]}
    assert "limit of 16" in client.post("/v2/models/echo/infer", json=body).json["error"]
    assert "limit of 16" in client.post("/v1/models/echo:predict", json={"instances": [[1]] * 17}).json["error"]
    assert (
        client.post(
            "/v2/repository/models/echo/load", json={"parameters": {"config": {"max_batch_size": 8}}}
        ).status_code
        == 200
    )
    assert client.get("/v2/models/echo/config").json["max_batch_size"] == 8  # the config as an object, too
    assert client.post("/v2/repository/models/echo/load").status_code == 200
    assert client.get("/v2/models/echo/config").json["max_batch_size"] == 100
    assert client.post("/tasks/echo/predict", json={"inputs": [[1]] * 17}).status_code == 200


def test_workers_agree_on_each_loads_version_number(repo, tmp_path):
    """Two apps on one control directory stand for two workers: a load in either takes the next number for both
    (control.py numbers it under its lock), whichever worker took the call, and the override travels with it."""
    control = str(tmp_path / "control")
    one = app_for(repo, model_control="explicit", control_dir=control, model_control_timeout=5)
    two = app_for(repo, model_control="explicit", control_dir=control, model_control_timeout=5)

    def versions_become(client, version: str) -> bool:
        deadline = time.monotonic() + 10  # the other worker's watcher applies a change within its 0.1 s poll
        while time.monotonic() < deadline:
            if client.get("/v2/models/echo").json.get("versions") == [version]:  # 503 while unloaded
                return True
            time.sleep(0.05)
        return False

    assert one.post("/v2/repository/models/echo/load").json["version"] == "2"
    assert versions_become(two, "2")
    config = {"parameters": {"config": '{"max_batch_size": 5}'}}
    assert two.post("/v2/repository/models/echo/load", json=config).json["version"] == "3"
    assert versions_become(one, "3") and one.get("/v2/models/echo/config").json["max_batch_size"] == 5
    assert two.post("/v2/repository/models/echo/unload").status_code == 200
    assert one.post("/v2/repository/models/echo/load").json["version"] == "4"  # an unload keeps the number
    assert versions_become(two, "4") and two.get("/v2/models/echo/config").json["max_batch_size"] == 10000
