"""HTTP throughput under gunicorn with the project's config (2 workers, the default loop worker): toyseq vs the bare Flask floor
(benchmarks/reference/floor.py), one echo-lag sequence of 10 values per request, wrk at 8 connections, after one
unmeasured second on each, rounds alternating A B C A B C so that machine noise hits all alike: A the native
predict path, B the floor, C the same sequence through the Open Inference Protocol v2 infer path (JSON); then
1,000 sequences per request.

    python -m benchmarks.scenarios.http [--rounds N] [--seconds S] [--one-only]   # more A B pairs on a noisy machine
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

import orjson

from benchmarks.harness import wrk
from benchmarks.harness.server import FLOOR_APP, TOYSEQ_APP, Server
from benchmarks.harness.timing import QUICK, Sizes

TASK, LENGTH, CONNECTIONS, BIG_BATCH = "echo-lag", 10, 8, 1000
GOAL_RATIO, GOAL_SEQUENCES_PER_S = 0.8, 50_000
WARM_UP_SECONDS = 1


def body(count: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    return orjson.dumps({"inputs": [[rng.randint(0, 99) for _ in range(LENGTH)] for _ in range(count)]})


def v2_body(count: int, seed: int = 0) -> bytes:
    """The same sequences as body(count, seed), as a v2 inference request."""
    rows = orjson.loads(body(count, seed))["inputs"]
    return orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "INT64",
                    "shape": [count, LENGTH],
                    "data": [v for row in rows for v in row],
                }
            ]
        }
    )


def summary(runs: list[dict]) -> dict:
    return {
        "requests_per_s": statistics.median(r["requests_per_s"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "errors": sum(r["errors"] + r["non_2xx"] for r in runs),
        "runs": runs,
    }


def run(models_dir: Path, sizes: Sizes, log_dir: Path, one_only: bool = False) -> dict:
    path, v2_path = f"/tasks/{TASK}/predict", f"/v2/models/{TASK}/infer"
    one, big, v2_one = body(1), body(BIG_BATCH), v2_body(1)
    toyseq_runs, floor_runs, v2_runs, big_runs = [], [], [], []
    with (
        Server(log_dir / "toyseq.log", models_dir=models_dir, app=TOYSEQ_APP) as toyseq,
        Server(log_dir / "floor.log", models_dir=models_dir, app=FLOOR_APP) as floor,
    ):
        for server in (toyseq, floor):  # unmeasured: the first seconds after start run slower for both
            wrk.run(server.url + path, one, WARM_UP_SECONDS, CONNECTIONS)
        wrk.run(toyseq.url + v2_path, v2_one, WARM_UP_SECONDS, CONNECTIONS)
        for _ in range(sizes.http_rounds):
            toyseq_runs.append(wrk.run(toyseq.url + path, one, sizes.http_seconds, CONNECTIONS))
            floor_runs.append(wrk.run(floor.url + path, one, sizes.http_seconds, CONNECTIONS))
            v2_runs.append(wrk.run(toyseq.url + v2_path, v2_one, sizes.http_seconds, CONNECTIONS))
        for _ in range(0 if one_only else sizes.http_rounds):
            big_runs.append(wrk.run(toyseq.url + path, big, sizes.http_seconds, CONNECTIONS))
    a, b, c = summary(toyseq_runs), summary(floor_runs), summary(v2_runs)
    # Each pair ran back to back, so its ratio is the least disturbed by drifting load.
    ratios = [t["requests_per_s"] / f["requests_per_s"] for t, f in zip(toyseq_runs, floor_runs)]
    result = {
        "task": TASK,
        "length": LENGTH,
        "connections": CONNECTIONS,
        "workers": 2,
        "one_per_request": {
            "toyseq": a,
            "floor": b,
            "ratio": statistics.median(ratios),
            "pair_ratios": ratios,
            "goal": GOAL_RATIO,
            "met": statistics.median(ratios) >= GOAL_RATIO,
        },
        # the v2 path vs the native one, each round's pair back to back
        "v2_one_per_request": {
            "v2": c,
            "ratio_to_native": statistics.median(
                v["requests_per_s"] / t["requests_per_s"] for v, t in zip(v2_runs, toyseq_runs)
            ),
            "ratio_to_floor": statistics.median(
                v["requests_per_s"] / f["requests_per_s"] for v, f in zip(v2_runs, floor_runs)
            ),
        },
    }
    if big_runs:
        big_summary = summary(big_runs)
        big_summary["sequences_per_s"] = big_summary["requests_per_s"] * BIG_BATCH
        result["batch_per_request"] = {
            "sequences": BIG_BATCH,
            **big_summary,
            "goal": GOAL_SEQUENCES_PER_S,
            "met": big_summary["sequences_per_s"] >= GOAL_SEQUENCES_PER_S,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scenarios.http", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=QUICK.http_rounds, help="A B pairs (one wrk run each)")
    p.add_argument("--seconds", type=float, default=QUICK.http_seconds, help="per wrk run")
    p.add_argument("--one-only", action="store_true", help="skip the 1,000-sequence runs")
    p.add_argument("--models", type=Path, default=Path("models"), help="the committed models by default")
    args = p.parse_args(argv)
    sizes = dataclasses.replace(QUICK, http_rounds=args.rounds, http_seconds=args.seconds)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.models.resolve(), sizes, Path(tmp), one_only=args.one_only)
    result["load_average"] = [load_start, os.getloadavg()[0]]
    one, v2 = result["one_per_request"], result["v2_one_per_request"]
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    print(
        f"one sequence/request: toyseq {one['toyseq']['requests_per_s']:,.0f} req/s, floor "
        f"{one['floor']['requests_per_s']:,.0f} req/s; pair ratios "
        f"{', '.join(f'{r:.2f}' for r in one['pair_ratios'])}; median {one['ratio']:.2f}x; "
        f"load average {load_start:.2f} -> {os.getloadavg()[0]:.2f}; v2 infer {v2['v2']['requests_per_s']:,.0f} req/s "
        f"({v2['ratio_to_native']:.2f}x native, {v2['ratio_to_floor']:.2f}x floor)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
