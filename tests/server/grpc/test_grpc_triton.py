"""Triton's gRPC calls beyond inference, on a real gRPC server in this process (GrpcServer, sync and aio, over
a Runtime on the committed models; tests/server/grpc/test_grpc.py runs the same service under gunicorn): ModelConfig
equal to the REST configuration, Triton's `timeout` request parameter honoured as over REST, and ModelStreamInfer
answering every request of a stream in order, failures as that message's error_message, with tritonclient's own
streaming API.

    .venv/bin/python -m pytest tests/server/grpc/test_grpc_triton.py
"""

from __future__ import annotations

import queue

import grpc
import numpy as np
import pytest
from google.protobuf import json_format

from benchmarks.harness.paths import TASKS
from service.server.grpc.generated import grpc_service_pb2 as pb
from service.server.grpc.generated import grpc_service_pb2_grpc as pb_grpc
from service.server.grpc.generated import model_config_pb2
from service.server.grpc.server import GrpcServer
from service.server.http.app import create_app
from service.server.runtime import Runtime

grpcclient = pytest.importorskip("tritonclient.grpc", reason="pip install -e '.[test]' (tritonclient[all])")


@pytest.fixture(scope="module", params=["sync", "aio"])
def served(request, models_copy):
    runtime = Runtime.build({"models_dir": str(models_copy)})
    server = GrpcServer(runtime, "127.0.0.1:0", mode=request.param)
    port = server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield runtime, pb_grpc.GRPCInferenceServiceStub(channel), f"127.0.0.1:{port}"
    channel.close()
    server.begin_stop(0)
    assert server.wait(10)


def request_for(task: str, rows: list, version: str = "", **parameters) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=task, model_version=version, id=f"{task}-{len(rows)}")
    tensor = request.inputs.add(name="input", datatype="INT64", shape=[len(rows), len(rows[0])])
    tensor.contents.int64_contents.extend(v for row in rows for v in row)
    for key, value in parameters.items():
        request.parameters[key].int64_param = value
    return request


