"""The Open Inference Protocol v2 through the Flask test client on the real app: metadata, health, infer
answers equal to the native endpoint's for every task (JSON and binary tensor data), and every error as the
protocol's {"error": ...} with a 4xx status."""

from __future__ import annotations

import functools
import re

import numpy as np
import orjson
import pytest

from benchmarks.harness.paths import MODELS_DIR, ROOT, TASKS
from service.core import manifest as manifest_mod


@functools.cache  # loading checks the manifest: ~0.2 s each
def manifest(task) -> dict:
    return manifest_mod.load(MODELS_DIR / task, check_hash=False)


ROLLOUT = [t for t in TASKS if manifest(t)["output"]["rollout"]]
TOP_K = [t for t in TASKS if manifest(t)["output"]["classes"] and manifest(t)["output"]["kind"] != "echo"]
INT_TASKS = [t for t in TASKS if manifest(t)["input"]["dtype"] == "int"]
FLOAT_TASKS = [t for t in TASKS if manifest(t)["input"]["dtype"] == "float"]


@pytest.fixture(scope="module")
def any_task():
    if not TASKS:
        pytest.skip("no committed models yet")
    return TASKS[0]


def dtype_of(task) -> str:
    return "INT64" if manifest(task)["input"]["dtype"] == "int" else "FP64"


def examples(task, n=3) -> list[list]:
    """n different valid sequences of one length: the worked example, then shifted copies where the
    range allows (so rows differ and a row mix-up shows)."""
    m = manifest(task)
    base = m["example"]["input"]
    rows = [list(base)]
    low, high = m["input"].get("low"), m["input"].get("high")
    for k in range(1, n):
        shifted = [v + k for v in base]
        rows.append(shifted if high is None or max(shifted) <= high else list(reversed(base)))
    assert all(low is None or min(r) >= low for r in rows)
    return rows


def native(client, task, body) -> dict:
    r = client.post(f"/tasks/{task}/predict", data=orjson.dumps(body), content_type="application/json")
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def infer(client, task, body, path=None, **kw):
    return client.post(
        path or f"/v2/models/{task}/infer", data=orjson.dumps(body), content_type="application/json", **kw
    )


def v2_body(task, rows, **parameters) -> dict:
    body = {
        "id": "req-1",
        "inputs": [
            {
                "name": "input",
                "datatype": dtype_of(task),
                "shape": [len(rows), len(rows[0])],
                "data": [v for r in rows for v in r],
            }
        ],
    }
    if parameters:
        body["parameters"] = parameters
    return body


def tensor(outputs: list, name: str) -> np.ndarray:
    found = next(o for o in outputs if o["name"] == name)
    return np.array(found["data"]).reshape(found["shape"])


def assert_error(response, status) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"], body
    assert "Traceback" not in body["error"]
    return body["error"]


# --- metadata and health ----------------------------------------------------------------------------------


def test_server_metadata_live_and_ready(client):
    meta = client.get("/v2").get_json()
    assert (
        meta["name"] == "toyseq"
        and meta["version"]
        and meta["extensions"]
        == ["binary_tensor_data", "parameters", "statistics", "model_repository", "model_configuration"]
    )
    assert client.get("/v2/health/live").get_json() == {"live": True}
    r = client.get("/v2/health/ready")
    assert r.status_code == 200 and r.get_json() == {"ready": True}


def test_not_ready_without_models(make_client, tmp_path):
    r = make_client(models_dir=str(tmp_path)).get("/v2/health/ready")
    assert r.status_code == 503 and r.get_json() == {"ready": False}


