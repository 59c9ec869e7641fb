"""TOYSEQ_GRPC_MODE=loop (grpc/on_loop.py): grpc.aio served from a uvloop loop that is not the server's own, calls
inline on it and heavy ones on the pool, with the same answers and checks as the other modes; the server's
options (message size limit) apply; a graceful stop lets it end. The real LoopGrpcServer on a real Runtime and
committed models, called by tritonclient over loopback."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from service.core.predictor import Predictor
from service.server.config import Config
from service.server.runtime import Runtime

grpcclient = pytest.importorskip("tritonclient.grpc", reason="pip install -e '.[test]' (tritonclient[grpc])")
from tritonclient.utils import InferenceServerException  # noqa: E402

TASK = "echo-lag"


@pytest.fixture(scope="module")
def served(models_copy):
    import uvloop

    from service.server.grpc.on_loop import LoopGrpcServer

    config = Config.load(environ={"TOYSEQ_MODELS_DIR": str(models_copy), "TOYSEQ_LOG_LEVEL": "warning"})
    runtime = Runtime.build(config)
    loop = uvloop.new_event_loop()
    server = LoopGrpcServer(runtime, "127.0.0.1:0", threads=2, max_calls=100, inline_seconds=config.inline_seconds)
    port = server.serve_on(loop)
    thread = threading.Thread(target=loop.run_forever, name="worker-loop", daemon=True)
    thread.start()
    yield server, f"127.0.0.1:{port}", Predictor.load(models_copy / TASK), loop
    if not server.wait(0):
        server.begin_stop(1)
        server.wait(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def infer(target: str, rows: np.ndarray):
    with grpcclient.InferenceServerClient(target) as client:
        tensor = grpcclient.InferInput("input", list(rows.shape), "INT64")
        tensor.set_data_from_numpy(rows)
        return client.infer(TASK, [tensor]).as_numpy("output")


@pytest.mark.parametrize("count", [1, 100, 2000])  # 2,000 x 10 values: over the inline estimate, on the pool
def test_calls_inline_and_on_the_pool_answer_as_the_predictor(served, count):
    server, target, predictor, _ = served
    rows = np.random.default_rng(count).integers(0, 100, (count, 10)).astype(np.int64)
    assert (predictor.inline_cost.seconds(count, rows.size) > Config.inline_seconds) == (count == 2000)
    expected = predictor.predict(predictor.codec.check(rows.tolist()))["outputs"]
    assert infer(target, rows).tolist() == expected


def test_the_checks_and_server_options_are_the_other_modes(served):
    _, target, _, _ = served
    with pytest.raises(InferenceServerException, match="outside 0..99"):
        infer(target, np.array([[1, 2, 300]], dtype=np.int64))
    too_big = np.zeros((1, Config.max_body_bytes // 8 + 1000), dtype=np.int64)  # grpc.max_receive_message_length
    with pytest.raises(InferenceServerException, match="RESOURCE_EXHAUSTED|larger than max"):
        infer(target, too_big)


def test_a_graceful_stop_ends_it(served):
    server, target, _, loop = served
    assert not server.wait(0)
    loop.call_soon_threadsafe(server.begin_stop, 1.0)
    assert server.wait(10)
    asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(5)  # the loop itself carries on
