"""Scale-out: two replicas (two gunicorn servers) behind a real load balancer (Debian's haproxy) on 127.0.0.1.
Answers are identical whichever replica serves; one replica is killed (SIGKILL, master and workers) under
bounded load, and what was lost is counted: only requests in flight on it.

    .venv/bin/python -m pytest tests/deploy/test_scale_out.py -s    (prints the counts)

haproxy plays a Kubernetes Service's part: readiness-checked back ends (GET /v2/health/ready), new connections
retried on another replica when one refuses them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import orjson
import pytest
import requests

from benchmarks.harness.load import children, drive, predict_call, wait_for
from benchmarks.harness.server import Server, free_port

pytestmark = pytest.mark.slow
TASK = "echo-lag"
THREADS = 4  # client connections: at most this many requests can be in flight anywhere
LOAD_SECONDS = 8.0
MAX_REQUESTS = 20_000  # a bound, not the stop: the load runs LOAD_SECONDS (at ~1,000 req/s, ~8,000 requests)
KILL_AFTER = 2.5  # seconds into the load


def haproxy_config(port: int, backends: dict[str, int], stats: Path) -> str:
    servers = "\n".join(
        f"    server {name} 127.0.0.1:{p} check inter 300ms fall 1 rise 2" for name, p in backends.items()
    )
    return f"""global
    maxconn 256
    stats socket {stats} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # A replica that refuses the connection (killed) costs the client nothing: the request goes to another.
    retries 2
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend toyseq
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /v2/health/ready
    http-check expect status 200
    http-response set-header X-Served-By %s
{servers}
"""


class Haproxy:
    def __init__(self, tmp: Path, backends: dict[str, int]):
        binary = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
        if not binary:
            pytest.skip("haproxy is not installed (apt-get install haproxy; .ci/run installs it)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp / "haproxy.cfg"
        self.stats = tmp / "haproxy.sock"
        config.write_text(haproxy_config(self.port, backends, self.stats))
        check = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = tmp / "haproxy.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
        assert wait_for(lambda: self._up(), 15), self.log.read_text()

    def _up(self) -> bool:
        try:
            return requests.get(self.url + "/v2/health/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def sessions(self, server: str) -> int:
        """Requests haproxy has on a back-end server right now (the stats socket's `scur`)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == "replicas" and row.get("svname") == server:
                return int(row["scur"] or 0)
        raise AssertionError(f"no server {server} in haproxy's stats: {lines[:5]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def kill_replica(server: Server, balancer: Haproxy, name: str) -> int:
    """A crashed pod: the master and every worker frozen at once (SIGSTOP: nothing more is accepted or answered),
    haproxy's check given time to mark it down, then all SIGKILLed. Returns the requests that were on it when it
    died: haproxy's current sessions on that server."""
    pids = [server.proc.pid, *children(server.proc.pid)]
    signal_all(pids, signal.SIGSTOP)
    time.sleep(1.0)  # > the check's interval + timeout: no new request goes to it after this
    in_flight = balancer.sessions(name)
    signal_all(pids, signal.SIGKILL)
    server.proc.wait(10)
    return in_flight


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


@pytest.fixture()
def cluster(tmp_path, models_copy):
    env = {"TOYSEQ_WORKERS": "1", "TOYSEQ_LOG_LEVEL": "warning"}
    replicas = {}
    try:
        for name in ("a", "b"):
            replicas[name] = Server(tmp_path / f"replica-{name}.log", env, models_copy)
        balancer = Haproxy(tmp_path, {name: s.port for name, s in replicas.items()})
        try:
            yield balancer, replicas
        finally:
            balancer.stop()
    finally:
        for server in replicas.values():
            if server.proc.poll() is None:
                server.stop()


def test_two_replicas_answer_alike_and_a_killed_one_loses_only_its_requests_in_flight(cluster):
    balancer, replicas = cluster
    # identical answers whichever replica serves, natively and over v2
    native_body = {"inputs": [[5, 3, 8, 1], [9, 9, 2, 7]]}
    v2_body = {"inputs": [{"name": "input", "datatype": "INT64", "shape": [2, 4], "data": [5, 3, 8, 1, 9, 9, 2, 7]}]}
    answers: dict[str, dict[str, set]] = {"native": {}, "v2": {}}
    with requests.Session() as http:
        for kind, path, body in (
            ("native", f"/tasks/{TASK}/predict", native_body),
            ("v2", f"/v2/models/{TASK}/infer", v2_body),
        ):
            for _ in range(6):  # round robin: three from each replica
                r = http.post(
                    balancer.url + path,
                    data=orjson.dumps(body),
                    timeout=30,
                    headers={"Content-Type": "application/json", "Connection": "close"},
                )
                assert r.status_code == 200, r.text
                answer = r.json()
                answer.pop("id", None)
                answers[kind].setdefault(r.headers["X-Served-By"], set()).add(orjson.dumps(answer))
    for kind, by_replica in answers.items():
        assert set(by_replica) == {"a", "b"}, (kind, by_replica.keys())  # round robin reached both
        assert len(set.union(*by_replica.values())) == 1, (kind, by_replica)  # one answer, whoever served

    # bounded load through the balancer; replica a is killed mid-way
    killed_at: list[float] = []
    in_flight: list[int] = []

    def kill():
        frozen = time.monotonic()
        in_flight.append(kill_replica(replicas["a"], balancer, "a"))
        killed_at.append(frozen)

    timer = threading.Timer(KILL_AFTER, kill)
    started = time.monotonic()
    timer.start()
    try:
        tally = drive(
            balancer.url,
            lambda rng: predict_call(TASK, rng),
            threads=THREADS,
            seconds=LOAD_SECONDS,
            max_requests=MAX_REQUESTS,
            seed=3,
        )
    finally:
        timer.cancel()
    assert killed_at, "the replica was not killed during the load"
    lost = [o for o in tally.outcomes if o.result != "ok"]
    after = [o for o in tally.outcomes if o.at > killed_at[0] + 2.0]
    print(
        f"\nscale-out: {tally.summary()}; replica a frozen {killed_at[0] - started:.1f} s in and killed 1 s "
        f"later with {in_flight[0]} requests on it; lost {len(lost)} ({[f'{o.result} {o.status}' for o in lost]}); "
        f"{len(after)} requests answered from 1 s after the kill on"
    )
    assert not [o for o in lost if o.result == "wrong"], tally.failures()  # never a wrong answer
    # only the requests in flight on the killed replica, which can be no more than one per client connection
    assert len(lost) <= in_flight[0] <= THREADS, (in_flight, tally.failures(10))
    assert all(killed_at[0] < o.at < killed_at[0] + 3.0 for o in lost), [(o.result, o.at - killed_at[0]) for o in lost]
    assert len(after) > 20 and all(o.result == "ok" for o in after)
    assert replicas["b"].proc.poll() is None
