"""Did a change cost speed? Two revisions served side by side and measured in one run, rounds alternating.

    python -m benchmarks.scenarios.regression --before REV [--after HEAD] [--rounds 6] [--seconds 8] [--after-env K=V ...]

Each revision is exported with `git archive` and served by gunicorn from its own tree, with its own gunicorn
config and defaults, on its own committed models (2 workers, 1 thread each). The scenarios use only models
whose ONNX file is the same in both revisions (checked by sha256), so a difference is the serving code's.
wrk drives each scenario at 8 connections; rounds go before-after, then after-before, so a drift in the
machine's load hits both alike. Per scenario it prints each side's median requests/s and server CPU
milliseconds per request, and the after/before ratio of each over the round pairs (median and range),
with the load average; it exits 1 when the median requests/s ratio is under --floor (0.95: "no ratio drops more than 5%"). `--after-env TOYSEQ_WORKER_CLASS=sync` serves the
after side with the before side's worker model, to tell the code's cost from the worker's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import orjson

from benchmarks.harness import wrk
from benchmarks.harness.paths import ROOT
from benchmarks.harness.server import Server

from .pod import cpu_seconds

CONNECTIONS, LENGTH = 8, 10


@dataclass(frozen=True)
class Scenario:
    name: str
    task: str
    count: int  # sequences per request
    steps: int = 0  # rollout steps (0: next value / echo only)

    def body(self) -> bytes:
        rng = random.Random(0)
        high = 1 if self.task == "alternating" else 99
        request: dict = {"inputs": [[rng.randint(0, high) for _ in range(LENGTH)] for _ in range(self.count)]}
        if self.steps:
            request["steps"] = self.steps
        return orjson.dumps(request)


SCENARIOS = (
    Scenario("echo-lag, 1 sequence", "echo-lag", 1),
    Scenario("echo-lag, 1,000 sequences", "echo-lag", 1000),
    Scenario("alternating, 1 sequence, 20-step rollout", "alternating", 1, steps=20),
)


def export(rev: str, into: Path) -> Path:
    """The revision's committed tree (models included), as CI's clean clone would have it."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def onnx_sha(tree: Path, task: str) -> str:
    return json.loads((tree / "models" / task / "manifest.json").read_text())["onnx"]["sha256"]


def measure(server: Server, scenario: Scenario, seconds: float) -> tuple[float, float]:
    """requests/s, and the server's CPU milliseconds per request (master and workers, from /proc): the
    steadier figure on a shared machine, since other jobs' load slows a round but does not add to it."""
    cpu = cpu_seconds(server)
    result = wrk.run(f"{server.url}/tasks/{scenario.task}/predict", scenario.body(), seconds, CONNECTIONS)
    if result["errors"] or result["non_2xx"]:
        raise RuntimeError(f"{scenario.name}: {result['errors']} errors, {result['non_2xx']} non-2xx answers")
    return result["requests_per_s"], (cpu_seconds(server) - cpu) / result["requests"] * 1000


def compare(before: Server, after: Server, scenario: Scenario, rounds: int, seconds: float) -> dict:
    for server in (before, after):  # unmeasured: the first second after start runs slower
        measure(server, scenario, 1)
    rates: dict[str, list[float]] = {"before": [], "after": []}
    cpu: dict[str, list[float]] = {"before": [], "after": []}
    for i in range(rounds):
        order = (("before", before), ("after", after)) if i % 2 == 0 else (("after", after), ("before", before))
        for side, server in order:
            rate, ms = measure(server, scenario, seconds)
            rates[side].append(rate)
            cpu[side].append(ms)
    ratios = [a / b for a, b in zip(rates["after"], rates["before"])]
    cpu_ratios = [a / b for a, b in zip(cpu["after"], cpu["before"])]
    return {
        "scenario": scenario.name,
        "before_rps": statistics.median(rates["before"]),
        "after_rps": statistics.median(rates["after"]),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "before_cpu_ms": statistics.median(cpu["before"]),
        "after_cpu_ms": statistics.median(cpu["after"]),
        "cpu_ratio_median": statistics.median(cpu_ratios),
        "cpu_ratio_min": min(cpu_ratios),
        "cpu_ratio_max": max(cpu_ratios),
        "rounds": rates,
        "cpu_ms_rounds": cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="git revision to compare against")
    parser.add_argument("--after", default="HEAD")
    parser.add_argument("--rounds", type=int, default=6, help="measurements of each side per scenario")
    parser.add_argument("--seconds", type=float, default=8.0, help="per wrk run")
    parser.add_argument("--floor", type=float, default=0.95, help="lowest acceptable median after/before ratio")
    parser.add_argument("--after-env", nargs="*", default=[], metavar="K=V", help="settings for the after side only")
    parser.add_argument("--only", help="scenarios whose name contains this text (default: all)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if not wrk.available():
        parser.error("wrk is not installed (apt-get install -y wrk)")
    after_env = dict(kv.split("=", 1) for kv in args.after_env)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="toyseq-regression-") as tmp:
        trees = {side: export(getattr(args, side), Path(tmp) / side) for side in ("before", "after")}
        wanted = [s for s in SCENARIOS if args.only is None or args.only in s.name]
        scenarios = [s for s in wanted if onnx_sha(trees["before"], s.task) == onnx_sha(trees["after"], s.task)]
        skipped = sorted({s.task for s in wanted} - {s.task for s in scenarios})
        env = {"TOYSEQ_LOG_LEVEL": "warning"}  # access lines off on both sides: their cost is not the question
        with (
            Server(Path(tmp) / "before.log", env, trees["before"] / "models", root=trees["before"]) as before,
            Server(Path(tmp) / "after.log", env | after_env, trees["after"] / "models", root=trees["after"]) as after,
        ):
            rows = [compare(before, after, s, args.rounds, args.seconds) for s in scenarios]
    figures = {
        "before": args.before,
        "after": args.after,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "after_env": after_env,
        "load_average": [load_start, os.getloadavg()[0]],
        "cores": os.cpu_count(),
        "skipped_tasks": skipped,
        "scenarios": rows,
    }
    settings = " ".join(args.after_env) or "its defaults"
    print(
        f"{args.after} ({settings}) vs {args.before}: {args.rounds} alternating rounds of {args.seconds:g} s, wrk at 8 conns"
    )
    print(
        f"{'scenario':42s} {'req/s before':>12s} {'after':>6s} {'after/before (range)':>22s}   "
        f"{'CPU ms/req before':>17s} {'after':>6s} {'after/before (range)':>22s}"
    )
    worst = min((r["ratio_median"] for r in rows), default=1.0)
    for r in rows:
        print(
            f"{r['scenario']:42s} {r['before_rps']:12,.0f} {r['after_rps']:6,.0f} "
            f"{r['ratio_median']:8.3f} ({r['ratio_min']:.3f}-{r['ratio_max']:.3f})   "
            f"{r['before_cpu_ms']:17.2f} {r['after_cpu_ms']:6.2f} "
            f"{r['cpu_ratio_median']:8.3f} ({r['cpu_ratio_min']:.3f}-{r['cpu_ratio_max']:.3f})"
        )
    if skipped:
        print(f"not compared (their model changed between the revisions): {', '.join(skipped)}")
    print(f"load average {load_start:.2f} -> {figures['load_average'][1]:.2f} on {os.cpu_count()} cores")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    if worst < args.floor:
        print(f"REGRESSION: a median ratio of {worst:.3f} is under {args.floor}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