@pytest.mark.parametrize("task", TASKS)
def test_model_metadata_describes_the_tensors(client, task):
    m = manifest(task)
    meta = client.get(f"/v2/models/{task}").get_json()
    version = "1"  # Triton's integer versions: the model served since start-up; its sha256 is a parameter
    assert meta["name"] == task and meta["versions"] == [version] and meta["platform"] == "onnxruntime_onnx"
    assert meta["parameters"]["sha256"] == m["onnx"]["sha256"]
    spec = m["input"]
    length = spec["max_length"] if spec["min_length"] == spec["max_length"] else -1
    assert meta["inputs"] == [{"name": "input", "datatype": dtype_of(task), "shape": [-1, length]}]
    # outputs: what an infer request without parameters returns, then in_domain (returned when named);
    # parameters: what each one adds
    names = [o["name"] for o in meta["outputs"]]
    assert names == (["output", "wrong_position"] if task == "arith-next" else ["output"]) + ["in_domain"]
    assert meta["outputs"][-1] == {"name": "in_domain", "datatype": "BOOL", "shape": [-1]}
    parameters = meta.get("parameters", {})
    assert parameters["on_request_outputs"] == "in_domain"
    assert (parameters.get("steps_outputs") == "rollout") == (task in ROLLOUT)
    assert (parameters.get("top_k_outputs") == "top_k_values,top_k_p") == (task in TOP_K)
    assert all(type(v) in (str, int) for v in parameters.values())  # the protocol's parameters are scalars
    assert meta["outputs"][0]["datatype"] == ("INT64" if m["output"]["dtype"] == "int" else "FP64")
    assert client.get(f"/v2/models/{task}/versions/{version}").get_json() == meta
    assert client.get(f"/v2/models/{task}/ready").get_json() == {"name": task, "ready": True}
    assert client.get(f"/v2/models/{task}/versions/{version}/ready").status_code == 200


def test_unknown_model_and_version_are_404(client, any_task):
    # Triton's words, which tritonclient's examples and Triton's own tests check
    assert assert_error(client.get("/v2/models/nope"), 404).startswith("Request for unknown model: 'nope' is not found")
    assert_error(client.get("/v2/models/nope/ready"), 404)
    assert assert_error(client.get(f"/v2/models/{any_task}/versions/0000"), 404).startswith(
        f"Request for unknown model: '{any_task}' version 0000 is not found"
    )
    assert_error(client.get(f"/v2/models/{any_task}/versions/0000/config"), 404)
    assert_error(client.get(f"/v2/models/{any_task}/versions/2/ready"), 404)  # not ready (gRPC: ready=false)
    assert_error(
        infer(
            client,
            any_task,
            v2_body(any_task, examples(any_task, 1)),
            path=f"/v2/models/{any_task}/versions/0000/infer",
        ),
        404,
    )


def test_unknown_v2_paths_and_wrong_methods(client, any_task):
    assert_error(client.get(f"/v2/models/{any_task}/nope"), 404)
    assert_error(client.get(f"/v2/models/{any_task}/statistics"), 404)
    assert_error(client.post(f"/v2/models/{any_task}/stats"), 405)  # the statistics extension is GET
    r = client.get(f"/v2/models/{any_task}/infer")
    assert "use POST" in assert_error(r, 405) and r.headers["Allow"] == "POST"
    assert_error(client.post("/v2/health/ready"), 405)


# --- infer: the native endpoint's answers -------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_infer_answers_like_the_native_endpoint(client, task):
    rows = examples(task)
    r = infer(client, task, v2_body(task, rows))
    assert r.status_code == 200 and r.mimetype == "application/json", r.get_data(as_text=True)
    body = r.get_json()
    m = manifest(task)
    assert body["model_name"] == task and body["model_version"] == "1" and body["id"] == "req-1"
    assert body["parameters"] == {"sha256": m["onnx"]["sha256"]}  # which model file answered
    out = body["outputs"][0]
    answer = native(client, task, {"inputs": rows})
    expected = answer["outputs"]
    meta = client.get(f"/v2/models/{task}").get_json()
    on_request = meta["parameters"]["on_request_outputs"].split(",")
    assert [o["name"] for o in body["outputs"]] == [o["name"] for o in meta["outputs"] if o["name"] not in on_request]
    if "wrong_position" in answer:
        positions = [-1 if p is None else p for p in answer["wrong_position"]]
        assert tensor(body["outputs"], "wrong_position").tolist() == positions
    assert out["name"] == "output" and out["datatype"] == ("INT64" if m["output"]["dtype"] == "int" else "FP64")
    assert tensor(body["outputs"], "output").tolist() == expected
    assert out["shape"] == list(np.array(expected).shape)


# the inputs outside each task's kind, and one inside
OUTSIDE = {
    "ramp": [[1.0, 5.0, 2.0], [0.0, 0.05, 0.1]],
    "arith-next": [[1, 2, 3, 4, 5, 6, 70], [1, 2, 30, 4, 50, 6, 7], [100, 250, 300, 400, 500, 600, 700]],
    "alternating": [[1, 1, 0], [0, 1, 0]],
}


