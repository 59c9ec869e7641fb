"""The HTTP fronts alone: toyseq's loop worker against Granian (the peers benchmark's `granian`, in its virtualenv)
serving one trivial WSGI app (`benchmarks/peers/trivial_app.py`: reads the body, answers a small JSON), so what differs is
the front's own work per request: framing, the WSGI environ, the call, the answer's write.

    python -m benchmarks.scenarios.fronts [--rounds 4] [--seconds 4]

2 processes each (gunicorn with the loop worker, `-w 2`; granian `--workers 2 --blocking-threads 1`), both
running at once and loaded in turn by wrk (8 connections, the peers' 1-sequence body), the order alternating.
Prints per front the servers' CPU per request (from /proc) and requests/s and p99 of each round, and the load
average. Needs wrk and the granian virtualenv (`python -m benchmarks.peers.envs granian`).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

from benchmarks.harness import wrk
from benchmarks.harness.paths import ROOT
from benchmarks.harness.server import free_port
from benchmarks.peers import envs

BODY = b'{"inputs": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}'


APP = "benchmarks.peers.trivial_app:app"


def command(front: str, port: int) -> list[str]:
    if front == "granian":
        return [str(envs.python("granian")), "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1"] + [
            "--port", str(port), "--workers", "2", "--blocking-threads", "1", "--no-ws", APP
        ]  # fmt: skip
    worker = "service.server.loop.worker.LoopWorker"
    return [sys.executable, "-m", "gunicorn", "-k", worker, "-w", "2", "-b", f"127.0.0.1:{port}"] + [
        "--log-level", "warning", APP
    ]  # fmt: skip


def cpu_seconds(pid: int) -> float:
    ticks, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = open(f"/proc/{current}/stat").read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
            for task in os.listdir(f"/proc/{current}/task"):
                todo += [int(p) for p in open(f"/proc/{current}/task/{task}/children").read().split()]
        except OSError:
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scenarios.fronts", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seconds", type=float, default=4)
    args = p.parse_args(argv)
    if not wrk.available():
        p.error("wrk is not installed (apt-get install -y wrk)")
    envs.install("granian", log=lambda m: print(m, file=sys.stderr))
    load_start = os.getloadavg()[0]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    servers = {}
    try:
        for front in ("loop", "granian"):
            port = free_port()
            proc = subprocess.Popen(
                command(front, port), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            servers[front] = (proc, f"http://127.0.0.1:{port}/")
        deadline = time.monotonic() + 60
        for front, (_proc, url) in servers.items():
            while True:  # up when wrk gets answers
                try:
                    if wrk.run(url, BODY, 1, 2)["requests"] > 0:
                        break
                except RuntimeError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{front} did not start")
        rounds: dict[str, list[dict]] = {front: [] for front in servers}
        for index in range(args.rounds):
            order = list(servers) if index % 2 == 0 else list(servers)[::-1]
            for front in order:
                proc, url = servers[front]
                before = cpu_seconds(proc.pid)
                got = wrk.run(url, BODY, args.seconds, 8)
                got["cpu_us_per_request"] = (cpu_seconds(proc.pid) - before) / max(1, got["requests"]) * 1e6
                rounds[front].append(got)
    finally:
        for proc, _ in servers.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            proc.wait(30)
    print(f"trivial WSGI app, 2 processes, wrk 8 connections, {args.rounds} alternating rounds of {args.seconds:g} s")
    for front, runs in rounds.items():
        cpu = [r["cpu_us_per_request"] for r in runs]
        rates = ", ".join(f"{r['requests_per_s']:,.0f}" for r in runs)
        p99 = ", ".join(f"{r['p99_ms']:.1f}" for r in runs)
        each = ", ".join(f"{c:.0f}" for c in cpu)
        print(
            f"{front:8} CPU µs/request median {statistics.median(cpu):.1f} (rounds {each}); req/s {rates}; p99 ms {p99}"
        )
    print(f"load average {load_start:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
