"""The Open Inference Protocol over gRPC against real gunicorn on 127.0.0.1 (Server(grpc=True): every worker
serves it beside HTTP): Triton's `tritonclient.grpc` (raw tensors) and its generated stub (typed contents), and
KServe's SDK gRPC client (kserve.InferenceGRPCClient, from .venv-kserve). Every answer equals the native
endpoint's; every error has its gRPC code and the REST v2 path's message, word for word.

    .venv/bin/python -m pytest tests/server/grpc/test_grpc.py
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

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

grpcclient = pytest.importorskip("tritonclient.grpc", reason="pip install -e '.[test]' (tritonclient[grpc])")
import grpc  # noqa: E402  (installed with tritonclient[grpc])
from tritonclient.grpc import service_pb2 as pb  # noqa: E402
from tritonclient.grpc import service_pb2_grpc as pb_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.slow
MAX_BODY = 1_000_000  # the server's TOYSEQ_MAX_BODY_BYTES: gRPC's max receive size
BUDGET = 0.05  # TOYSEQ_MAX_REQUEST_SECONDS: 100 x 1000 echo values are over it, the tests' small rows under
METADATA = [("authorization", f"Bearer {API_KEY}")]
CONTENTS = {"INT64": "int64_contents", "FP64": "fp64_contents", "INT32": "int_contents", "FP32": "fp32_contents"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_copy):
    from benchmarks.harness.server import Server

    if not TASKS:
        pytest.skip("no committed models yet")
    env = {"TOYSEQ_API_KEY": API_KEY, "TOYSEQ_MAX_BODY_BYTES": MAX_BODY, "TOYSEQ_MAX_REQUEST_SECONDS": BUDGET}
    with Server(tmp_path_factory.mktemp("grpc") / "gunicorn.log", env, models_copy, grpc=True) as s:
        yield s


@pytest.fixture(scope="module")
def triton(server):
    client = grpcclient.InferenceServerClient(url=server.grpc_target)
    yield client
    client.close()


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(server.grpc_target)
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def array_of(task: str, rows: list) -> np.ndarray:
    return np.array(rows, dtype=np.int64 if input_dtype(task) == "INT64" else np.float64)


def typed_request(task: str, rows: list, params: dict, datatype: str | None = None, **fields) -> pb.ModelInferRequest:
    """A ModelInferRequest with typed contents, built with Triton's own generated classes."""
    datatype = datatype or input_dtype(task)
    request = pb.ModelInferRequest(model_name=task, **fields)
    tensor = request.inputs.add(name="input", datatype=datatype, shape=[len(rows), len(rows[0]) if rows else 0])
    getattr(tensor.contents, CONTENTS[datatype]).extend([v for row in rows for v in row])
    for key, value in params.items():
        request.parameters[key].int64_param = value
    return request


def rest_error(server, task: str, body: dict, headers=AUTH) -> tuple[int, str]:
    r = requests.post(f"{server.url}/v2/models/{task}/infer", json=body, headers=headers, timeout=30)
    return r.status_code, r.json()["error"]