@pytest.mark.parametrize("task", [t for t in OUTSIDE if t in TASKS])
def test_in_domain_native_and_v2_json_and_binary(client, task):
    """in_domain per input on the native answer; on v2 only when named, as JSON booleans or binary bytes, the
    same values; the other outputs are the same with or without it."""
    rows = OUTSIDE[task]
    expected = [False] * (len(rows) - 1) + [True]
    answer = native(client, task, {"inputs": rows})
    assert answer["in_domain"] == expected and list(answer)[-1] == "in_domain"
    plain = infer(client, task, v2_body(task, rows)).get_json()
    assert "in_domain" not in [o["name"] for o in plain["outputs"]]
    named = {**v2_body(task, rows), "outputs": [{"name": "output"}, {"name": "in_domain"}]}
    body = infer(client, task, named).get_json()
    assert [o["name"] for o in body["outputs"]] == ["output", "in_domain"]
    assert body["outputs"][1] == {"name": "in_domain", "datatype": "BOOL", "shape": [len(rows)], "data": expected}
    assert body["outputs"][0] == plain["outputs"][0]
    named["outputs"] = [{"name": "in_domain", "parameters": {"binary_data": True}}]
    r = infer(client, task, named)
    size = int(r.headers["Inference-Header-Content-Length"])
    header, data = orjson.loads(r.data[:size]), r.data[size:]
    assert header["outputs"][0]["parameters"] == {"binary_data_size": len(rows)}
    assert np.frombuffer(data, "?").tolist() == expected
    if manifest(task)["output"]["rollout"]:  # with steps, in_domain describes the input window
        rolled = {**v2_body(task, rows, steps=2), "outputs": [{"name": "rollout"}, {"name": "in_domain"}]}
        assert tensor(infer(client, task, rolled).get_json()["outputs"], "in_domain").tolist() == expected


def test_in_domain_is_true_on_tasks_whose_contract_is_their_domain(client):
    for task in [t for t in TASKS if manifest(t)["domain"]["rule"] == "contract"]:
        rows = examples(task)
        assert native(client, task, {"inputs": rows})["in_domain"] == [True] * len(rows)
        info = client.get(f"/tasks/{task}").get_json()
        assert info["domain"] == {"rule": "contract", "description": "every input the contract accepts"}
    info = client.get("/tasks/ramp").get_json()
    assert info["domain"]["rule"] == "evenly-spaced" and info["domain"]["tolerance"] == 1e-3
    assert "evenly spaced" in info["domain"]["description"]


def test_metrics_count_inputs_in_and_out_of_domain(client):
    """The contract monitor: /metrics counts each task's inputs in and out of its domain, native and v2 alike."""

    def counts() -> dict[tuple[str, str], float]:
        text = client.get("/metrics").get_data(as_text=True)
        found = {}
        for line in text.splitlines():
            if line.startswith("toyseq_domain_inputs_total{"):
                labels, value = line[len("toyseq_domain_inputs_total{") :].split("} ")
                parts = dict(p.split("=") for p in labels.split(","))
                found[(parts["task"].strip('"'), parts["in_domain"].strip('"'))] = float(value)
        return found

    before = counts()
    rows = OUTSIDE["ramp"]
    native(client, "ramp", {"inputs": rows * 3})  # 3 in, 3 out
    assert infer(client, "ramp", v2_body("ramp", rows)).status_code == 200  # 1 in, 1 out
    native(client, "echo", {"inputs": [[1, 2], [3]]})
    after = counts()

    def delta(key):
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert (delta(("ramp", "true")), delta(("ramp", "false"))) == (4.0, 4.0)
    assert (delta(("echo", "true")), delta(("echo", "false"))) == (2.0, 0.0)
    # docs/operations.md's alert rule names this metric and its labels as served
    page = (ROOT / "docs" / "operations.md").read_text()
    rule = page[page.index("alert: ToyseqInputsOutsideDomain") :].split("```")[0]
    assert set(re.findall(r"toyseq_\w+", rule)) == {"toyseq_domain_inputs_total"}
    assert 'in_domain="false"' in rule and "by (task)" in rule