def failure(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_model_config_equals_the_rest_configuration(served):
    runtime, stub, _ = served
    client = create_app(runtime=runtime).test_client()
    for task in TASKS:
        message = stub.ModelConfig(pb.ModelConfigRequest(name=task), timeout=30).config
        rest = client.get(f"/v2/models/{task}/config").get_json()
        assert message == json_format.ParseDict(rest, model_config_pb2.ModelConfig())  # field for field
        assert (message.name, message.platform, message.backend) == (task, "onnxruntime_onnx", "onnxruntime")
        assert message.max_batch_size == runtime.limits.max_batch and message.input[0].name == "input"
        assert stub.ModelConfig(pb.ModelConfigRequest(name=task, version="1"), timeout=30).config.name == task
    code, details = failure(lambda: stub.ModelConfig(pb.ModelConfigRequest(name="nope"), timeout=30))
    assert code == grpc.StatusCode.NOT_FOUND and details.startswith("Request for unknown model: 'nope' is not found")
    code, details = failure(lambda: stub.ModelConfig(pb.ModelConfigRequest(name="echo", version="2"), timeout=30))
    assert code == grpc.StatusCode.NOT_FOUND and "'echo' version 2 is not found" in details


def test_the_timeout_parameter_is_honoured_as_over_rest(served):
    _, stub, _ = served
    assert stub.ModelInfer(request_for("echo-lag", [[5, 3]], timeout=10_000_000), timeout=30).outputs
    assert stub.ModelInfer(request_for("echo-lag", [[5, 3]], timeout=0), timeout=30).outputs  # 0: none
    code, details = failure(lambda: stub.ModelInfer(request_for("echo-lag", [[5, 3]], timeout=1), timeout=30))
    assert code == grpc.StatusCode.UNAVAILABLE and "timeout of 1 us" in details
    code, details = failure(lambda: stub.ModelInfer(request_for("echo-lag", [[5, 3]], timeout=-5), timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "whole number of microseconds" in details


def test_a_stream_answers_every_request_in_order_and_goes_on_after_errors(served):
    runtime, stub, _ = served
    before = runtime.statistics.model_stats(runtime.registry.current, "echo-lag")["model_stats"][0]
    requests = [
        request_for("echo-lag", [[5, 3, 9]]),
        request_for("echo-lag", [[5, 300]]),  # out of range
        request_for("arith-next", [[100, 250, 300, 400, 500, 600, 700]], steps=2),
        request_for("nope", [[1]]),
        request_for("echo-lag", [[1, 2], [3, 4]], version="2"),  # a version not served
        request_for("echo-lag", [[7, 8]]),
    ]
    answers = list(stub.ModelStreamInfer(iter(requests), timeout=30))
    assert len(answers) == len(requests)
    ok = [a.infer_response for a in answers if not a.error_message]
    assert [r.id for r in ok] == ["echo-lag-1", "arith-next-1", "echo-lag-1"]
    assert all(r.parameters["triton_final_response"].bool_param for r in ok)  # each its request's last
    assert list(ok[0].outputs[0].contents.int64_contents) == [5, 3]
    assert list(ok[1].outputs[2].contents.int64_contents) == [800, 900]  # the rollout
    assert list(ok[2].outputs[0].contents.int64_contents) == [7]
    errors = [a.error_message for a in answers]
    assert errors[0] == errors[2] == errors[5] == ""
    assert "300 is outside 0..99" in errors[1]
    assert errors[3].startswith("Request for unknown model: 'nope' is not found")
    assert "version 2 is not found" in errors[4]
    after = runtime.statistics.model_stats(runtime.registry.current, "echo-lag")["model_stats"][0]
    successes = after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"]
    failures = after["inference_stats"]["fail"]["count"] - before["inference_stats"]["fail"]["count"]
    assert (successes, failures) == (2, 1)  # each message counted as a request of its model


def test_tritonclient_streaming_api(served):
    """tritonclient's start_stream / async_stream_infer: results arrive through its callback, in order."""
    _, _, target = served
    client = grpcclient.InferenceServerClient(target)
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        for k in range(5):
            tensor = grpcclient.InferInput("input", [1, 3], "INT64")
            tensor.set_data_from_numpy(np.array([[k, k + 1, k + 2]], dtype=np.int64))
            # the last asks for Triton's final-response flag, as decoupled-style clients do
            client.async_stream_infer("echo-lag", [tensor], request_id=str(k), enable_empty_final_response=k == 4)
        got = [answers.get(timeout=30) for _ in range(5)]
        assert got[4][0].get_response().parameters["triton_final_response"].bool_param
    finally:
        client.stop_stream()
        client.close()
    assert [error for _, error in got] == [None] * 5
    assert [result.get_response().id for result, _ in got] == ["0", "1", "2", "3", "4"]
    assert [result.as_numpy("output").tolist() for result, _ in got] == [[[k, k + 1]] for k in range(5)]


def test_open_streams_leave_threads_for_unary_calls(served, request):
    """Under the sync server a stream holds a pool thread while open: a worker takes at most half of
    TOYSEQ_REQUEST_THREADS (2 here: one stream); one more is refused at once, and unary calls still run."""
    if "aio" in request.node.callspec.id:
        pytest.skip("grpc.aio holds no thread per stream")
    _, stub, _ = served
    feed: queue.Queue = queue.Queue()
    first = stub.ModelStreamInfer(iter(feed.get, None), timeout=30)
    feed.put(request_for("echo-lag", [[5, 3]]))
    assert next(first).infer_response.id == "echo-lag-1"  # the first stream is open and answering
    code, details = failure(lambda: list(stub.ModelStreamInfer(iter([request_for("echo", [[1]])]), timeout=30)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "open ModelStreamInfer streams" in details
    assert stub.ModelInfer(request_for("echo", [[1]]), timeout=30).outputs  # unary calls still find a thread
    feed.put(None)  # the client closes its side: the stream ends and frees its slot
    assert list(first) == []
    assert list(stub.ModelStreamInfer(iter([request_for("echo", [[1]])]), timeout=30))[0].infer_response.outputs
