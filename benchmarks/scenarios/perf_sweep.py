"""Triton's perf_analyzer against toyseq: a concurrency sweep (1..8 clients) over HTTP and over gRPC, the tool
run unchanged as a Triton user runs it (tests/support/perf_analyzer.py finds or installs the binary).

    python -m benchmarks.scenarios.perf_sweep                      # echo-lag, concurrency 1..8, both protocols
    python -m benchmarks.scenarios.perf_sweep --out docs/perf_analyzer.json         # the figures docs/performance.md quotes
    python -m benchmarks.scenarios.perf_sweep --stability 1000                     # a loaded machine: any spread accepted

One gunicorn server (the README's command: 2 workers, gRPC on) on 127.0.0.1 serves both sweeps. perf_analyzer
sends the task's worked example (one sequence per request) from C concurrent clients, C = 1..8, measures windows
of `--interval` ms until three agree within 10% (its default stability rule; on a busy machine they rarely do,
and `--stability 1000` takes any three), and reports client throughput and latency percentiles with the
server-side statistics (the v2 statistics extension). (perf_analyzer's --request-count is no substitute: it
rounds the measured time to whole seconds, so its throughput is off by up to a second's worth.) The JSON keeps each protocol's rows, the commands and
the machine's load average before and after (figures are publishable only from a quiet machine).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness.paths import MODELS_DIR, ROOT
from benchmarks.harness.server import Server
from service.core import manifest as manifest_mod
from tests.support import perf_analyzer

PROTOCOLS = ("http", "grpc")
COLUMNS = {  # perf_analyzer's CSV column -> the JSON's field
    "Concurrency": "concurrency",
    "Inferences/Second": "throughput",
    "p50 latency": "p50_us",
    "p99 latency": "p99_us",
    "Server Queue": "server_queue_us",
    "Server Compute Input": "server_compute_input_us",
    "Server Compute Infer": "server_compute_infer_us",
    "Server Compute Output": "server_compute_output_us",
}


def sweep(tool, task: str, url: str, protocol: str, data: str, args: argparse.Namespace) -> tuple[list[dict], str]:
    """One perf_analyzer run per concurrency level, so a level that cannot be measured names itself."""
    rows, shown = [], ""
    for level in range(1, args.concurrency + 1):
        row, shown = measure(tool, [task, url, protocol, data], level, args)
        rows.append(row)
    return rows, shown


def measure(tool, target: list[str], level: int, args: argparse.Namespace) -> tuple[dict, str]:
    task, url, protocol, data = target
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "sweep.csv"
        command = [tool.binary, "-m", task, "-u", url, "-i", protocol, "--input-data", data]
        command += ["--concurrency-range", f"{level}:{level}"]
        # perf_analyzer's own rule: windows until three agree within -s %
        command += ["--measurement-interval", str(args.interval), "--max-trials", "10", "-s", str(args.stability)]
        done = subprocess.run(command + ["-f", str(report)], env=tool.env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{shlex.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        (row,) = csv.DictReader(io.StringIO(report.read_text()))
    shown = shlex.join(["perf_analyzer", *command[1:]]).replace(f"{level}:{level}", "C:C")
    values = {field: float(row[column]) for column, field in COLUMNS.items() if column in row}
    return {**values, "concurrency": level}, shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="echo-lag")
    parser.add_argument("--concurrency", type=int, default=8, help="the sweep goes 1..this")
    parser.add_argument("--interval", type=int, default=2000, help="perf_analyzer's measurement window, ms")
    parser.add_argument(
        "--stability", type=int, default=10, help="perf_analyzer's -s: windows must agree within this %% (its default)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here (default: print it)")
    args = parser.parse_args(argv)
    tool = perf_analyzer.find()
    if tool.binary is None:
        print(tool.reason, file=sys.stderr)
        return 2
    example = manifest_mod.load(MODELS_DIR / args.task, check_hash=False)["example"]["input"]
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    load_start = os.getloadavg()
    results, commands = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.json"
        data.write_text(json.dumps({"data": [{"input": {"content": example, "shape": [len(example)]}}]}))
        with Server(Path(tmp) / "gunicorn.log", grpc=True) as server:
            for protocol in PROTOCOLS:
                url = server.url.removeprefix("http://") if protocol == "http" else server.grpc_target
                results[protocol], commands[protocol] = sweep(tool, args.task, url, protocol, str(data), args)
    out = {
        "command": "python -m benchmarks.scenarios.perf_sweep "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
        "task": args.task,
        "tool": perf_analyzer.TRITONCLIENT,
        "perf_analyzer": {p: c.replace(str(data), "data.json") for p, c in commands.items()},
        "workers": 2,
        "machine": {
            "cores": os.cpu_count(),
            "load_average_start": list(load_start),
            "load_average_end": list(os.getloadavg()),
            "started": started,
        },
        "results": results,
    }
    text = json.dumps(out, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
