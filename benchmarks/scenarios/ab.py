"""A/B of toyseq variants in one run, rounds alternating: a revision and/or TOYSEQ_* settings per variant.

    python -m benchmarks.scenarios.ab --variant before=1366dbb --variant after=. [--variant gc=.:TOYSEQ_GC_FREEZE=0] \
        [--rounds 4] [--seconds 5] [--sequences 1,100]

A variant is NAME=REV[:K=V,K=V...]: REV is a git revision (exported with `git archive`, its own committed
models) or `.` for the working tree as it is; the settings are added to that server's environment. Every
variant is served at once (2 workers each, access lines on as by default); each round loads each variant in
turn with wrk (8 connections, one unmeasured second when first used), the order rotating from round to round so
a drift in the machine's load hits all alike. Per variant and request size: median requests/s, p50 and p99 (ms)
and the servers' CPU per request (from /proc, steadier on a shared machine); ratios against the first variant
per round (median and range); the load average at the start and end. Answers are checked against the first
variant's before measuring.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

import orjson

from benchmarks.harness import wrk
from benchmarks.harness.paths import ROOT
from benchmarks.harness.server import Server

from .pod import cpu_seconds
from .regression import export

TASK, LENGTH, CONNECTIONS = "echo-lag", 10, 8


def body(count: int) -> bytes:
    rng = random.Random(count)
    return orjson.dumps({"inputs": [[rng.randint(0, 99) for _ in range(LENGTH)] for _ in range(count)]})


def parse_variant(text: str) -> tuple[str, str, dict]:
    name, _, rest = text.partition("=")
    rev, _, settings = rest.partition(":")
    env = dict(kv.split("=", 1) for kv in settings.split(",") if kv)
    return name, rev or ".", env


def answer(server: Server, data: bytes) -> list:
    request = urllib.request.Request(f"{server.url}/tasks/{TASK}/predict", data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as got:
        return orjson.loads(got.read())["outputs"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scenarios.ab", description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME=REV[:K=V,...] (REV . = working tree)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sequences", default="1,100", help="sequences per request, comma-separated")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if not wrk.available():
        parser.error("wrk is not installed (apt-get install -y wrk)")
    variants = [parse_variant(v) for v in args.variant]
    sizes = [int(s) for s in args.sequences.split(",")]
    load_start = os.getloadavg()
    results: dict[str, dict[int, list[dict]]] = {name: {n: [] for n in sizes} for name, _, _ in variants}
    with tempfile.TemporaryDirectory(prefix="toyseq-ab-") as tmp:
        servers: dict[str, Server] = {}
        try:
            for name, rev, env in variants:
                tree = ROOT if rev == "." else export(rev, Path(tmp) / name)
                servers[name] = Server(Path(tmp) / f"{name}.log", env, tree / "models", root=tree)
            first = variants[0][0]
            for n in sizes:
                want = answer(servers[first], body(n))
                for name, server in servers.items():
                    if answer(server, body(n)) != want:
                        raise RuntimeError(f"{name} answers {n} sequences differently from {first}")
                    wrk.run(f"{server.url}/tasks/{TASK}/predict", body(n), 1, CONNECTIONS)  # unmeasured
            names = list(servers)
            for index in range(args.rounds):
                order = names[index % len(names) :] + names[: index % len(names)]
                for n in sizes:
                    for name in order:
                        server = servers[name]
                        cpu = cpu_seconds(server)
                        got = wrk.run(f"{server.url}/tasks/{TASK}/predict", body(n), args.seconds, CONNECTIONS)
                        got["cpu_ms_per_request"] = (cpu_seconds(server) - cpu) / max(1, got["requests"]) * 1e3
                        got["load_average"] = os.getloadavg()[0]
                        results[name][n].append(got)
                print(f"[ab] round {index + 1}/{args.rounds} done (load {os.getloadavg()[0]:.2f})", file=sys.stderr)
        finally:
            for server in servers.values():
                server.stop()
    load_end = os.getloadavg()
    first = variants[0][0]
    summary: dict = {}
    print(
        f"{args.rounds} alternating rounds of {args.seconds:g} s, wrk {CONNECTIONS} connections, {TASK} x {LENGTH} "
        f"values; load average {load_start[0]:.2f} -> {load_end[0]:.2f} on {os.cpu_count()} cores"
    )
    print(f"{'variant':14} {'seq':>4} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/req':>10}   vs {first} (range)")
    for name, rev, env in variants:
        summary[name] = {"rev": rev, "env": env}
        for n in sizes:
            runs = results[name][n]
            ratios = [a["requests_per_s"] / b["requests_per_s"] for a, b in zip(runs, results[first][n])]
            row = {
                key: statistics.median(r[key] for r in runs)
                for key in ("requests_per_s", "p50_ms", "p99_ms", "cpu_ms_per_request")
            }
            row |= {
                "ratio": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "errors": sum(r["errors"] + r["non_2xx"] for r in runs),
                "rounds": runs,
            }
            summary[name][n] = row
            print(
                f"{name:14} {n:4d} {row['requests_per_s']:7,.0f} {row['p50_ms']:7.2f} {row['p99_ms']:7.2f} "
                f"{row['cpu_ms_per_request']:10.3f}   {row['ratio']:.2f}x ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})"
                + (f"  errors {row['errors']}" if row["errors"] else "")
            )
    if args.out:
        figures = {
            "command": "python -m benchmarks.scenarios.ab " + " ".join(argv if argv is not None else sys.argv[1:])
        }
        figures |= {"load_average": [load_start, load_end], "cores": os.cpu_count(), "variants": summary}
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
