"""Slow clients and kept-alive connections on a real gunicorn with the default worker model (the loop worker, whole
requests read by its event loop before the app sees them: service/server/loop/worker.py).

The issue's scenario: 64 connections send headers and half a body and stall, re-opened whenever the server
drops them, while 8 normal clients send predictions over kept-alive connections; no normal request may
fail and their p99 must stay under 100 ms (or, on a machine loaded past its cores, under 1.5x the p99 of the
same clients against a twin server without the attack, measured at the same time). CI holds the stalled connections for STALL_SECONDS (15 s, past
one TOYSEQ_READ_TIMEOUT so each one is dropped and re-opened at least once); the issue's full hold:

    TOYSEQ_STALL_SECONDS=60 .venv/bin/python -m pytest tests/reliability/test_slow_clients.py -s

The same attack against the sync worker (the control) blocks the normal clients: the test can fail.
"""

from __future__ import annotations

import http.client
import os
import random
import socket
import statistics
import threading
import time

import orjson
import pytest

from benchmarks.harness.load import Client, children, predict_call, seconds_from_env

pytestmark = pytest.mark.slow

STALL_SECONDS = seconds_from_env("TOYSEQ_STALL_SECONDS", 15)
STALLED, NORMAL = 64, 8
READ_TIMEOUT = 5  # TOYSEQ_READ_TIMEOUT here: stalled connections are dropped (and re-opened) every 5 s
P99_LIMIT_MS = 100  # the limit, on a machine with its cores to spare
# On a machine loaded past its cores the clients' own latency exceeds 100 ms with no attack at all; then
# the attacked server's p99 may be at most half again that of a twin server measured at the same time
# (the sync control adds seconds).
LOADED_FACTOR = 1.5
TASK = "echo-lag"
HALF_BODY = b'{"inputs": [[1, 2, 3'


def _stall(port: int) -> socket.socket:
    """Headers declaring a 1000-byte body, then part of it, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        b"POST /tasks/" + TASK.encode() + b"/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + HALF_BODY
    )
    return sock


class Attacker:
    """STALLED stalled connections, each re-opened as soon as the server drops it, until stopped."""

    def __init__(self, port: int):
        self.port, self.stop = port, threading.Event()
        self.opened = self.dropped = 0
        self.socks = [_stall(port) for _ in range(STALLED)]
        self.opened = len(self.socks)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        import selectors

        sel = selectors.DefaultSelector()
        for s in self.socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        while not self.stop.is_set():
            for key, _ in sel.select(0.2):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data:  # the server never answers a request it has not received
                    raise AssertionError(f"answer to a half-sent request: {data[:200]!r}")
                sel.unregister(s)
                s.close()
                self.dropped += 1
                fresh = _stall(self.port)
                fresh.setblocking(False)
                sel.register(fresh, selectors.EVENT_READ)
                self.opened += 1
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()

    def finish(self):
        self.stop.set()
        self.thread.join(10)


def normal_clients(base_url: str, seconds: float) -> tuple[list, list[float]]:
    outcomes, latencies, lock = [], [], threading.Lock()
    deadline = time.monotonic() + seconds

    def run(index: int):
        rng, client = random.Random(index), Client(base_url, timeout=10)
        try:
            while time.monotonic() < deadline and len(outcomes) < 200_000:
                call = predict_call(TASK, rng)
                sent = time.perf_counter()
                outcome = client.send(call)
                took = time.perf_counter() - sent
                with lock:
                    outcomes.append(outcome)
                    latencies.append(took)
                time.sleep(0.002)  # a client, not a load generator: leaves the machine room to schedule
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(NORMAL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    return outcomes, latencies


def p99_ms(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98] * 1000


def test_64_stalled_connections_do_not_slow_8_normal_clients(gunicorn_server):
    server = gunicorn_server({"TOYSEQ_READ_TIMEOUT": READ_TIMEOUT})
    # A twin server with the same clients and no attack, at the same time: on a machine loaded past its
    # cores (CI shares it) the latency the attack may not add to is measured under the same load.
    twin = gunicorn_server({"TOYSEQ_READ_TIMEOUT": READ_TIMEOUT})
    attacker = Attacker(server.port)
    results = {}
    try:
        time.sleep(0.5)
        runs = [
            threading.Thread(
                target=lambda name=name, url=url: results.update({name: normal_clients(url, STALL_SECONDS)})
            )
            for name, url in (("attacked", server.base_url), ("twin", twin.base_url))
        ]
        for run in runs:
            run.start()
        for run in runs:
            run.join(STALL_SECONDS + 60)
    finally:
        attacker.finish()
    outcomes, latencies = results["attacked"]
    quiet = results["twin"][1]
    failed = [(o.result, o.status, o.detail[:200]) for o in outcomes if o.result != "ok"]
    p99, quiet_p99 = p99_ms(latencies), p99_ms(quiet)
    limit = max(P99_LIMIT_MS, LOADED_FACTOR * quiet_p99)
    print(
        f"\n{STALLED} stalled connections for {STALL_SECONDS:.0f} s ({attacker.opened} opened, "
        f"{attacker.dropped} dropped by the server after TOYSEQ_READ_TIMEOUT={READ_TIMEOUT}); {NORMAL} normal "
        f"clients: {len(outcomes)} requests, {len(failed)} failed, p50 "
        f"{statistics.median(latencies) * 1000:.1f} ms, p99 {p99:.1f} ms, max {max(latencies) * 1000:.1f} ms; "
        f"the twin without the attack p50 {statistics.median(quiet) * 1000:.1f} ms, p99 {quiet_p99:.1f} ms; "
        f"limit {limit:.0f} ms; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    assert not failed, failed[:5]
    assert len(outcomes) >= 20 * STALL_SECONDS  # the normal clients were served throughout, not just once
    assert p99 < limit
    # The server dropped each stalled connection after READ_TIMEOUT (so it held no thread meanwhile), and
    # the attacker kept STALLED of them open all along.
    assert attacker.dropped >= STALLED * int(STALL_SECONDS // (READ_TIMEOUT + 2))
    assert "WORKER TIMEOUT" not in server.log()
    assert server.proc.poll() is None


def test_the_sync_worker_is_the_control_stalled_clients_block_it(gunicorn_server):
    """The same attack, shorter, against gunicorn's sync worker: normal clients fail or wait far past the
    limit. Without this, the test above could pass because the attack did nothing."""
    server = gunicorn_server({"TOYSEQ_WORKER_CLASS": "sync", "TOYSEQ_TIMEOUT": 30})
    attacker = Attacker(server.port)
    try:
        time.sleep(0.5)
        outcomes, latencies = normal_clients(server.base_url, 3)
    finally:
        attacker.finish()
    failed = [o for o in outcomes if o.result != "ok"]
    print(
        f"\nsync control: {len(outcomes)} normal requests, {len(failed)} failed"
        + (f", p99 {p99_ms(latencies):.0f} ms" if len(latencies) > 1 else "")
    )
    assert failed or len(latencies) < 2 or p99_ms(latencies) > P99_LIMIT_MS


def _read_answer(reader) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 answer from a buffered reader: status, headers (lower-case names), body (Content-Length)."""
    status = int(reader.readline().split()[1])
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, reader.read(int(headers.get("content-length", 0)))