@pytest.mark.parametrize("task", ROLLOUT)
def test_steps_parameter_rolls_out_like_native(client, task):
    rows = examples(task, 2)
    body = infer(client, task, v2_body(task, rows, steps=4)).get_json()
    expected = native(client, task, {"inputs": rows, "steps": 4})["outputs"]
    assert tensor(body["outputs"], "rollout").tolist() == expected
    assert tensor(body["outputs"], "output").tolist() == [row[0] for row in expected]


@pytest.mark.parametrize("task", TOP_K)
def test_top_k_parameter_like_native(client, task):
    rows = examples(task, 2)
    body = infer(client, task, v2_body(task, rows, top_k=2)).get_json()
    expected = native(client, task, {"inputs": rows, "top_k": 2})["top_k"]
    assert tensor(body["outputs"], "top_k_values").tolist() == [[t["value"] for t in row] for row in expected]
    assert tensor(body["outputs"], "top_k_p").tolist() == [[t["p"] for t in row] for row in expected]


def test_nested_data_requested_outputs_and_no_id(client, any_task):
    rows = examples(any_task, 2)
    body = v2_body(any_task, rows)
    body["inputs"][0]["data"] = rows
    del body["id"]
    body["outputs"] = [{"name": "output"}]
    answer = infer(client, any_task, body).get_json()
    assert "id" not in answer
    assert tensor(answer["outputs"], "output").tolist() == native(client, any_task, {"inputs": rows})["outputs"]


@pytest.mark.parametrize("task", FLOAT_TASKS)
def test_fp32_input_is_accepted(client, task):
    rows = [np.float32(v).item() for v in examples(task, 1)[0]]  # values a float32 tensor can hold
    body = v2_body(task, [rows])
    body["inputs"][0]["datatype"] = "FP32"
    answer = infer(client, task, body).get_json()
    assert tensor(answer["outputs"], "output").tolist() == native(client, task, {"inputs": [rows]})["outputs"]


def binary_request(task, rows, datatype=None, outputs=None, parameters=None) -> tuple[bytes, dict]:
    datatype = datatype or dtype_of(task)
    data = np.array(rows, dtype={"INT64": "<i8", "INT32": "<i4", "FP64": "<f8", "FP32": "<f4"}[datatype]).tobytes()
    header = {
        "inputs": [
            {
                "name": "input",
                "datatype": datatype,
                "shape": [len(rows), len(rows[0])],
                "parameters": {"binary_data_size": len(data)},
            }
        ]
    }
    if outputs is not None:
        header["outputs"] = outputs
    if parameters:
        header["parameters"] = parameters
    head = orjson.dumps(header)
    return head + data, {"Inference-Header-Content-Length": str(len(head))}


def split_binary(response) -> tuple[dict, bytes]:
    size = int(response.headers["Inference-Header-Content-Length"])
    data = response.get_data()
    return orjson.loads(data[:size]), data[size:]


@pytest.mark.parametrize("task", TASKS)
def test_binary_tensor_data_in_and_out(client, task):
    rows = examples(task)
    body, headers = binary_request(task, rows, outputs=[{"name": "output", "parameters": {"binary_data": True}}])
    r = client.post(f"/v2/models/{task}/infer", data=body, headers=headers, content_type="application/octet-stream")
    assert r.status_code == 200 and r.mimetype == "application/octet-stream", r.get_data()[:300]
    header, data = split_binary(r)
    [out] = header["outputs"]
    assert "data" not in out and out["parameters"]["binary_data_size"] == len(data)
    values = np.frombuffer(data, {"INT64": "<i8", "FP64": "<f8"}[out["datatype"]]).reshape(out["shape"])
    assert values.tolist() == native(client, task, {"inputs": rows})["outputs"]


def test_binary_input_json_output_and_int32(client):
    task = next(t for t in INT_TASKS if manifest(t)["input"]["high"] < 2**31)
    rows = examples(task, 2)
    body, headers = binary_request(task, rows, datatype="INT32")
    r = client.post(f"/v2/models/{task}/infer", data=body, headers=headers)
    assert (
        r.status_code == 200 and r.mimetype == "application/json" and "Inference-Header-Content-Length" not in r.headers
    )
    assert tensor(r.get_json()["outputs"], "output").tolist() == native(client, task, {"inputs": rows})["outputs"]


