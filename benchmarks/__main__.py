"""The benchmark suite: six of the scenarios in benchmarks/scenarios/, each sized for one run, in one run; prints
a table, writes results.json and chart.png.

    python -m benchmarks [--quick | --smoke] [--out benchmarks/results] [--only http,runtime,...]

The sections are the scenarios of the same name, through each one's `run` function:
    http       scenarios/http.py       toyseq vs the bare Flask floor under gunicorn, native and v2, wrk
    runtime    scenarios/runtime.py    the predict path (onnxruntime) vs torch eager, in process
    rollout    scenarios/rollout.py    one batched rollout call vs a loop over sequences, in process
    scaling    scenarios/scaling.py    sequences/s as the batch and the length grow, in process
    coldstart  scenarios/coldstart.py  gunicorn start to the first ready answer, toyseq and the floor
    scoring    scenarios/scoring.py    toyseq-score local and --url vs one request per row

Every other scenario (peers, workermodel, spread, pod, regression, ...) answers its own question with its own
command: benchmarks/README.md lists them all. Needs `wrk` (apt-get install -y wrk) and the training extra
(torch: the runtime comparison and untrained stand-ins for tasks whose model is not committed yet). Speed
claims are the ratios measured in this one run; absolute figures drift with the machine's load, which is
recorded next to them.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import orjson

from .harness.timing import FULL, QUICK, SMOKE

NEEDS = {"requests": "test", "matplotlib": "training", "torch": "training"}

SECTIONS = ("http", "runtime", "rollout", "scaling", "coldstart", "scoring")
TASKS = ("echo-lag", "arith-next", "echo")


def machine() -> dict:
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_start": os.getloadavg()[0],
    }


def missing_extras() -> list[str]:
    """The project extras whose packages are not installed (the benchmarks start servers with requests,
    draw with matplotlib and compare against torch)."""
    import importlib.util

    return sorted({extra for module, extra in NEEDS.items() if importlib.util.find_spec(module) is None})


def run(sizes, out: Path, only: tuple[str, ...] = SECTIONS, mode: str = "full") -> dict:
    from .harness import models, report
    from .scenarios import coldstart, http, rollout, runtime, scaling, scoring

    results: dict = {"mode": mode, "machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with tempfile.TemporaryDirectory(prefix="toyseq-bench-") as tmp:
        tmp = Path(tmp)
        models_dir = tmp / "models"
        results["models"] = models.prepare(list(TASKS), models_dir)
        steps = {
            "http": lambda: http.run(models_dir, sizes, tmp),
            "runtime": lambda: runtime.run(sizes),
            "rollout": lambda: rollout.run(models_dir, sizes),
            "scaling": lambda: scaling.run(models_dir, sizes),
            "coldstart": lambda: coldstart.run(models_dir, sizes, tmp),
            "scoring": lambda: scoring.run(models_dir, sizes, tmp),
        }
        for name in only:
            started = time.perf_counter()
            print(f"... {name}", file=sys.stderr, flush=True)
            results[name] = steps[name]()
            results[name]["bench_seconds"] = time.perf_counter() - started
    results["machine"]["load_average_end"] = os.getloadavg()[0]
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    report.chart(results, out / "chart.png")
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="shorter runs (~3 min)")
    size.add_argument("--smoke", action="store_true", help="tiny counts: proves the scripts run (the test suite)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    args = p.parse_args(argv)
    only = tuple(s for s in args.only.split(",") if s)
    unknown = set(only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    missing = missing_extras()
    if missing:
        print(
            f"python -m benchmarks needs the {' and '.join(missing)} extra: pip install -e '.[{','.join(missing)}]'",
            file=sys.stderr,
        )
        return 2
    from .harness import report

    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    results = run(SMOKE if args.smoke else QUICK if args.quick else FULL, args.out, only, mode)
    print(report.table(results))
    print(f"\nresults: {args.out / 'results.json'}  chart: {args.out / 'chart.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
