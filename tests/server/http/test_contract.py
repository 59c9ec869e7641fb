"""The HTTP contract through the Flask test client on the real app (real onnxruntime sessions)."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest
from openapi_spec_validator import validate

from benchmarks.harness.paths import ROOT, TASKS
from service.core import manifest as manifest_mod
from service.core.predictor import Predictor

PROBLEM = "application/problem+json"


def manifest(app, task) -> dict:
    return app.extensions["toyseq"].registry.predictors[task].manifest


def example(app, task) -> list:
    return manifest(app, task)["example"]["input"]


def tasks_where(predicate) -> list[str]:
    return [t for t in TASKS if predicate(manifest_mod.load(_models() / t, check_hash=False))]


def _models():
    from benchmarks.harness.paths import MODELS_DIR

    return MODELS_DIR


ROLLOUT = tasks_where(lambda m: m["output"]["rollout"])
NO_ROLLOUT = tasks_where(lambda m: not m["output"]["rollout"])
TOP_K = tasks_where(lambda m: m["output"]["classes"] and m["output"]["kind"] != "echo")
NO_TOP_K = tasks_where(lambda m: not (m["output"]["classes"] and m["output"]["kind"] != "echo"))
INT_HIGH = tasks_where(lambda m: m["input"]["dtype"] == "int" and m["input"]["high"] is not None)


def post(client, task, body, **kw):
    return client.post(f"/tasks/{task}/predict", data=orjson.dumps(body), content_type="application/json", **kw)


def assert_problem(response, status) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and str(ROOT) not in text
    return body


# --- answers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_predict_answers_the_worked_example_like_the_predictor(app, client, task, models_copy):
    m = manifest(app, task)
    inputs = [m["example"]["input"]] * 3
    r = post(client, task, {"inputs": inputs})
    assert r.status_code == 200 and r.mimetype == "application/json"
    body = r.get_json()
    assert body["task"] == task and body["model"]["sha256"] == m["onnx"]["sha256"]
    expected = Predictor.load(models_copy / task).predict([__import__("numpy").array(x) for x in inputs])
    assert body["outputs"] == expected["outputs"]
    if m["output"]["dtype"] == "int":
        flat = [v for o in body["outputs"] for v in (o if isinstance(o, list) else [o])]
        assert all(type(v) is int for v in flat) and b"." not in r.get_data().split(b'"outputs"')[1]


@pytest.mark.parametrize("task", ROLLOUT)
def test_rollout_returns_k_next_values_per_input(client, app, task):
    r = post(client, task, {"inputs": [example(app, task)] * 2, "steps": 5})
    assert r.status_code == 200
    outputs = r.get_json()["outputs"]
    assert len(outputs) == 2 and all(len(o) == 5 for o in outputs)
    first = post(client, task, {"inputs": [example(app, task)]}).get_json()["outputs"][0]
    assert outputs[0][0] == first


@pytest.mark.parametrize("task", TOP_K)
def test_top_k_lists_the_most_likely_values_first(client, app, task):
    r = post(client, task, {"inputs": [example(app, task)], "top_k": 2})
    body = r.get_json()
    top = body["top_k"][0]
    assert len(top) == 2 and top[0]["p"] >= top[1]["p"] and 0.0 <= top[1]["p"] <= 1.0
    assert top[0]["value"] == body["outputs"][0] and type(top[0]["value"]) is int


# --- every error class ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def any_task():
    if not TASKS:
        pytest.skip("no committed models yet")
    return TASKS[0]


def test_unknown_task_is_404_naming_the_known_ones(client):
    body = assert_problem(post(client, "no-such-task", {"inputs": [[1]]}), 404)
    assert all(t in body["detail"] for t in TASKS)
    assert_problem(client.get("/tasks/no-such-task"), 404)


@pytest.mark.parametrize(
    "path", ["/tasks/..%2F..%2Fetc%2Fpasswd/predict", "/tasks/%2e%2e/predict", "/tasks/../models/predict"]
)
def test_task_names_never_reach_the_filesystem(client, path):
    r = client.post(path, data=b'{"inputs": [[1]]}', content_type="application/json")
    assert r.status_code in (404, 405)
    assert_problem(r, r.status_code)


def test_wrong_method_is_405(client, any_task):
    body = assert_problem(client.get(f"/tasks/{any_task}/predict"), 405)
    assert body["type"] == "urn:toyseq:problem:method-not-allowed"
    assert "POST" in client.get(f"/tasks/{any_task}/predict").headers["Allow"]
    assert_problem(client.delete("/tasks"), 405)


def test_unknown_path_is_404(client):
    assert_problem(client.get("/nowhere"), 404)


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_non_json_body_is_415(client, any_task, content_type):
    kw = {"content_type": content_type} if content_type else {}
    assert_problem(client.post(f"/tasks/{any_task}/predict", data=b'{"inputs": [[1]]}', **kw), 415)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'{"inputs": [[1, 2]]',
        b"{'inputs': 1}",
        b'{"inputs": [[NaN}',
        b"[" * 100_000 + b"]" * 100_000,
        b"[" * 2000 + b"]" * 2000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b'{"inputs": [[1]], "\\ud800": 1}',
        b'\xef\xbb\xbf{"inputs": [[1]]}',
    ],
)
def test_malformed_or_absurdly_nested_json_is_400(client, any_task, raw):
    assert_problem(client.post(f"/tasks/{any_task}/predict", data=raw, content_type="application/json"), 400)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe",
        '{"inputs": [[1]]}'.encode("utf-16"),
        '{"inputs": [[1]]}'.encode("utf-16-be"),
        '{"inputs": [[1]]}'.encode("utf-32-le"),
        b'{"inputs": [[1]], "\xe9": 1}',
    ],
)
def test_bodies_that_are_not_utf8_are_415(client, any_task, raw):
    problem = assert_problem(client.post(f"/tasks/{any_task}/predict", data=raw, content_type="application/json"), 415)
    assert "UTF-8" in problem["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Encoding": "br"},
        {"Content-Encoding": "gzip, gzip"},
        {"Content-Type": "application/json; charset=latin-1"},
    ],
)
def test_other_encodings_or_charsets_are_415(client, any_task, headers):
    headers = {"Content-Type": "application/json", **headers}
    r = client.post(f"/tasks/{any_task}/predict", data=b'{"inputs": [[1]]}', headers=headers)
    assert_problem(r, 415)


def test_a_body_that_is_not_what_its_encoding_says_is_400(client, any_task):
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    r = client.post(f"/tasks/{any_task}/predict", data=b'{"inputs": [[1]]}', headers=headers)
    assert "not valid gzip data" in assert_problem(r, 400)["detail"]


def test_an_integer_past_64_bits_is_out_of_range_not_a_non_integer(client):
    problem = assert_problem(
        client.post(
            "/tasks/echo/predict",
            data=b'{"inputs": [[1, 1000000000000000000000000000000]]}',
            content_type="application/json",
        ),
        422,
    )
    assert "out of range" in problem["detail"] and "non-integer" not in problem["detail"]
    assert problem["errors"][0]["pointer"] == "/inputs/0/1"


def test_no_routing_redirect_builds_a_location_from_the_host(client):
    for path in ("/static//x", "//tasks", "/tasks/", "/healthz/"):
        r = client.get(path, headers={"Host": "evil.example"})
        assert r.status_code in (200, 404), (path, r.status_code)
        assert "Location" not in r.headers, (path, r.headers)


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_are_422_at_their_place(client, any_task, token):
    body = b'{"inputs": [[1, ' + token + b"]]}"
    problem = assert_problem(client.post(f"/tasks/{any_task}/predict", data=body, content_type="application/json"), 422)
    assert "/inputs/0/1" in [e["pointer"] for e in problem["errors"]]


def test_body_over_the_limit_is_413(make_client, any_task):
    client = make_client(max_body_bytes=1000)
    body = {"inputs": [[0] * 10] * 200}
    assert_problem(post(client, any_task, body), 413)


def test_json_with_charset_and_problem_suffix_types_are_accepted(client, app, any_task):
    r = client.post(
        f"/tasks/{any_task}/predict",
        data=orjson.dumps({"inputs": [example(app, any_task)]}),
        content_type="application/json; charset=utf-8",
    )
    assert r.status_code == 200


@pytest.mark.parametrize(
    "body,pointer",
    [
        ({}, "/inputs"),
        ({"inputs": []}, "/inputs"),
        ({"inputs": None}, "/inputs"),
        ({"inputs": "abc"}, "/inputs"),
        ({"inputs": [7]}, "/inputs/0"),
        ({"inputs": [None]}, "/inputs/0"),
        ({"inputs": [{}]}, "/inputs/0"),
        ([1, 2], ""),
        ("inputs", ""),
        (None, ""),
        (3, ""),
    ],
)
def test_semantically_wrong_bodies_are_422_located_by_pointer(client, any_task, body, pointer):
    problem = assert_problem(post(client, any_task, body), 422)
    assert problem["errors"][0]["pointer"] == pointer


@pytest.mark.parametrize("task", INT_HIGH)
@pytest.mark.parametrize("bad", ["x", None, True, False, 1.5, [1], {"a": 1}])
def test_bad_values_are_422_at_their_place(client, app, task, bad):
    seq = list(example(app, task))
    seq[-1] = bad
    problem = assert_problem(post(client, task, {"inputs": [example(app, task), seq]}), 422)
    assert problem["errors"][0]["pointer"] == f"/inputs/1/{len(seq) - 1}"


@pytest.mark.parametrize("task", INT_HIGH)
def test_out_of_range_value_message_names_the_range_and_task(client, app, task):
    m = manifest(app, task)
    high = int(m["input"]["high"])
    seqs = [example(app, task)] * 4
    seqs[3] = list(seqs[3])
    seqs[3][0] = high + 41
    problem = assert_problem(post(client, task, {"inputs": seqs}), 422)
    low = int(m["input"]["low"])
    assert problem["errors"] == [
        {"pointer": "/inputs/3/0", "message": f"{high + 41} is outside {low}..{high} for task {task}"}
    ]
    assert f"/inputs/3/0: {high + 41} is outside {low}..{high} for task {task}" in problem["detail"]


@pytest.mark.parametrize("task", TASKS)
def test_wrong_lengths_are_422(client, app, task):
    spec = manifest(app, task)["input"]
    too_long = [example(app, task)[0]] * (spec["max_length"] + 1)
    bodies = [{"inputs": [too_long]}]
    if spec["min_length"] > 1:
        bodies.append({"inputs": [example(app, task)[: spec["min_length"] - 1]]})
    for body in bodies:
        problem = assert_problem(post(client, task, body), 422)
        assert problem["errors"][0]["pointer"] == "/inputs/0" and "length" in problem["errors"][0]["message"]


def test_every_problem_is_listed_and_the_list_is_bounded(client, app):
    task = INT_HIGH[0] if INT_HIGH else pytest.skip("no integer task committed")
    seq = [True] * len(example(app, task))
    problem = assert_problem(post(client, task, {"inputs": [seq] * 50}), 422)
    assert 1 < len(problem["errors"]) <= 21 and "more" in problem["detail"]


def test_batch_over_the_limit_is_422(make_client, app, any_task):
    client = make_client(max_batch=3)
    problem = assert_problem(post(client, any_task, {"inputs": [example(app, any_task)] * 4}), 422)
    assert problem["errors"][0]["pointer"] == "/inputs" and "limit of 3" in problem["errors"][0]["message"]
    assert post(client, any_task, {"inputs": [example(app, any_task)] * 3}).status_code == 200


def test_unknown_fields_are_422_naming_them(client, app, any_task):
    problem = assert_problem(post(client, any_task, {"inputs": [example(app, any_task)], "input": 1, "a/b": 2}), 422)
    assert {e["pointer"] for e in problem["errors"]} == {"/input", "/a~1b"}


@pytest.mark.parametrize("task", ROLLOUT)
@pytest.mark.parametrize("steps", [0, -1, 1001, True, 2.0, "3", None, [2]])
def test_bad_steps_are_422(client, app, task, steps):
    problem = assert_problem(post(client, task, {"inputs": [example(app, task)], "steps": steps}), 422)
    assert problem["errors"][0]["pointer"] == "/steps"


@pytest.mark.parametrize("task", ROLLOUT)
def test_steps_limit_and_rollout_budget_are_configurable(make_client, app, task):
    client = make_client(max_steps=4, max_rollout_values=10)
    ok = post(client, task, {"inputs": [example(app, task)] * 2, "steps": 4})
    assert ok.status_code == 200
    assert_problem(post(client, task, {"inputs": [example(app, task)], "steps": 5}), 422)
    over = assert_problem(post(client, task, {"inputs": [example(app, task)] * 3, "steps": 4}), 422)
    assert "rollout values" in over["detail"]


@pytest.mark.parametrize("task", NO_ROLLOUT)
def test_steps_on_a_task_without_rollout_is_422(client, app, task):
    problem = assert_problem(post(client, task, {"inputs": [example(app, task)], "steps": 2}), 422)
    assert problem["errors"][0]["pointer"] == "/steps" and "not supported" in problem["detail"]


@pytest.mark.parametrize("task", TOP_K)
def test_bad_top_k_is_422(client, app, task):
    classes = manifest(app, task)["decoder"]["classes"]
    for k in (0, classes + 1, True, 1.0, "2", None):
        problem = assert_problem(post(client, task, {"inputs": [example(app, task)], "top_k": k}), 422)
        assert problem["errors"][0]["pointer"] == "/top_k"
    assert post(client, task, {"inputs": [example(app, task)], "top_k": classes}).status_code == 200


@pytest.mark.parametrize("task", NO_TOP_K)
def test_top_k_on_a_task_without_single_class_output_is_422(client, app, task):
    problem = assert_problem(post(client, task, {"inputs": [example(app, task)], "top_k": 1}), 422)
    assert f"top_k is not supported for task {task}" in problem["detail"]


# --- the rest of the API --------------------------------------------------------------------------


def test_tasks_lists_every_task_with_contract_and_evaluation(client):
    listed = {t["name"]: t for t in client.get("/tasks").get_json()["tasks"]}
    assert sorted(listed) == sorted(TASKS)
    for task in listed.values():
        assert task["available"] and task["input"] and task["output"] and task["evaluation"]


@pytest.mark.parametrize("task", TASKS)
def test_task_detail_example_is_ready_to_run(client, task):
    detail = client.get(f"/tasks/{task}").get_json()
    request = detail["example"]["request"]
    r = client.open(
        request["path"], method=request["method"], headers=request["headers"], data=orjson.dumps(request["body"])
    )
    assert r.status_code == 200
    assert len(r.get_json()["outputs"]) == len(detail["example"]["expected_outputs"])


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["tasks"] == sorted(TASKS)


def test_openapi_document_is_valid_3_1(client):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    validate(doc)
    assert {
        "/tasks/{name}/predict",
        "/tasks",
        "/tasks/{name}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    } <= set(doc["paths"])


def test_request_id_is_echoed_or_generated(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32 and generated != client.get("/healthz").headers["X-Request-ID"]
    unsafe = client.get("/healthz", headers={"X-Request-ID": 'a b"c' + "x" * 300}).headers["X-Request-ID"]
    assert len(unsafe) == 32


def test_metrics_count_requests_and_sequences(make_client, app, any_task):
    client = make_client()
    for _ in range(3):
        post(client, any_task, {"inputs": [example(app, any_task)] * 2})
    post(client, any_task, {"inputs": []})
    text = client.get("/metrics").get_data(as_text=True)
    assert f'toyseq_requests_total{{endpoint="predict.predict",status="200",task="{any_task}"}} 3.0' in text
    assert f'toyseq_requests_total{{endpoint="predict.predict",status="422",task="{any_task}"}} 1.0' in text
    assert f'toyseq_sequences_predicted_total{{task="{any_task}"}} 6.0' in text
    assert "toyseq_request_duration_seconds_bucket" in text


# --- API key ----------------------------------------------------------------------------------------


def test_api_key_is_required_on_predict_when_set(make_client, app, any_task):
    client = make_client(api_key="s3cret-key")
    body = {"inputs": [example(app, any_task)]}
    r = assert_problem(post(client, any_task, body), 401)
    assert "s3cret" not in orjson.dumps(r).decode()
    assert post(client, any_task, body).headers["WWW-Authenticate"].startswith("Bearer")
    for headers in (
        {"Authorization": "Bearer wrong"},
        {"X-API-Key": "s3cret-ke"},
        {"Authorization": "s3cret-key"},
        {"X-API-Key": "s3cret-key-and-more"},
        {"Authorization": "Basic czNjcmV0LWtleQ=="},
    ):
        assert_problem(post(client, any_task, body, headers=headers), 401)
    assert_problem(post(client, "no-such-task", body), 401)  # no task names for strangers
    assert post(client, any_task, body, headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
    assert post(client, any_task, body, headers={"authorization": "bearer s3cret-key"}).status_code == 200
    assert post(client, any_task, body, headers={"X-API-Key": "s3cret-key"}).status_code == 200
    assert client.get("/tasks").status_code == 200 and client.get("/readyz").status_code == 200


def test_predict_is_open_without_an_api_key(client, app, any_task):
    assert post(client, any_task, {"inputs": [example(app, any_task)]}).status_code == 200


# --- import hygiene ---------------------------------------------------------------------------------


def test_service_never_imports_torch_or_training(tmp_path):
    code = (
        "import sys, service, service.server.http.app, service.server.store.registry, service.server.http.routes.predict, service.server.http.routes.tasks, "
        "service.server.http.routes.health, service.server.http.routes.docs, service.server.gunicorn_conf, service.server.observability.metrics, service.server.http.openapi;"
        "service.create_app({'models_dir': sys.argv[1]});"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'training')]; print(bad); "
        "sys.exit(1 if bad else 0)"
    )
    from benchmarks.harness.paths import MODELS_DIR

    result = subprocess.run(
        [sys.executable, "-c", code, str(MODELS_DIR)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_importing_the_codec_does_not_import_flask():
    result = subprocess.run(
        [sys.executable, "-c", "import sys, service.core.codec; sys.exit('flask' in sys.modules)"],
        cwd=ROOT,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0


@pytest.mark.parametrize("task", ROLLOUT)
def test_rollout_of_mixed_lengths_equals_each_sequence_rolled_alone(client, app, task):
    spec = manifest(app, task)["input"]
    ex = example(app, task)
    lengths = sorted({spec["min_length"], len(ex), spec["max_length"]})
    seqs = [(ex * spec["max_length"])[:n] for n in lengths]
    together = post(client, task, {"inputs": seqs, "steps": 6}).get_json()["outputs"]
    alone = [post(client, task, {"inputs": [s], "steps": 6}).get_json()["outputs"][0] for s in seqs]
    assert together == alone