def grpc_error(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_tritonclient_grpc_health_metadata_and_infer_equal_native(server, triton):
    assert triton.is_server_live() and triton.is_server_ready()
    meta = triton.get_server_metadata(as_json=True)
    assert meta == requests.get(f"{server.url}/v2", timeout=10).json() and meta["name"] == "toyseq"
    for task in TASKS:
        version = "1"  # Triton's integer versions: the model served since start-up
        assert triton.is_model_ready(task) and triton.is_model_ready(task, model_version=version)
        assert not triton.is_model_ready(task, model_version="2")  # a version not served: not ready, as Triton
        rest_meta = requests.get(f"{server.url}/v2/models/{task}", timeout=10).json()
        grpc_meta = triton.get_model_metadata(task, as_json=True)
        for tensor in grpc_meta["inputs"] + grpc_meta["outputs"]:
            tensor["shape"] = [int(d) for d in tensor["shape"]]  # protobuf's JSON writes int64 as strings
        # Triton's ModelMetadataResponse has no parameters field: the REST metadata's parameter limits are REST's
        rest_meta.pop("parameters", None)
        assert grpc_meta == rest_meta
        rows, params = rows_for(task), options(task)
        expected = expected_tensors(native(server.url, task, rows, params), params)
        tensor = grpcclient.InferInput("input", [len(rows), len(rows[0])], input_dtype(task))
        tensor.set_data_from_numpy(array_of(task, rows))
        # every output, then each output alone by name
        for wanted in [None, *([name] for name in expected)]:
            outputs = [grpcclient.InferRequestedOutput(name) for name in wanted] if wanted else None
            result = triton.infer(
                task,
                [tensor],
                outputs=outputs,
                request_id=f"{task}-{wanted}",
                parameters=params or None,
                headers=dict(METADATA),
                model_version=version,
            )
            response = result.get_response()
            assert response.id == f"{task}-{wanted}" and response.model_version == version
            assert response.parameters["sha256"].string_param == manifest(task)["onnx"]["sha256"]
            assert [o.name for o in response.outputs] == (wanted or list(expected))
            for name in wanted or expected:
                assert result.as_numpy(name).tolist() == expected[name], (task, name)


def test_typed_contents_answer_in_typed_contents_equal_to_raw(server, stub):
    for task in TASKS:
        rows, params = rows_for(task, 3), options(task)
        expected = expected_tensors(native(server.url, task, rows, params), params)
        response = stub.ModelInfer(typed_request(task, rows, params, id="typed"), metadata=METADATA, timeout=30)
        assert response.id == "typed" and not response.raw_output_contents
        for output in response.outputs:
            values = list(getattr(output.contents, CONTENTS[output.datatype]))
            assert np.array(values).reshape(list(output.shape)).tolist() == expected[output.name], (task, output.name)


def test_in_domain_over_grpc_typed_and_raw_equals_native(server, stub, triton):
    """in_domain (BOOL) when named: bool_contents in typed answers, one byte per value raw (tritonclient)."""
    rows = {
        "ramp": [[1.0, 5.0, 2.0], [0.0, 0.05, 0.1]],
        "arith-next": [[1, 2, 3, 4, 5, 6, 70], [100, 250, 300, 400, 500, 600, 700]],
        "alternating": [[1, 1, 0], [0, 1, 0]],
        "echo": [[1, 1], [2, 2]],
    }
    for task, seqs in rows.items():
        if task not in TASKS:
            continue
        expected = native(server.url, task, seqs, {})["in_domain"]
        assert expected == ([True, True] if task == "echo" else [False, True])
        request = typed_request(task, seqs, {})
        request.outputs.add(name="in_domain")
        response = stub.ModelInfer(request, metadata=METADATA, timeout=30)
        [output] = response.outputs
        assert (output.name, output.datatype, list(output.shape)) == ("in_domain", "BOOL", [len(seqs)])
        assert list(output.contents.bool_contents) == expected
        tensor = grpcclient.InferInput("input", [len(seqs), len(seqs[0])], input_dtype(task))
        tensor.set_data_from_numpy(array_of(task, seqs))
        outputs = [grpcclient.InferRequestedOutput("output"), grpcclient.InferRequestedOutput("in_domain")]
        result = triton.infer(task, [tensor], outputs=outputs, headers=dict(METADATA))
        assert result.as_numpy("in_domain").tolist() == expected
        assert result.as_numpy("output").tolist() == native(server.url, task, seqs, {})["outputs"]
    deadline = time.monotonic() + 10  # each worker flushes its counts every 50 ms
    while (
        'toyseq_domain_inputs_total{in_domain="false",task="ramp"}'
        not in requests.get(f"{server.url}/metrics", timeout=10).text
    ):
        assert time.monotonic() < deadline, "no out-of-domain count in /metrics"
        time.sleep(0.1)


def test_the_api_key_is_read_from_authorization_and_x_api_key(server, stub):
    task = TASKS[0]
    request = typed_request(task, rows_for(task), {})
    for metadata in (METADATA, [("authorization", f"bearer {API_KEY}")], [("x-api-key", API_KEY)]):
        assert stub.ModelInfer(request, metadata=metadata, timeout=30).outputs
    status, message = rest_error(server, task, {"inputs": []}, headers={})
    assert status == 401
    for metadata in ([], [("authorization", "Bearer wrong")], [("x-api-key", "wrong")]):
        code, details = grpc_error(lambda m=metadata: stub.ModelInfer(request, metadata=m, timeout=30))
        assert code == grpc.StatusCode.UNAUTHENTICATED and details == message
    # only inference needs the key, as on REST
    assert stub.ModelMetadata(pb.ModelMetadataRequest(name=task), timeout=30).name == task


def test_bad_input_is_invalid_argument_with_the_rest_paths_located_message(server, stub):
    task = next(t for t in TASKS if manifest(t)["input"]["dtype"] == "int")
    m = manifest(task)
    rows = rows_for(task)
    too_high = [list(rows[0]), list(rows[1])]
    too_high[1][-1] = m["input"]["high"] + 1
    cases = [
        (too_high, {}, None),  # a value out of range: located by row and column
        (rows, {"steps": 0}, None) if m["output"]["rollout"] else (rows, {"top_k": 10**6}, None),
        (rows, {}, "FP32"),  # the wrong datatype
    ]
    for values, params, datatype in cases:
        body_input = {"name": "input", "datatype": datatype or "INT64", "shape": [len(values), len(values[0])]}
        body = {"inputs": [{**body_input, "data": [v for row in values for v in row]}], "parameters": params}
        status, message = rest_error(server, task, body)
        assert status == 400
        request = typed_request(task, values, params, datatype)
        code, details = grpc_error(lambda r=request: stub.ModelInfer(r, metadata=METADATA, timeout=30))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details == message, (values, params)
    assert (
        "row 1 column"
        in grpc_error(lambda: stub.ModelInfer(typed_request(task, too_high, {}), metadata=METADATA, timeout=30))[1]
    )
    # a name the model does not have, and a shape the data does not fill
    request = typed_request(task, rows, {})
    request.inputs[0].name = "x"
    assert (
        grpc_error(lambda: stub.ModelInfer(request, metadata=METADATA, timeout=30))[0]
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    request = typed_request(task, rows, {})
    request.inputs[0].shape[0] = 3
    code, details = grpc_error(lambda: stub.ModelInfer(request, metadata=METADATA, timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "needs" in details
    # raw contents whose size disagrees with the shape
    request = pb.ModelInferRequest(model_name=task, raw_input_contents=[b"\0" * 12])
    request.inputs.add(name="input", datatype="INT64", shape=[1, 2])
    code, details = grpc_error(lambda: stub.ModelInfer(request, metadata=METADATA, timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "binary_data_size must be 16" in details


def test_unknown_models_and_versions_are_not_found(server, stub, triton):
    task = TASKS[0]
    for call in (
        lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="no-such-task"), timeout=30),
        lambda: stub.ModelReady(pb.ModelReadyRequest(name="no-such-task"), timeout=30),
        lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name=task, version="000000000000"), timeout=30),
        lambda: stub.ModelInfer(typed_request("no-such-task", [[1]], {}, "INT64"), metadata=METADATA, timeout=30),
        lambda: stub.ModelInfer(
            typed_request(task, rows_for(task), {}, model_version="000000000000"), metadata=METADATA, timeout=30
        ),
    ):
        code, details = grpc_error(call)
        assert code == grpc.StatusCode.NOT_FOUND, details
    _, message = rest_error(server, "no-such-task", {"inputs": []})
    assert (
        grpc_error(lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="no-such-task"), timeout=30))[1] == message
    )
    with pytest.raises(InferenceServerException, match="Request for unknown model: 'no-such-task' is not found"):
        triton.get_model_metadata("no-such-task")


