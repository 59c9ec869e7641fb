"""Standard Open Inference Protocol clients against real gunicorn on 127.0.0.1: Triton's `tritonclient.http`
(JSON and its default binary tensor data) and KServe's SDK REST client (kserve.InferenceRESTClient, run from its
own venv, .venv-kserve, since kserve pins packages the project pins otherwise). Every answer equals the native
endpoint's for the same input.

    .venv/bin/python -m pytest tests/server/http/test_v2_clients.py
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import requests

from benchmarks.harness.paths import ROOT, TASKS
from tests.support.v2 import (
    API_KEY,
    AUTH,
    KSERVE_PYTHON,
    expected_tensors,
    input_dtype,
    manifest,
    native,
    options,
    rows_for,
)

pytestmark = pytest.mark.slow
L0_PARAMETERS = [
    {"key1": "value1", "key2": "value2"},
    {"key1": 1, "key2": 2},
    {"key1": 123.123, "key2": 321.321},
    {"key1": True, "key2": "value2"},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_copy):
    from benchmarks.harness.server import Server

    if not TASKS:
        pytest.skip("no committed models yet")
    with Server(tmp_path_factory.mktemp("v2") / "gunicorn.log", {"TOYSEQ_API_KEY": API_KEY}, models_copy) as s:
        yield s


def test_tritonclient_health_metadata_and_infer_json_and_binary(server):
    httpclient = pytest.importorskip("tritonclient.http", reason="pip install -e '.[test]' (tritonclient[http])")
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}", network_timeout=30.0)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert {"binary_tensor_data", "parameters"} <= set(client.get_server_metadata()["extensions"])
        for task in TASKS:
            assert client.is_model_ready(task)
            meta = client.get_model_metadata(task)
            version = "1"  # Triton's integer versions; the sha256 is a metadata parameter
            assert meta["name"] == task and meta["versions"] == [version]
            assert meta["parameters"]["sha256"] == manifest(task)["onnx"]["sha256"]
            assert client.is_model_ready(task, model_version=version)
            assert not client.is_model_ready(task, model_version="2")
            rows, params = rows_for(task), options(task)
            expected = expected_tensors(native(server.url, task, rows, params), params)
            array = np.array(rows, dtype=np.int64 if input_dtype(task) == "INT64" else np.float64)
            for binary_in in (False, True):
                for binary_out in (False, True):
                    tensor = httpclient.InferInput("input", list(array.shape), input_dtype(task))
                    tensor.set_data_from_numpy(array, binary_data=binary_in)
                    wanted = [httpclient.InferRequestedOutput(name, binary_data=binary_out) for name in expected]
                    result = client.infer(
                        task,
                        [tensor],
                        outputs=wanted,
                        request_id=f"{task}-{binary_in}-{binary_out}",
                        parameters=params or None,
                        headers=dict(AUTH),
                        model_version=version,
                    )
                    response = result.get_response()
                    assert response["id"] == f"{task}-{binary_in}-{binary_out}" and response["model_version"] == version
                    for name, values in expected.items():
                        assert result.as_numpy(name).tolist() == values, (task, name, binary_in, binary_out)
            # tritonclient's defaults: binary input, no outputs named (so every output comes back binary)
            tensor = httpclient.InferInput("input", list(array.shape), input_dtype(task))
            tensor.set_data_from_numpy(array)
            result = client.infer(task, [tensor], parameters=params or None, headers=dict(AUTH))
            assert [o["name"] for o in result.get_response()["outputs"]] == list(expected)  # every output
            for name, values in expected.items():
                assert result.as_numpy(name).tolist() == values, (task, name, "defaults")
    finally:
        client.close()


def test_tritonclient_errors_are_raised_with_the_servers_message(server):
    httpclient = pytest.importorskip("tritonclient.http", reason="pip install -e '.[test]' (tritonclient[http])")
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}", network_timeout=30.0)
    task = TASKS[0]
    array = np.array(rows_for(task), dtype=np.int64 if input_dtype(task) == "INT64" else np.float64)
    try:
        tensor = httpclient.InferInput("input", list(array.shape), input_dtype(task))
        tensor.set_data_from_numpy(array)
        with pytest.raises(InferenceServerException, match="API key"):
            client.infer(task, [tensor])
        with pytest.raises(InferenceServerException, match="Request for unknown model: .no-such-task. is not found"):
            client.get_model_metadata("no-such-task")
        wrong = httpclient.InferInput("input", list(array.shape), "FP32")
        wrong.set_data_from_numpy(array.astype(np.float32))
        if input_dtype(task) == "INT64":
            with pytest.raises(InferenceServerException, match="takes datatype INT64"):
                client.infer(task, [wrong], headers=dict(AUTH))
    finally:
        client.close()


def test_kserve_rest_client_answers_like_the_native_endpoint(server):
    if not KSERVE_PYTHON.exists():
        pytest.skip(
            f"KServe's SDK is not installed: {KSERVE_PYTHON} missing (.ci/run creates .venv-kserve with "
            "`pip install kserve==0.21.0`)"
        )
    jobs, expected = [], []
    for task in TASKS:
        rows, params = rows_for(task), options(task)
        # the third request carries a parameter toyseq does not use: accepted, as KServe's own server does
        requests_ = [
            {
                "rows": rows,
                "datatype": input_dtype(task),
                "binary": binary,
                "parameters": {**params, "key1": "value1"} if custom else params or None,
                "id": f"k-{task}-{binary}-{custom}",
            }
            for binary, custom in ((False, False), (True, False), (True, True))
        ]
        jobs.append({"url": server.url, "model": task, "headers": AUTH, "requests": requests_})
        expected.append(expected_tensors(native(server.url, task, rows, params), params))
    run = subprocess.run(
        [str(KSERVE_PYTHON), str(ROOT / "tests" / "support" / "kserve_driver.py")],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout)
    assert len(results) == len(jobs)
    for job, want, result in zip(jobs, expected, results):
        assert result["live"] is True and result["ready"] is True and result["model_ready"] is True
        for request, answer in zip(job["requests"], result["answers"]):
            assert answer["id"] == request["id"] and answer["model_name"] == job["model"]
            assert {name: answer["outputs"][name]["data"] for name in want} == want, (job["model"], request["binary"])


def test_tritonclient_standard_options_timeout_priority_compression_and_custom_parameters(server):
    """Calls Triton's own examples and qa suites make (simple_http_infer_client.py, L0_parameters, L0_http's
    compression checks): each answers like the plain call."""
    httpclient = pytest.importorskip("tritonclient.http", reason="pip install -e '.[test]' (tritonclient[http])")
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}", network_timeout=30.0)
    try:
        for task in TASKS:
            rows, params = rows_for(task, 3), options(task)
            expected = expected_tensors(native(server.url, task, rows, params), params)
            array = np.array(rows, dtype=np.int64 if input_dtype(task) == "INT64" else np.float64)

            def call(binary: bool = True, task=task, array=array, **kwargs):
                tensor = httpclient.InferInput("input", list(array.shape), input_dtype(task))
                tensor.set_data_from_numpy(array, binary_data=binary)
                return client.infer(task, [tensor], headers=dict(AUTH), **kwargs)

            variants = {
                "timeout": {"timeout": 10_000_000},  # microseconds: 10 s
                "priority": {"priority": 1},
                # Triton's qa/L0_parameters parameter_list (its reserved "triton_" key is refused by the client)
                **{
                    f"L0_parameters {i}": {"parameters": {**params, **custom}} for i, custom in enumerate(L0_PARAMETERS)
                },
                "gzip": {"request_compression_algorithm": "gzip", "response_compression_algorithm": "gzip"},
                "deflate": {"request_compression_algorithm": "deflate", "response_compression_algorithm": "deflate"},
                "everything": {"timeout": 10_000_000, "priority": 2, "request_compression_algorithm": "gzip"},
            }
            for label, kwargs in variants.items():
                kwargs.setdefault("parameters", params or None)
                for binary in (False, True):
                    result = call(binary, **kwargs)
                    for name, values in expected.items():
                        assert result.as_numpy(name).tolist() == values, (task, label, binary, name)
            with pytest.raises(InferenceServerException, match="reserved"):
                call(parameters={"triton_": True, "key2": "value2"})
            # a timeout no model work fits in is refused with the server's reason, as Triton refuses it
            with pytest.raises(InferenceServerException, match="timeout of 1 us"):
                call(timeout=1, parameters=params or None)
    finally:
        client.close()


def test_ignored_parameters_header_and_model_list_over_http(server):
    """The exact exchanges: an infer with a parameter toyseq does not use (Triton's L0_parameters sends such
    keys) is answered and names it; GET /v2/models answers KServe's {"models": [...]}."""
    task = TASKS[0]
    rows = rows_for(task)
    body = {
        "inputs": [{"name": "input", "shape": [len(rows), len(rows[0])], "datatype": input_dtype(task), "data": rows}],
        "parameters": {"key1": "value1", "priority": 3},
    }
    r = requests.post(f"{server.url}/v2/models/{task}/infer", json=body, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["X-Ignored-Parameters"] == "key1, priority"
    assert r.json()["outputs"][0]["data"] == native(server.url, task, rows, {})["outputs"]
    r = requests.get(f"{server.url}/v2/models", timeout=30)
    assert r.status_code == 200 and r.json() == {"models": sorted(TASKS)}


def test_a_chunked_compression_bomb_is_refused_413_fast_over_gunicorn(server):
    """200 MiB of zeros deflated to ~200 KB and sent chunked (no Content-Length): gunicorn's worker inflates at
    most the body limit and answers 413 on both paths, in far less time than inflating it all would take."""
    import time
    import zlib

    packer = zlib.compressobj(9)
    block = bytes(1 << 20)
    bomb = b"".join(packer.compress(block) for _ in range(200)) + packer.flush()
    headers = {**AUTH, "Content-Type": "application/json", "Content-Encoding": "deflate"}
    task = TASKS[0]
    for path in (f"/tasks/{task}/predict", f"/v2/models/{task}/infer"):
        started = time.perf_counter()
        chunks = (bomb[i : i + 65536] for i in range(0, len(bomb), 65536))  # a generator: sent chunked
        r = requests.post(f"{server.url}{path}", data=chunks, headers=headers, timeout=30)
        assert r.status_code == 413, (path, r.status_code, r.text[:300])
        assert "inflates past the limit" in r.text
        assert time.perf_counter() - started < 5.0, path
