"""Limits under concurrency and slow clients, on a real gunicorn: oversized bodies get 413 and oversized
batches 422 while normal requests next to them get right answers; clients that send their body slowly
(slowloris) hold no worker: they are dropped after TOYSEQ_READ_TIMEOUT while normal requests are served at once.

    TOYSEQ_LIMITS_SECONDS=30 .venv/bin/python -m pytest tests/reliability/test_limits.py -s   # longer load
"""

from __future__ import annotations

import random
import socket
import time

import orjson
import pytest

from benchmarks.harness.load import (
    ORACLES,
    Call,
    Client,
    drive,
    predict_call,
    seconds_from_env,
)

SECONDS = seconds_from_env("TOYSEQ_LIMITS_SECONDS", 4)
CLIENTS = 12
MAX_BODY = 64_000  # fits 51 ramp rows of 50 floats: the oversized-batch calls must pass the body limit
MAX_BATCH = 50
TIMEOUT = 3  # TOYSEQ_READ_TIMEOUT for the slowloris test: a request not received in full by then is dropped


def _problem(status: int, words: str):
    def check(answer):
        if answer.get("status") != status or words not in answer.get("detail", ""):
            return f"expected a {status} problem about {words!r}, got {answer}"
        return None

    return check


def limit_calls(task: str):
    """A third oversized bodies (413), a third oversized batches that fit in the body limit (422), a third
    normal predictions (200, checked)."""
    oracle = ORACLES[task]

    def make(rng: random.Random) -> Call:
        kind = rng.choice(("body", "batch", "predict"))
        if kind == "body":
            row = oracle.make(rng)
            body = orjson.dumps({"inputs": [row] * (MAX_BODY // len(orjson.dumps(row)) + rng.randint(1, 50))})
            assert MAX_BODY < len(body) < 4 * MAX_BODY
            return Call("body", "POST", f"/tasks/{task}/predict", body, 413, _problem(413, ""))
        if kind == "batch":
            body = orjson.dumps({"inputs": [oracle.make(rng) for _ in range(MAX_BATCH + 1)]})
            assert len(body) < MAX_BODY
            return Call(
                "batch", "POST", f"/tasks/{task}/predict", body, 422, _problem(422, f"exceed the limit of {MAX_BATCH}")
            )
        return predict_call(task, rng)

    return make


@pytest.mark.slow
def test_body_and_batch_limits_hold_under_concurrency(gunicorn_server, tasks):
    server = gunicorn_server({"TOYSEQ_MAX_BODY_BYTES": MAX_BODY, "TOYSEQ_MAX_BATCH": MAX_BATCH})
    tallies = {}
    for task in tasks:
        tallies[task] = tally = drive(
            server.base_url, limit_calls(task), CLIENTS, seconds=SECONDS / len(tasks), max_requests=100_000, seed=5
        )
        print(f"\nlimits {task}: {tally.summary()} kinds {dict(tally.by_kind())}")
        assert tally.count("ok") == tally.sent, tally.failures()
        assert {"body", "batch", "predict"} <= set(tally.by_kind())


def _stall(base_url: str, task: str) -> socket.socket:
    """Open a connection, send the headers and part of a declared 1000-byte body, then stall."""
    port = int(base_url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        f"POST /tasks/{task}/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f'Content-Length: 1000\r\n\r\n{{"inputs": [['.encode()
    )
    return sock


def _closed_by_server(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(4096) == b"" or True  # EOF, or the start of an error answer: either way it let go
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.slow
def test_slow_clients_hold_no_worker_and_are_dropped_after_the_read_timeout(gunicorn_server, tasks):
    """The event loop of each worker receives whole requests before the app sees them (see
    service/server/loop/worker.py and tests/reliability/test_slow_clients.py for 64 stalled clients)."""
    task = tasks[0]
    server = gunicorn_server({"TOYSEQ_READ_TIMEOUT": TIMEOUT})
    stalled = [_stall(server.base_url, task) for _ in range(4)]  # twice as many as there are workers
    time.sleep(0.5)
    started = time.monotonic()
    rng = random.Random(6)
    client, waits, outcomes = Client(server.base_url, timeout=60), [], []
    try:
        while time.monotonic() - started < SECONDS and len(outcomes) < 200:
            sent = time.monotonic()
            outcomes.append(client.send(predict_call(task, rng)))
            waits.append(time.monotonic() - sent)
        let_go = [_closed_by_server(s, TIMEOUT + 5) for s in stalled]
    finally:
        client.close()
        for s in stalled:
            s.close()
    print(
        f"\nslowloris: {len(stalled)} stalled sockets, {len(outcomes)} normal requests, "
        f"{sum(o.result == 'ok' for o in outcomes)} ok; first answered after {waits[0]:.3f}s, "
        f"longest wait {max(waits):.3f}s"
    )
    assert all(o.result == "ok" for o in outcomes), [
        (o.result, o.status, o.detail) for o in outcomes if o.result != "ok"
    ]
    assert len(outcomes) >= 20
    assert max(waits) < 1.0  # served at once, not after a worker timeout
    assert all(let_go), "a stalled connection was never dropped by the server"
    assert "WORKER TIMEOUT" not in server.log()
    assert server.proc.poll() is None


@pytest.mark.slow
def test_a_client_sending_a_large_body_reads_its_413(gunicorn_server, tasks):
    """Regression: the 413 was answered while the client was still sending, and closing the connection on
    unread data reset it, so clients saw a broken pipe instead. The service now drains refused bodies."""
    server = gunicorn_server()  # default TOYSEQ_MAX_BODY_BYTES: 8 MiB
    row = orjson.dumps(ORACLES[tasks[0]].make(random.Random(7)))
    body = b'{"inputs": [' + b",".join([row] * (9 * 2**20 // len(row))) + b"]}"
    client = Client(server.base_url)
    outcomes = [
        client.send(Call("body", "POST", f"/tasks/{tasks[0]}/predict", body, 413, _problem(413, ""))) for _ in range(3)
    ]
    client.close()
    assert [o.result for o in outcomes] == ["ok"] * 3, [(o.result, o.detail) for o in outcomes]
    ok = client.send(predict_call(tasks[0], random.Random(8)))
    assert ok.result == "ok", ok.detail