def test_over_the_cost_budget_and_over_the_size_limit_are_resource_exhausted(server, stub):
    rows = [[1] * 1000 for _ in range(100)]  # 800 kB, under the size limit; about 0.35 s of CPU, over the budget
    body = {"inputs": [{"name": "input", "datatype": "INT64", "shape": [100, 1000], "data": sum(rows, [])}]}
    status, message = rest_error(server, "echo", body)
    assert status == 400 and "TOYSEQ_MAX_REQUEST_SECONDS" in message
    code, details = grpc_error(lambda: stub.ModelInfer(typed_request("echo", rows, {}), metadata=METADATA, timeout=30))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and details == message
    big = pb.ModelInferRequest(model_name="echo", raw_input_contents=[b"\0" * (MAX_BODY + 8)])
    big.inputs.add(name="input", datatype="INT64", shape=[1, (MAX_BODY + 8) // 8])
    code, details = grpc_error(lambda: stub.ModelInfer(big, metadata=METADATA, timeout=30))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=30).live  # and the server goes on


def test_a_client_deadline_is_honoured(server, stub):
    rows = [[1] * 1000 for _ in range(5)]
    started = time.perf_counter()
    code, _ = grpc_error(lambda: stub.ModelInfer(typed_request("echo", rows, {}), metadata=METADATA, timeout=0.000_001))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and time.perf_counter() - started < 5
    assert stub.ModelInfer(typed_request("echo", rows, {}), metadata=METADATA, timeout=30).outputs


def test_grpc_health_checking_serves_readiness(server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        code, _ = grpc_error(lambda: health.Check(health_pb2.HealthCheckRequest(service="other"), timeout=10))
        assert code == grpc.StatusCode.NOT_FOUND


def test_grpc_calls_are_counted_in_metrics_and_access_lines_under_their_request_id(server, stub):
    task = TASKS[0]
    request = typed_request(task, rows_for(task), {})
    _, call = stub.ModelInfer.with_call(request, metadata=[*METADATA, ("x-request-id", "grpc-rid-1")], timeout=30)
    assert ("x-request-id", "grpc-rid-1") in call.trailing_metadata()
    _, call = stub.ModelInfer.with_call(request, metadata=[*METADATA, ("x-request-id", "not tame!")], timeout=30)
    [generated] = [v for k, v in call.trailing_metadata() if k == "x-request-id"]
    assert len(generated) == 32 and generated != "not tame!"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = requests.get(f"{server.url}/metrics", timeout=10).text
        if f'endpoint="grpc.ModelInfer",status="200",task="{task}"' in text:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("no grpc.ModelInfer count in /metrics")
    # each worker writes its own access lines every 50 ms: the two calls may have gone to different workers
    wanted = ('"request_id":"grpc-rid-1"', f'"request_id":"{generated}"')
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(w in server.log() for w in wanted):
        time.sleep(0.1)
    log = server.log()
    assert '"method":"gRPC","path":"/inference.GRPCInferenceService/ModelInfer"' in log
    assert all(w in log for w in wanted), wanted


def test_kserve_grpc_client_answers_like_the_native_endpoint(server):
    if not KSERVE_PYTHON.exists():
        pytest.skip(f"KServe's SDK is not installed: {KSERVE_PYTHON} missing (.ci/run creates .venv-kserve)")
    jobs, expected = [], []
    for task in TASKS:
        rows, params = rows_for(task), options(task)
        requests_ = [
            {
                "rows": rows,
                "datatype": input_dtype(task),
                "binary": binary,
                "parameters": params or None,
                "id": f"k-{binary}",
            }
            for binary in (False, True)
        ]
        jobs.append({"target": server.grpc_target, "model": task, "metadata": METADATA, "requests": requests_})
        expected.append(expected_tensors(native(server.url, task, rows, params), params))
    task = TASKS[0]
    bad = {"rows": rows_for(task), "datatype": "FP32", "binary": False, "parameters": None, "id": "bad"}
    jobs.append({"target": server.grpc_target, "model": task, "metadata": [], "requests": [bad]})
    jobs.append({"target": server.grpc_target, "model": "no-such-task", "metadata": METADATA, "requests": [bad]})
    results = _kserve(jobs)
    for job, want, result in zip(jobs, expected, results):
        assert result["live"] is True and result["ready"] is True and result["model_ready"] is True
        for request, answer in zip(job["requests"], result["answers"]):
            assert answer["id"] == request["id"] and answer["model_name"] == job["model"]
            assert {name: answer["outputs"][name]["data"] for name in want} == want, (job["model"], request["binary"])
    no_key, unknown = results[-2], results[-1]
    assert no_key["answers"][0]["code"] == "UNAUTHENTICATED"
    assert unknown["model_ready"]["code"] == "NOT_FOUND" and unknown["answers"][0]["code"] == "NOT_FOUND"


def _kserve(jobs: list) -> list:
    run = subprocess.run(
        [str(KSERVE_PYTHON), str(ROOT / "tests" / "support" / "kserve_grpc_driver.py")],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout)
    assert len(results) == len(jobs)
    return results


def test_stalled_and_flooding_grpc_clients_do_not_stall_http(server):
    """64 connections that stop halfway through the HTTP/2 preface, and 4 threads sending gRPC inference as fast
    as they can (bounded: 8 s or 2,000 calls each), while an HTTP client predicts: every HTTP answer is 200 and
    none waits more than 5 s."""
    task = TASKS[0]
    rows = rows_for(task)
    stalled = []
    for _ in range(64):
        sock = socket.create_connection(("127.0.0.1", server.grpc_port), timeout=5)
        sock.sendall(b"PRI * HTTP/2.0\r\n")  # half the preface, then nothing
        stalled.append(sock)
    stop = threading.Event()
    flood_calls = [0] * 4

    def flood(index: int) -> None:
        with grpc.insecure_channel(server.grpc_target) as channel:
            flood_stub = pb_grpc.GRPCInferenceServiceStub(channel)
            request = typed_request(task, rows, {})
            for _ in range(2000):
                if stop.is_set():
                    return
                try:
                    flood_stub.ModelInfer(request, metadata=METADATA, timeout=10)
                    flood_calls[index] += 1
                except grpc.RpcError:
                    pass

    threads = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(4)]
    for thread in threads:
        thread.start()
    waits = []
    try:
        with requests.Session() as http:
            end = time.monotonic() + 8
            while time.monotonic() < end and len(waits) < 200:
                started = time.perf_counter()
                r = http.post(f"{server.url}/tasks/{task}/predict", json={"inputs": rows}, headers=AUTH, timeout=10)
                waits.append(time.perf_counter() - started)
                assert r.status_code == 200, r.text
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
        for sock in stalled:
            sock.close()
    assert sum(flood_calls) > 0 and len(waits) >= 5
    assert max(waits) < 5, sorted(waits)[-5:]


def test_sigterm_stops_grpc_with_the_workers(tmp_path, models_copy):
    from benchmarks.harness.server import Server

    server = Server(tmp_path / "gunicorn.log", {"TOYSEQ_GRACEFUL_TIMEOUT": 10}, models_copy, grpc=True)
    try:
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            task = TASKS[0]
            assert stub.ModelInfer(typed_request(task, rows_for(task), {}), timeout=30).outputs
            started = time.perf_counter()
            assert server.stop(timeout=30) == 0
            assert time.perf_counter() - started < 15
            code, _ = grpc_error(lambda: stub.ServerLive(pb.ServerLiveRequest(), timeout=5))
            assert code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        assert "Traceback" not in server.log()
    finally:
        server.kill()


def _start_refused(tmp_path, models_copy, address: str) -> None:
    """gunicorn with TOYSEQ_GRPC_BIND=address: it must stop at once, exit 1, and say so in one line that names the
    port and the setting."""
    from benchmarks.harness.server import free_port, gunicorn_command, server_env

    started = time.monotonic()
    done = subprocess.run(
        gunicorn_command(),
        cwd=ROOT,
        env=server_env(free_port(), {"TOYSEQ_GRPC_BIND": address}, models_copy),
        capture_output=True,
        text=True,
        timeout=60,
    )
    port = address.rpartition(":")[2]
    assert done.returncode == 1, done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        f"Error: cannot serve gRPC on TOYSEQ_GRPC_BIND={address}: port {port} is already in use"
    )
    assert time.monotonic() - started < 10  # before any worker loads a model


