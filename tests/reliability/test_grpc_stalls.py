"""gRPC streams that never finish do not stop gRPC (issue 31): a client opens ModelInfer calls and sends their
HEADERS but never a message. grpcio's sync server hands each call to its thread pool at once and the thread
then waits for the message, so two such calls held both of a worker's TOYSEQ_REQUEST_THREADS threads: no
other call was answered for as long as they stayed open, and SIGTERM waited the whole graceful timeout.

Now (service/server/grpc/server.py): calls wait for their message on threads apart from the work's, the work
runs TOYSEQ_REQUEST_THREADS at a time, a call with no message after TOYSEQ_READ_TIMEOUT is cancelled, and
stopping cancels those still waiting at once. Each connection carries at most 100 concurrent streams
(grpc.max_concurrent_streams) and each worker TOYSEQ_WORKER_CONNECTIONS calls (maximum_concurrent_rpcs). The
stalled calls are made with grpc's own channel (a request iterator that never yields), 10 connections of 10.
"""

from __future__ import annotations

import threading
import time

import pytest

from benchmarks.harness.paths import TASKS

grpcclient = pytest.importorskip("tritonclient.grpc", reason="pip install -e '.[test]' (tritonclient[grpc])")
import grpc  # noqa: E402  (installed with tritonclient[grpc])
from tritonclient.grpc import service_pb2 as pb  # noqa: E402
from tritonclient.grpc import service_pb2_grpc as pb_grpc  # noqa: E402

pytestmark = pytest.mark.slow

METHOD = "/inference.GRPCInferenceService/ModelInfer"
READ_TIMEOUT = 3  # TOYSEQ_READ_TIMEOUT of the server here
DEADLINE = 3.0  # seconds a normal call may take beside the stalled ones


@pytest.fixture()
def server(tmp_path, models_copy):
    from benchmarks.harness.server import Server

    if not TASKS:
        pytest.skip("no committed models yet")
    env = {"TOYSEQ_WORKERS": "1", "TOYSEQ_READ_TIMEOUT": str(READ_TIMEOUT), "TOYSEQ_LOG_LEVEL": "warning"}
    srv = Server(tmp_path / "gunicorn.log", env, models_copy, grpc=True)
    yield srv
    srv.kill()


class Stalls:
    """`connections` connections of `per_connection` ModelInfer calls each, HEADERS sent, no message."""

    def __init__(self, target: str, connections: int = 10, per_connection: int = 10):
        self.release = threading.Event()
        self.channels = [
            grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(connections)
        ]
        self.calls = []
        for channel in self.channels:
            stalled = channel.stream_unary(METHOD, request_serializer=lambda m: m, response_deserializer=lambda b: b)
            for _ in range(per_connection):
                self.calls.append(stalled.future(self._never()))

    def _never(self):
        self.release.wait(120)
        return
        yield  # a generator that yields nothing: the call's stream stays open without a message

    def cancelled_by_server(self) -> int:
        done = [call for call in self.calls if call.done()]
        return sum(1 for call in done if call.code() == grpc.StatusCode.CANCELLED)

    def close(self) -> None:
        self.release.set()
        for call in self.calls:
            call.cancel()
        for channel in self.channels:
            channel.close()


def normal_call(target: str) -> float:
    """One ModelInfer within DEADLINE on a new connection; its seconds."""
    with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name="echo-lag")
        request.inputs.add(name="input", datatype="INT64", shape=[1, 3]).contents.int64_contents.extend([1, 2, 3])
        started = time.perf_counter()
        answer = stub.ModelInfer(request, timeout=DEADLINE)
        assert list(answer.outputs[0].shape) == [1, 2]
        return time.perf_counter() - started


def test_calls_are_answered_beside_100_stalled_streams(server):
    stalls = Stalls(server.grpc_target)
    try:
        time.sleep(0.5)  # the stalled calls opened and waiting
        took = [normal_call(server.grpc_target) for _ in range(10)]
        print(f"\nbeside 100 stalled streams: calls answered in {max(took) * 1000:.0f} ms at most")
        deadline = time.monotonic() + READ_TIMEOUT + 5
        while stalls.cancelled_by_server() < len(stalls.calls) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stalls.cancelled_by_server() == len(stalls.calls), "stalled calls not cancelled after the read timeout"
    finally:
        stalls.close()


def test_sigterm_is_as_fast_beside_stalled_streams(server):
    stalls = Stalls(server.grpc_target)
    try:
        time.sleep(0.5)
        normal_call(server.grpc_target)
        started = time.perf_counter()
        assert server.stop(timeout=30) == 0
        took = time.perf_counter() - started
        print(f"\nSIGTERM beside 100 stalled streams: stopped in {took:.2f} s")
        assert took < 5
    finally:
        stalls.close()


def test_a_health_watch_stream_outlives_the_read_timeout(server):
    """Only calls still waiting for their message are cancelled: a Watch has its message and streams on."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server.grpc_target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        time.sleep(READ_TIMEOUT + 2)
        assert watch.is_active()
        watch.cancel()