def test_binary_data_output_parameter_and_raw_binary_request(client, any_task):
    rows = examples(any_task, 1)
    body, headers = binary_request(any_task, rows, parameters={"binary_data_output": True})
    header, data = split_binary(client.post(f"/v2/models/{any_task}/infer", data=body, headers=headers))
    expected = native(client, any_task, {"inputs": rows})["outputs"]
    kind = {"INT64": "<i8", "FP64": "<f8"}[header["outputs"][0]["datatype"]]
    assert np.frombuffer(data, kind).reshape(header["outputs"][0]["shape"]).tolist() == expected
    # a raw request: the body is one sequence's bytes, every output comes back binary
    raw = np.array(rows[0], dtype={"INT64": "<i8", "FP64": "<f8"}[dtype_of(any_task)]).tobytes()
    r = client.post(f"/v2/models/{any_task}/infer", data=raw, headers={"Inference-Header-Content-Length": "0"})
    header, data = split_binary(r)
    assert np.frombuffer(data, kind).reshape(header["outputs"][0]["shape"]).tolist() == expected


# --- errors: the protocol's {"error": ...}, never a 500 -------------------------------------------------


def _bad_bodies(task):
    good = v2_body(task, examples(task, 1))
    inp = good["inputs"][0]
    m = manifest(task)
    length = len(inp["data"])
    return {
        "not an object": [1, 2],
        "unknown field": {**good, "input": []},
        "no inputs": {"id": "x"},
        "two inputs": {**good, "inputs": [inp, inp]},
        "wrong input name": {**good, "inputs": [{**inp, "name": "x"}]},
        "wrong datatype": {**good, "inputs": [{**inp, "datatype": "BYTES"}]},
        "shape of rank 1": {**good, "inputs": [{**inp, "shape": [length]}]},
        "negative shape": {**good, "inputs": [{**inp, "shape": [-1, length]}]},
        "data size mismatch": {**good, "inputs": [{**inp, "shape": [2, length]}]},
        "empty batch": {**good, "inputs": [{**inp, "shape": [0, length], "data": []}]},
        "no data": {**good, "inputs": [{k: v for k, v in inp.items() if k != "data"}]},
        "string data": {**good, "inputs": [{**inp, "data": ["a"] * length}]},
        "value out of range": {**good, "inputs": [{**inp, "data": [10**12] * length}]},
        "id not a string": {**good, "id": 5},
        "timeout not a whole number": {**good, "parameters": {"timeout": 1.5}},
        "duplicate output": {**good, "outputs": [{"name": "output"}, {"name": "output"}]},
        "parameter is an object": {**good, "parameters": {"steps": {"a": 1}}},
        "steps without rollout or out of range": {**good, "parameters": {"steps": 0 if m["output"]["rollout"] else 2}},
        "unknown output": {**good, "outputs": [{"name": "nope"}]},
        "rollout without steps": {**good, "outputs": [{"name": "rollout"}]},
        "binary_data not a bool": {**good, "outputs": [{"name": "output", "parameters": {"binary_data": "yes"}}]},
    }


@pytest.mark.parametrize("case", list(_bad_bodies(TASKS[0])) if TASKS else [])
def test_bad_requests_are_400_with_a_message(client, tasks, case):
    for task in tasks:
        message = assert_error(infer(client, task, _bad_bodies(task)[case]), 400)
        assert len(message) < 2000


def test_out_of_range_value_names_row_column_and_range(client):
    task = next(t for t in INT_TASKS if manifest(t)["input"]["high"] is not None)
    rows = examples(task, 2)
    rows[1][0] = manifest(task)["input"]["high"] + 1
    message = assert_error(infer(client, task, v2_body(task, rows)), 400)
    assert "input 'input' row 1 column 0" in message and f"for task {task}" in message, message