def test_a_grpc_port_held_by_another_program_stops_start_up_in_one_line(tmp_path, models_copy):
    with socket.socket() as taken:  # no SO_REUSEPORT
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        _start_refused(tmp_path, models_copy, f"127.0.0.1:{taken.getsockname()[1]}")


def test_a_grpc_port_held_by_another_toyseq_stops_start_up_in_one_line(server, tmp_path, models_copy, stub):
    """The module's server binds its gRPC port with SO_REUSEPORT in every worker: a second server must not
    silently share it (its calls would be split between two unrelated servers)."""
    _start_refused(tmp_path, models_copy, server.grpc_target)
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live  # the first one serves on


def test_a_model_that_failed_to_load_is_unavailable_and_readiness_is_the_rests(tmp_path, models_copy):
    import shutil

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from benchmarks.harness.server import Server

    if len(TASKS) < 2:
        pytest.skip("needs two committed models")
    models = tmp_path / "models"
    shutil.copytree(models_copy, models)
    bad, good = TASKS[0], TASKS[1]
    (models / bad / "model.onnx").write_bytes(b"not the model")  # its sha256 no longer matches the manifest
    with Server(tmp_path / "gunicorn.log", {}, models, wait_path="/healthz", grpc=True) as server:
        r = requests.post(
            f"{server.url}/v2/models/{bad}/infer",
            json={"inputs": [{"name": "input", "datatype": "INT64", "shape": [1, 1], "data": [1]}]},
            timeout=30,
        )
        assert r.status_code == 503
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            code, details = grpc_error(lambda: stub.ModelInfer(typed_request(bad, [[1]], {}, "INT64"), timeout=30))
            assert code == grpc.StatusCode.UNAVAILABLE and details == r.json()["error"]
            assert stub.ModelReady(pb.ModelReadyRequest(name=bad), timeout=30).ready is False
            assert stub.ModelReady(pb.ModelReadyRequest(name=good), timeout=30).ready is True
            assert stub.ModelInfer(typed_request(good, rows_for(good), {}), timeout=30).outputs
            # server readiness, gRPC health and REST agree (ready while some task serves)
            rest_ready = requests.get(f"{server.url}/v2/health/ready", timeout=10).status_code == 200
            assert stub.ServerReady(pb.ServerReadyRequest(), timeout=30).ready is rest_ready
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            serving = (
                health_pb2.HealthCheckResponse.SERVING if rest_ready else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            assert health.status == serving


def test_statistics_and_the_model_repository_over_grpc_are_the_rests(tmp_path, models_copy):
    """tritonclient.grpc's get_inference_statistics, get_model_repository_index, load_model and unload_model
    against the same extensions as REST (statistics.py, repository.py): equal answers, the same control rules."""
    from benchmarks.harness.server import Server

    task = TASKS[0]
    env = {"TOYSEQ_API_KEY": API_KEY, "TOYSEQ_MODEL_CONTROL": "explicit"}
    with Server(tmp_path / "gunicorn.log", env, models_copy, grpc=True) as server:
        client = grpcclient.InferenceServerClient(url=server.grpc_target)
        try:
            tensor = grpcclient.InferInput("input", [2, len(rows_for(task)[0])], input_dtype(task))
            tensor.set_data_from_numpy(array_of(task, rows_for(task)))
            for _ in range(3):
                client.infer(task, [tensor], headers=dict(METADATA))
            deadline = time.monotonic() + 10  # workers flush their counts every 50 ms
            while time.monotonic() < deadline:
                stats = client.get_inference_statistics(task, as_json=True)["model_stats"][0]
                if int(stats["inference_stats"]["success"].get("count", 0)) >= 3:
                    break
                time.sleep(0.2)
            rest = requests.get(f"{server.url}/v2/models/{task}/stats", timeout=10).json()["model_stats"][0]
            assert stats["name"] == rest["name"] == task and stats["version"] == rest["version"]
            assert int(stats["inference_stats"]["success"]["count"]) == rest["inference_stats"]["success"]["count"] >= 3
            assert int(stats["inference_count"]) == rest["inference_count"] >= 6  # two sequences a call
            # the index equals REST's
            index = client.get_model_repository_index(as_json=True)["models"]
            rest_index = requests.post(f"{server.url}/v2/repository/index", timeout=10).json()
            assert {m["name"]: m.get("state") for m in index} == {m["name"]: m["state"] for m in rest_index}
            # control needs the key; with it, unload then load
            with pytest.raises(InferenceServerException, match="API key"):
                client.unload_model(task)
            client.unload_model(task, headers=dict(METADATA))
            assert not client.is_model_ready(task)
            with pytest.raises(InferenceServerException) as unavailable:
                client.infer(task, [tensor], headers=dict(METADATA))
            assert "StatusCode.UNAVAILABLE" in str(unavailable.value)
            client.load_model(task, headers=dict(METADATA))
            assert client.is_model_ready(task)
            with pytest.raises(InferenceServerException, match="failed to load.*'instance_group' cannot be overridden"):
                client.load_model(task, headers=dict(METADATA), config='{"instance_group": []}')
            client.load_model(task, headers=dict(METADATA), config='{"max_batch_size": "16"}')  # Triton's example
            assert client.get_model_config(task).config.max_batch_size == 16
        finally:
            client.close()
    without = {"TOYSEQ_API_KEY": API_KEY}  # TOYSEQ_MODEL_CONTROL=none, the default: PERMISSION_DENIED
    with Server(tmp_path / "gunicorn2.log", without, models_copy, grpc=True) as server:
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            code, details = grpc_error(
                lambda: stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name=task), metadata=METADATA)
            )
            r = requests.post(f"{server.url}/v2/repository/models/{task}/unload", headers=AUTH, timeout=10)
            assert code == grpc.StatusCode.PERMISSION_DENIED and r.status_code == 403 and details == r.json()["error"]