def _raw_exchange(port: int, payload: bytes, answers: int, timeout: float = 10) -> list[bytes]:
    """Send `payload` on one connection and read `answers` HTTP answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock, sock.makefile("rb") as reader:
        sock.sendall(payload)
        return [_read_answer(reader)[2] for _ in range(answers)]


def _request(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST /tasks/"
        + TASK.encode()
        + b"/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def test_kept_alive_pipelined_chunked_and_expect_continue_requests_are_answered(gunicorn_server):
    server = gunicorn_server({"TOYSEQ_KEEPALIVE_REQUESTS": 5})
    one = orjson.dumps({"inputs": [[1, 2, 3]]})
    # Pipelined: three requests in one write, three answers on the one connection.
    answers = _raw_exchange(server.port, _request(one) * 3, 3)
    assert [orjson.loads(a)["outputs"] for a in answers] == [[[1, 2]]] * 3
    # Chunked, split across writes with a pause: buffered until the last chunk.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    head = (
        b"POST /tasks/" + TASK.encode() + b"/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    sock.sendall(head + b"%x\r\n" % 5 + one[:5] + b"\r\n")
    time.sleep(0.3)
    sock.sendall(b"%x\r\n" % (len(one) - 5) + one[5:] + b"\r\n0\r\n\r\n")
    with sock, sock.makefile("rb") as reader:
        status, _, data = _read_answer(reader)
    assert status == 200 and orjson.loads(data)["outputs"] == [[1, 2]]
    # Expect: 100-continue: the server says 100 before the client sends the body.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(
        _request(b"", b"Expect: 100-continue\r\n").replace(b"Content-Length: 0", b"Content-Length: %d" % len(one))
    )
    assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    sock.sendall(one)
    with sock, sock.makefile("rb") as reader:
        status, _, data = _read_answer(reader)
    assert status == 200 and orjson.loads(data)["outputs"] == [[1, 2]]
    # Kept alive up to TOYSEQ_KEEPALIVE_REQUESTS, then "Connection: close".
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = []
    for _ in range(5):
        conn.request("POST", f"/tasks/{TASK}/predict", one, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        headers.append(response.getheader("Connection", ""))
        assert response.status == 200
    conn.close()
    assert [h.lower() for h in headers] == ["keep-alive"] * 4 + ["close"], headers


def test_a_stalled_request_is_dropped_after_the_read_timeout_and_holds_no_thread(gunicorn_server):
    # One request thread per worker: if a stalled body held it, the normal request below would wait.
    server = gunicorn_server({"TOYSEQ_READ_TIMEOUT": 2, "TOYSEQ_REQUEST_THREADS": 1, "TOYSEQ_WORKERS": 1})
    stalled = [_stall(server.port) for _ in range(4)]
    time.sleep(0.3)
    client = Client(server.base_url, timeout=5)
    started = time.monotonic()
    outcome = client.send(predict_call(TASK, random.Random(1)))
    took = time.monotonic() - started
    client.close()
    assert outcome.result == "ok" and took < 1.0, (outcome.result, took)
    for s in stalled:
        s.settimeout(6)
        assert s.recv(100) == b""  # closed by the server, with no answer: the request never reached the app
        s.close()
    assert len(children(server.proc.pid)) == 1