def test_bad_binary_requests_are_400(client, any_task):
    rows = examples(any_task, 1)
    body, headers = binary_request(any_task, rows)
    url = f"/v2/models/{any_task}/infer"
    assert_error(client.post(url, data=body[:-1], headers=headers), 400)  # a byte short
    assert_error(client.post(url, data=body + b"\0", headers=headers), 400)  # a byte over
    assert_error(client.post(url, data=body, headers={"Inference-Header-Content-Length": str(len(body) + 1)}), 400)
    assert_error(client.post(url, data=body, headers={"Inference-Header-Content-Length": "-3"}), 400)
    assert_error(client.post(url, data=body, headers={"Inference-Header-Content-Length": "3"}), 400)  # cut JSON
    assert_error(client.post(url, data=b"\1\2\3", headers={"Inference-Header-Content-Length": "0"}), 400)
    assert_error(client.post(url, data=body), 400)  # binary data without the header is not JSON


def test_malformed_json_and_body_over_the_limit(make_client, client, any_task):
    assert_error(client.post(f"/v2/models/{any_task}/infer", data=b"{", content_type="application/json"), 400)
    small = make_client(max_body_bytes=100)
    assert_error(infer(small, any_task, v2_body(any_task, [[1] * 200])), 413)


def test_batch_limit_applies(make_client, any_task):
    limited = make_client(max_batch=2)
    assert "limit of 2" in assert_error(infer(limited, any_task, v2_body(any_task, examples(any_task, 3))), 400)