def test_a_request_that_cannot_finish_by_its_deadline_is_refused_before_any_work(tmp_path, models_copy):
    """The deadline is honoured on the server too: a call whose estimated CPU time (the cost model) is past its
    deadline gets DEADLINE_EXCEEDED from the server at once, saying why, and the worker is free right after."""
    from benchmarks.harness.server import Server

    rows, length = 1000, 1000  # echo: about 3.5 s of estimated CPU, allowed by the budget below
    env = {"TOYSEQ_MAX_REQUEST_SECONDS": 100, "TOYSEQ_MAX_BODY_BYTES": 16_000_000}
    with Server(tmp_path / "gunicorn.log", env, models_copy, grpc=True) as server:
        with grpc.insecure_channel(server.grpc_target, options=[("grpc.max_send_message_length", -1)]) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            big = pb.ModelInferRequest(model_name="echo", raw_input_contents=[b"\1" * 8 * rows * length])
            big.inputs.add(name="input", datatype="INT64", shape=[rows, length])
            started = time.perf_counter()
            code, details = grpc_error(lambda: stub.ModelInfer(big, timeout=3))
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "would take about" in details, details
            assert time.perf_counter() - started < 3
            small = typed_request("echo", [[1, 2, 3]], {})
            started = time.perf_counter()
            assert stub.ModelInfer(small, timeout=30).outputs and time.perf_counter() - started < 2


