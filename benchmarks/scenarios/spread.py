"""How kept-alive connections spread over gunicorn's workers: wrk holds N connections to toyseq for a while
and the app's access lines (each names its worker's pid) say how many requests each worker answered.
A worker that accepted more of the long-lived connections answers more, and with fewer workers than
clients the busier one queues while the other idles. Compared: keep-alive without a per-connection limit,
with TOYSEQ_KEEPALIVE_REQUESTS (clients reconnect, the accept is redone), and with SO_REUSEPORT.

    python -m benchmarks.scenarios.spread [--seconds 5] [--rounds 3] [--connections 8]
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

from benchmarks.harness import wrk
from benchmarks.harness.server import Server

from .http import body

VARIANTS = {
    "keep-alive, no limit": {"TOYSEQ_KEEPALIVE_REQUESTS": 0},
    "keep-alive, 1000 requests/connection": {"TOYSEQ_KEEPALIVE_REQUESTS": 1000},
    "keep-alive, 100 requests/connection": {"TOYSEQ_KEEPALIVE_REQUESTS": 100},
    "SO_REUSEPORT, no limit": {"TOYSEQ_KEEPALIVE_REQUESTS": 0, "TOYSEQ_REUSE_PORT": 1},
}


def per_worker(log: str) -> list[int]:
    counts = collections.Counter()
    for line in log.splitlines():
        if '"toyseq.access"' in line and "/predict" in line:
            try:
                counts[orjson.loads(line)["pid"]] += 1
            except (orjson.JSONDecodeError, KeyError):
                continue
    return sorted(counts.values(), reverse=True)


def run_once(env: dict, seconds: float, connections: int, tmp: Path) -> dict:
    log = tmp / f"spread-{os.urandom(4).hex()}.log"
    with Server(log, env={"TOYSEQ_LOG_LEVEL": "info", **env}) as server:
        # /readyz answers once one worker is up: wait until both have logged their models loaded, or the
        # first would take every connection for a reason no deployment has for long.
        deadline = time.monotonic() + 60
        while server.log().count('"models loaded"') < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        result = wrk.run(server.url + "/tasks/echo-lag/predict", body(1), seconds, connections)
        # Access lines are flushed every 50 ms and at exit.
    counts = per_worker(log.read_text(errors="replace"))
    counts += [0] * (2 - len(counts))
    return {
        "requests_per_s": result["requests_per_s"],
        "p99_ms": result["p99_ms"],
        "per_worker": counts,
        "busiest_share": counts[0] / max(1, sum(counts)),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scenarios.spread", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=8)
    args = p.parse_args(argv)
    out = {name: [] for name in VARIANTS}
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):  # variants alternate within each round
            for name, env in VARIANTS.items():
                out[name].append(run_once(env, args.seconds, args.connections, Path(tmp)))
    print(
        f"wrk {args.connections} connections, 2 workers, {args.rounds} rounds of {args.seconds:.0f} s; "
        f"load average {load_start:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    print("| variant | busiest worker's share of requests (each round) | req/s (median) | p99 ms (median) |")
    print("|---|---|---|---|")
    for name, runs in out.items():
        shares = ", ".join(f"{r['busiest_share']:.0%}" for r in runs)
        print(
            f"| {name} | {shares} | {statistics.median(r['requests_per_s'] for r in runs):,.0f} "
            f"| {statistics.median(r['p99_ms'] for r in runs):.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
