"""The worker model chosen by measurement: toyseq and the bare Flask floor under gunicorn's sync worker and
under toyseq's loop worker (service/server/loop/worker.py) as it is, with every predict sent to its pool instead
of run inline (TOYSEQ_INLINE_SECONDS=0), and with access lines off (TOYSEQ_LOG_LEVEL=warning: what they
cost); 2 workers, wrk 8 connections, one echo-lag sequence per request (and 100), variants alternating
round by round so that the machine's drifting load hits all alike.

    python -m benchmarks.scenarios.workermodel [--rounds 3] [--seconds 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import wrk
from benchmarks.harness.server import FLOOR_APP, TOYSEQ_APP, Server

from .http import body

VARIANTS = {
    "sync": {"TOYSEQ_WORKER_CLASS": "sync"},
    "loop": {},
    "loop, all on the pool": {"TOYSEQ_INLINE_SECONDS": 0},
    "loop, access lines off": {"TOYSEQ_LOG_LEVEL": "warning"},
}
PATH = "/tasks/echo-lag/predict"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scenarios.workermodel", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4)
    p.add_argument("--connections", type=int, default=8)
    args = p.parse_args(argv)
    one, hundred = body(1), body(100)
    runs = {(v, app): [] for v in VARIANTS for app in ("toyseq", "floor", "toyseq-100")}
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, env in VARIANTS.items():
                for app, spec in (("toyseq", TOYSEQ_APP), ("floor", FLOOR_APP)):
                    with Server(Path(tmp) / "w.log", env=env, app=spec) as server:
                        wrk.run(server.url + PATH, one, 1, args.connections)  # unmeasured
                        runs[(name, app)].append(wrk.run(server.url + PATH, one, args.seconds, args.connections))
                        if app == "toyseq":
                            runs[(name, "toyseq-100")].append(
                                wrk.run(server.url + PATH, hundred, args.seconds, args.connections)
                            )
    print(
        f"2 workers, wrk {args.connections} connections, {args.rounds} rounds of {args.seconds:.0f} s, medians; "
        f"load average {load_start:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print(
        "| worker | toyseq 1 seq req/s (p99 ms) | floor req/s (p99 ms) | toyseq / floor (per round) "
        "| toyseq 100 seq req/s (p99 ms) |"
    )
    print("|---|---|---|---|---|")
    for name in VARIANTS:
        t, f, h = runs[(name, "toyseq")], runs[(name, "floor")], runs[(name, "toyseq-100")]
        ratios = [a["requests_per_s"] / b["requests_per_s"] for a, b in zip(t, f)]

        def fmt(rs):
            return (
                f"{statistics.median(r['requests_per_s'] for r in rs):,.0f} "
                f"({statistics.median(r['p99_ms'] for r in rs):.1f})"
            )

        print(
            f"| {name} | {fmt(t)} | {fmt(f)} | {statistics.median(ratios):.2f}x "
            f"({', '.join(f'{r:.2f}' for r in ratios)}) | {fmt(h)} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