def test_a_reload_keeps_serving_grpc_where_the_port_is_its_own(tmp_path, models_copy):
    """SIGHUP reads a config file (-c path.py) again in the master, whose workers hold the gRPC port: the port
    check must not take its own server's port for another program's."""
    import signal

    from benchmarks.harness.server import free_port, server_env

    port, grpc_port = free_port(), free_port()
    env = server_env(port, {"TOYSEQ_GRPC_BIND": f"127.0.0.1:{grpc_port}"}, models_copy)
    conf = ROOT / "service" / "server" / "gunicorn_conf.py"
    with open(tmp_path / "gunicorn.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(conf), "service:create_app()"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def serving() -> bool:
            try:
                ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False
            channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
            try:
                live = pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=2).live
            except grpc.RpcError:
                live = False
            finally:
                channel.close()
            return ready and live

        deadline = time.monotonic() + 90
        while not serving():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()[-2000:]
            time.sleep(0.2)
        proc.send_signal(signal.SIGHUP)
        time.sleep(3)  # the master reloads its config and replaces its workers
        deadline = time.monotonic() + 60
        while not serving():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()[-2000:]
            time.sleep(0.2)
        assert "cannot serve gRPC" not in (tmp_path / "gunicorn.log").read_text()
    finally:
        proc.terminate()
        proc.wait(60)
