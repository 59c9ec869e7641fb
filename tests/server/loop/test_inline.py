"""The loop worker's inline decision (protocol/offload.py): priced by the realistic estimate (CostModel.fitted), not
the padded refusal bound, so a 100-sequence predict runs on the event loop; a request that does move to the pool
is read and parsed once, its parsed body handed over in the environ. The real Front on a uvloop loop, the real app
on the committed models, real HTTP over loopback."""

from __future__ import annotations

import asyncio
import http.client
import logging
import random
import socket
import threading

import orjson
import pytest

from service import create_app
from service.core.cost import CostModel
from service.core.predictor import Predictor
from service.server.config import Config
from service.server.http.routes.common import PARSED
from service.server.loop.server import Front, Settings

TASK = "echo-lag"


def rows(count: int, length: int = 10, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randint(0, 99) for _ in range(length)] for _ in range(count)]


@pytest.mark.parametrize("weights", [2_000, 35_281, 174_644])
@pytest.mark.parametrize("rows_,length,steps", [(1, 10, None), (100, 10, None), (1000, 100, None), (10, 7, 20)])
def test_the_fitted_estimate_is_below_the_refusal_bound(weights, rows_, length, steps):
    padded = CostModel(weights)
    assert padded.fitted().seconds(rows_, rows_ * length, steps) < padded.seconds(rows_, rows_ * length, steps)


def test_a_hundred_short_sequences_are_inline_by_the_fitted_estimate_not_the_bound(models_copy):
    """The issue's case: the padded bound priced 100 x 10 echo-lag values over the 5 ms inline budget."""
    predictor = Predictor.load(models_copy / TASK)
    budget = Config.inline_seconds
    assert predictor.cost.seconds(100, 1000) > budget
    assert predictor.inline_cost.seconds(100, 1000) < budget / 2


class Calls:
    """A WSGI middleware noting, per call of the app, the thread it ran on and whether the body came parsed."""

    def __init__(self, app):
        self.app, self.seen = app, []

    def __call__(self, environ, start_response):
        self.seen.append((threading.current_thread().name, PARSED in environ))
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def front(models_copy):
    """The real Front serving the real app (TOYSEQ_INLINE_SECONDS 5 ms, the default) on its own loop thread."""
    import uvloop

    app = Calls(create_app({"models_dir": str(models_copy), "log_level": "warning"}))
    loop = uvloop.new_event_loop()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = Front(loop, app, Settings(read_timeout=5, keepalive=5), logging.getLogger("test-inline"))
    ready = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        server.serve([listener])
        loop.call_soon(ready.set)
        loop.run_forever()

    thread = threading.Thread(target=run, name="front-loop", daemon=True)
    thread.start()
    assert ready.wait(10)
    yield listener.getsockname()[1], app, Predictor.load(models_copy / TASK)
    loop.call_soon_threadsafe(server.stop)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def test_a_hundred_sequences_run_inline_once(front):
    port, app, predictor = front
    inputs = rows(100)
    app.seen.clear()
    status, data = post(port, f"/tasks/{TASK}/predict", orjson.dumps({"inputs": inputs}))
    assert status == 200, data[:300]
    assert orjson.loads(data)["outputs"] == predictor.predict(predictor.codec.check(inputs))["outputs"]
    assert app.seen == [("front-loop", False)]


@pytest.mark.parametrize("path", [f"/tasks/{TASK}/predict", f"/v2/models/{TASK}/infer"])
def test_a_heavy_request_moves_to_the_pool_with_its_body_parsed_once(front, path):
    """2,000 sequences of 10 values (under the 64 KiB body cut, over the inline estimate): the inline call parses
    the body, prices it, moves it; the pool's call finds it parsed."""
    port, app, predictor = front
    inputs = rows(2000, seed=1)
    if path.startswith("/v2"):
        flat = [v for row in inputs for v in row]
        tensor = {"name": "input", "shape": [len(inputs), 10], "datatype": "INT64", "data": flat}
        body = orjson.dumps({"inputs": [tensor]})
    else:
        body = orjson.dumps({"inputs": inputs})
    assert len(body) < Settings.inline_body_bytes
    assert predictor.inline_cost.seconds(2000, 20_000) > Config.inline_seconds
    app.seen.clear()
    status, data = post(port, path, body)
    assert status == 200, data[:300]
    expected = predictor.predict(predictor.codec.check(inputs))["outputs"]
    answer = orjson.loads(data)
    got = answer["outputs"] if "task" in answer else answer["outputs"][0]["data"]
    assert got == (expected if "task" in answer else [v for row in expected for v in row])
    (first_thread, first_parsed), (second_thread, second_parsed) = app.seen
    assert first_thread == "front-loop" and not first_parsed
    assert second_thread.startswith("toyseq-pool-") and second_parsed
