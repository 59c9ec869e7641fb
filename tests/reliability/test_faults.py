"""Faults under load on a real gunicorn: a worker killed with SIGKILL is replaced and only the requests in
flight on it fail; SIGTERM stops gracefully, losing no request that reached the app, within the timeout.

    TOYSEQ_FAULT_SECONDS=20 .venv/bin/python -m pytest tests/reliability/test_faults.py -s   # longer load
"""

from __future__ import annotations

import os
import signal
import threading
import time

import orjson
import pytest

from benchmarks.harness.load import children, drive, mixed_calls, seconds_from_env, wait_for

CLIENTS = 16
LOAD_SECONDS = seconds_from_env("TOYSEQ_FAULT_SECONDS", 3)  # load kept up after the fault
GRACEFUL_TIMEOUT = 10
MAX_REQUESTS = 1_000_000


class Background:
    """drive() in a thread, stopped by the test."""

    def __init__(self, base_url: str, tasks: list[str], seed: int):
        self.stop = threading.Event()
        self.sent = 0
        self.result = None

        def run():
            self.result = drive(
                base_url,
                mixed_calls(tasks),
                CLIENTS,
                seconds=120,
                max_requests=MAX_REQUESTS,
                seed=seed,
                stop=self.stop,
                on_sent=self._count,
            )

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def _count(self, n: int) -> None:
        self.sent = n

    def wait_sent(self, n: int) -> None:
        assert wait_for(lambda: self.sent >= n, 30), f"only {self.sent} requests in 30s"

    def finish(self):
        self.stop.set()
        self.thread.join(90)
        assert self.result is not None
        return self.result


def access_pids(log: str) -> set[int]:
    """The workers that wrote an access line: those that answered requests."""
    pids = set()
    for line in log.splitlines():
        if '"toyseq.access"' in line:
            try:
                pids.add(orjson.loads(line)["pid"])
            except (orjson.JSONDecodeError, KeyError):
                continue
    return pids


def logged_request_ids(log: str) -> set[str]:
    """The X-Request-IDs the app wrote an access line for: requests that reached a worker's app."""
    ids = set()
    for line in log.splitlines():
        if '"toyseq.access"' in line:
            try:
                ids.add(orjson.loads(line)["request_id"])
            except (orjson.JSONDecodeError, KeyError):
                continue
    return ids


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_only_its_requests_in_flight_fail(gunicorn_server, tasks):
    server = gunicorn_server()
    workers = children(server.proc.pid)
    load = Background(server.base_url, tasks, seed=3)
    load.wait_sent(300)
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    replaced = wait_for(lambda: len(children(server.proc.pid)) == 2 and victim not in children(server.proc.pid), 60)
    replaced_at = time.monotonic()
    time.sleep(LOAD_SECONDS)
    # Clients keep their connections alive, and those cut by the kill reconnected to the surviving worker
    # while the replacement was loading its models; they move over as connections are recycled
    # (TOYSEQ_KEEPALIVE_REQUESTS), so the load goes on until the replacement has answered (at most 30 s).
    replacement = set(children(server.proc.pid)) - set(workers)
    wait_for(lambda: replacement <= access_pids(server.log()), 30, every=0.5)
    spread_at = time.monotonic()
    tally = load.finish()

    failed = [o for o in tally.outcomes if o.result != "ok"]
    during = [o for o in tally.outcomes if killed_at < o.at < replaced_at and o.result == "ok"]
    after = [o for o in tally.outcomes if o.at > replaced_at + 0.5]
    print(
        f"\nworker crash: {tally.summary()}; failed {len(failed)} "
        f"({[o.result for o in failed]}); answered while the worker was replaced ({replaced_at - killed_at:.1f}s): "
        f"{len(during)}; after: {len(after)}; the replacement answered within {spread_at - replaced_at:.1f}s"
    )
    assert replaced, f"worker {victim} not replaced: {children(server.proc.pid)}"
    assert len(failed) <= CLIENTS, tally.failures(20)
    # Only connections the dead worker held can fail: resets, never a wrong answer or a 5xx.
    assert all(o.result == "dropped" for o in failed), tally.failures(20)
    assert after and all(o.result == "ok" for o in after), tally.failures(20)
    assert server.proc.poll() is None
    assert replacement <= access_pids(server.log()), f"the new worker {replacement} answered nothing"


@pytest.mark.slow
def test_sigterm_under_load_loses_no_accepted_request_and_exits_in_time(gunicorn_server, tasks):
    server = gunicorn_server({"TOYSEQ_GRACEFUL_TIMEOUT": GRACEFUL_TIMEOUT})
    load = Background(server.base_url, tasks, seed=4)
    load.wait_sent(300)
    server.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    code = server.proc.wait(GRACEFUL_TIMEOUT + 20)
    exit_seconds = time.monotonic() - signalled
    time.sleep(0.5)  # clients now meet a closed port
    tally = load.finish()

    reached_app = logged_request_ids(server.log())
    ok = {o.request_id for o in tally.outcomes if o.result == "ok"}
    lost = [o for o in tally.outcomes if o.request_id in reached_app and o.result != "ok"]
    dropped = [o for o in tally.outcomes if o.result == "dropped"]
    refused = tally.count("refused")
    print(
        f"\ngraceful stop: exit {code} after {exit_seconds:.2f}s; {tally.summary()}; reached the app "
        f"{len(reached_app & {o.request_id for o in tally.outcomes})}, all answered: {not lost}; refused "
        f"{refused}; reset while queued in the kernel backlog (never reached the app) {len(dropped)}"
    )
    assert code == 0, server.log()[-2000:]
    assert exit_seconds < GRACEFUL_TIMEOUT
    assert not lost, [(o.result, o.detail) for o in lost[:5]]
    assert reached_app >= ok  # every answer the clients got was logged by the app: the ids match up
    # A failure is either a refused connection or a connection reset before any worker accepted it.
    assert all(o.result in ("refused", "dropped") for o in tally.outcomes if o.result != "ok"), tally.failures()
    assert all(o.request_id not in reached_app for o in dropped)
    assert len(dropped) <= CLIENTS
    assert refused > 0, "the load did not outlast the server"