def test_api_key_applies_to_infer_only(make_client, any_task):
    keyed = make_client(api_key="s3cret")
    body = v2_body(any_task, examples(any_task, 1))
    r = infer(keyed, any_task, body)
    assert_error(r, 401) and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert infer(keyed, any_task, body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert infer(keyed, any_task, body, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert keyed.get(f"/v2/models/{any_task}").status_code == 200  # metadata stays open, like GET /tasks


def test_request_ids_metrics_and_openapi(make_client, any_task):
    app_client = make_client()
    r = infer(app_client, any_task, v2_body(any_task, examples(any_task, 3)), headers={"X-Request-ID": "abc-1"})
    assert r.status_code == 200 and r.headers["X-Request-ID"] == "abc-1"
    metrics = app_client.get("/metrics").get_data(as_text=True)
    assert 'endpoint="v2.infer"' in metrics and f'task="{any_task}"' in metrics
    doc = app_client.get("/openapi.json").get_json()
    for path in (
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    ):
        assert path in doc["paths"], path
    params = doc["components"]["schemas"]["V2InferRequest"]["properties"]["parameters"]["properties"]
    assert {"steps", "top_k", "binary_data_output"} <= set(params)


# --- the protocol as Triton's and KServe's suites check it (issue 24) -------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_infer_without_outputs_returns_every_output_its_parameters_produce(client, task):
    """The protocol: "if not specified all outputs produced by the model will be returned". Without parameters
    that is what the metadata lists but the outputs it names as on request (in_domain, so that answers are what
    they were before it); each parameter adds the outputs the metadata's parameters name for it."""
    meta = client.get(f"/v2/models/{task}").get_json()
    on_request = meta["parameters"]["on_request_outputs"].split(",")
    listed = [o["name"] for o in meta["outputs"] if o["name"] not in on_request]
    rows = examples(task, 2)
    plain = infer(client, task, v2_body(task, rows)).get_json()
    assert [o["name"] for o in plain["outputs"]] == listed
    for option, value in (("steps", 3), ("top_k", 2)):
        added = meta.get("parameters", {}).get(f"{option}_outputs")
        if not added:
            continue
        body = infer(client, task, v2_body(task, rows, **{option: value})).get_json()
        assert [o["name"] for o in body["outputs"]] == listed + added.split(",")
        # asked for by name without its parameter: a 400 that names the parameter and its range
        named = {**v2_body(task, rows), "outputs": [{"name": added.split(",")[0]}]}
        message = assert_error(infer(client, task, named), 400)
        assert f"parameter {option} (1..{meta['parameters'][f'{option}_max']})" in message, message


def test_an_unknown_output_is_400_in_tritons_words(client, tasks):
    # qa/L0_output_name: the message starts "unexpected inference output 'DUMMY' for model"
    for task in tasks:
        body = {**v2_body(task, examples(task, 1)), "outputs": [{"name": "DUMMY"}]}
        assert assert_error(infer(client, task, body), 400).startswith("unexpected inference output 'DUMMY' for model")


def test_duplicate_output_names_are_400(client, any_task):
    # Triton answers 400 when a request names an output twice (qa/L0_output_name); so does toyseq
    body = {**v2_body(any_task, examples(any_task, 1)), "outputs": [{"name": "output"}, {"name": "output"}]}
    assert "requested more than once" in assert_error(infer(client, any_task, body), 400)


def test_unknown_parameters_are_accepted_and_named_in_a_header(client, any_task):
    rows = examples(any_task, 2)
    expected = native(client, any_task, {"inputs": rows})["outputs"]
    # what tritonclient sends for infer(..., priority=1, sequence_id=...) and custom parameters (L0_parameters)
    body = v2_body(
        any_task, rows, key1="value", priority=1, sequence_id=7, sequence_start=True, binary_data_output=False
    )
    r = infer(client, any_task, body)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert tensor(r.get_json()["outputs"], "output").tolist() == expected
    assert r.headers["X-Ignored-Parameters"] == "key1, priority, sequence_id, sequence_start"
    # toyseq's own parameters are read, not ignored: no header
    assert "X-Ignored-Parameters" not in infer(client, any_task, v2_body(any_task, rows)).headers
    # names are percent-encoded, so that no key can inject a header
    r = infer(client, any_task, v2_body(any_task, rows, **{"a\r\nSet-Cookie: x": 1}))
    assert r.status_code == 200 and r.headers["X-Ignored-Parameters"] == "a%0D%0ASet-Cookie%3A%20x"


def test_timeout_parameter_is_honoured(client):
    task = "arith-next" if "arith-next" in TASKS else TASKS[0]
    rows = examples(task, 3)
    # a generous timeout (tritonclient sends microseconds): answered
    r = infer(client, task, v2_body(task, rows, timeout=10_000_000))
    assert r.status_code == 200 and "X-Ignored-Parameters" not in r.headers
    assert infer(client, task, v2_body(task, rows, timeout=0)).status_code == 200  # 0: no timeout, as Triton
    # 1 microsecond cannot hold any model work: refused before it runs, as Triton refuses an expired request
    message = assert_error(infer(client, task, v2_body(task, rows, timeout=1)), 503)
    assert "timeout of 1 us" in message, message
    assert "whole number" in assert_error(infer(client, task, v2_body(task, rows, timeout=-5)), 400)


def test_model_list_as_kserve(client, tasks):
    # KServe's GET /v2/models as its test_server.py test_list_models_v2 checks it: 200, {"models": [names]}
    r = client.get("/v2/models")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.get_json() == {"models": sorted(tasks)}


def _compressors():
    import gzip
    import zlib

    return {"gzip": gzip.compress, "deflate": zlib.compress, "x-gzip": gzip.compress}


@pytest.mark.parametrize("coding", ["gzip", "deflate", "x-gzip"])
def test_compressed_request_bodies_on_both_paths(client, any_task, coding):
    compress = _compressors()[coding]
    rows = examples(any_task, 3)
    expected = native(client, any_task, {"inputs": rows})["outputs"]
    headers = {"Content-Encoding": coding}
    r = client.post(
        f"/v2/models/{any_task}/infer",
        data=compress(orjson.dumps(v2_body(any_task, rows))),
        headers=headers,
        content_type="application/json",
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    assert tensor(r.get_json()["outputs"], "output").tolist() == expected
    # binary tensor data: Inference-Header-Content-Length counts the inflated body, as tritonclient sends it
    body, binary_headers = binary_request(any_task, rows)
    r = client.post(f"/v2/models/{any_task}/infer", data=compress(body), headers={**binary_headers, **headers})
    assert r.status_code == 200, r.get_data(as_text=True)
    r = client.post(
        f"/tasks/{any_task}/predict",
        data=compress(orjson.dumps({"inputs": rows})),
        headers=headers,
        content_type="application/json",
    )
    assert r.status_code == 200 and r.get_json()["outputs"] == expected


def test_compression_bomb_is_refused_413_without_inflating_it(make_client, any_task):
    import time
    import zlib

    limit = 64 * 1024
    small = make_client(max_body_bytes=limit)
    # 1 GiB of zeros deflates to ~1 MiB: over the limit as sent, so made smaller: 200 MB in ~200 KB, kept under
    # the limit as sent by sending 50 MB (~50 KB compressed) inside a valid JSON string
    bomb = zlib.compress(b'{"inputs": "' + b"0" * (50 * 1024 * 1024) + b'"}', 9)
    assert len(bomb) < limit
    started = time.perf_counter()
    r = small.post(
        f"/tasks/{any_task}/predict",
        data=bomb,
        headers={"Content-Encoding": "deflate"},
        content_type="application/json",
    )
    assert r.status_code == 413 and "inflates past the limit of 65536 bytes" in r.get_json()["detail"]
    r2 = small.post(
        f"/v2/models/{any_task}/infer",
        data=bomb,
        headers={"Content-Encoding": "deflate"},
        content_type="application/json",
    )
    assert "inflates past the limit" in assert_error(r2, 413)
    assert time.perf_counter() - started < 2.0  # two refusals; inflating 100 MB would take longer and hold it


def test_other_or_broken_encodings(client, any_task):
    import gzip

    plain = orjson.dumps(v2_body(any_task, examples(any_task, 1)))
    url = f"/v2/models/{any_task}/infer"
    r = client.post(url, data=plain, headers={"Content-Encoding": "br"}, content_type="application/json")
    assert "not supported" in assert_error(r, 415) and "gzip" in r.headers["Accept-Encoding"]
    r = client.post(url, data=plain, headers={"Content-Encoding": "gzip"}, content_type="application/json")
    assert "not valid gzip data" in assert_error(r, 400)
    r = client.post(url, data=gzip.compress(plain)[:-9], headers={"Content-Encoding": "gzip"})
    assert "ends before" in assert_error(r, 400)
    r = client.post(url, data=gzip.compress(plain) + b"xx", headers={"Content-Encoding": "gzip"})
    assert "after its compressed data" in assert_error(r, 400)
    r = client.post(url, data=gzip.compress(gzip.compress(plain)), headers={"Content-Encoding": "gzip, gzip"})
    assert_error(r, 415)
    r = client.post(url, data=gzip.compress(plain), headers={"Content-Encoding": "identity, gzip"})
    assert r.status_code == 200, r.get_data(as_text=True)


def test_openapi_says_what_the_checks_take(client, tasks):
    """The document is built from the checks' constants: its fields, parameters, names and datatypes are the
    ones the service reads, and every output a model metadata lists is one it names."""
    from service.server.protocol import v2 as oip
    from service.server.protocol.checks import REQUEST_FIELDS

    doc = client.get("/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    assert tuple(schemas["PredictRequest"]["properties"]) == REQUEST_FIELDS
    request = schemas["V2InferRequest"]["properties"]
    assert tuple(request) == oip.REQUEST_FIELDS
    assert tuple(request["parameters"]["properties"]) == oip.READ_PARAMETERS
    tensor = request["inputs"]["items"]["properties"]
    assert tensor["name"] == {"const": "input"} and tensor["datatype"]["enum"] == ["INT64", "INT32", "FP64", "FP32"]
    named = set(request["outputs"]["items"]["properties"]["name"]["enum"])
    for task in tasks:
        meta = client.get(f"/v2/models/{task}").get_json()
        produced = [o["name"] for o in meta["outputs"]]
        for key, value in meta.get("parameters", {}).items():
            if key.endswith("_outputs"):
                produced += value.split(",")
        assert set(produced) <= named, task
    assert schemas["V2ServerMetadata"]["properties"]["extensions"]["items"]["enum"] == oip.EXTENSIONS
    assert "/v2/models" in doc["paths"]
    infer = doc["paths"]["/v2/models/{name}/infer"]["post"]
    assert "X-Ignored-Parameters" in infer["responses"]["200"]["headers"]
    encodings = next(p for p in infer["parameters"] if p["name"] == "Content-Encoding")["schema"]["enum"]
    assert encodings == ["gzip", "deflate", "identity"]


def test_repository_index_refuses_parameters_that_are_not_an_object(client):
    # the schema fuzz's find (ST201): {"parameters": true} was answered 200
    r = client.post("/v2/repository/index", data=b'{"parameters": true}', content_type="application/json")
    assert "must be a JSON object" in assert_error(r, 400)
    assert (
        client.post("/v2/repository/index", data=b'{"parameters": {}}', content_type="application/json").status_code
        == 200
    )
