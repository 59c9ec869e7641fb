"""The request cost model (service/core/cost.py): measure, fit, check.

    python -m benchmarks.scenarios.cost [--repeats 3] [--budget 1.0] [--json out.json]
    python -m benchmarks.scenarios.cost --inline [--repeats 5] [--json out.json]     # the fitted (inline) constants

1. Measures the CPU time (this thread's: the figures hold on a loaded machine, where wall time does not) of
   whole predict requests in the app (Flask test client: JSON in, checks, onnxruntime, JSON out) over a grid
   of shapes for every committed task: rows x length for plain predicts, rows x steps for rollouts. The best of
   `--repeats` runs counts (interference only ever adds time).
2. Fits the constants of service/core/cost.py by least squares, then raises them together so that no
   measured request is above its estimate (the safety factor printed).
3. For each task, builds the largest request the fitted model accepts under `--budget` seconds and times it
   (CPU and wall), so the limit can be checked against the timeout.
Prints the constants to put in service/core/cost.py, the tables, and the machine's load average.

--inline measures the realistic estimate instead (cost.FITTED, what the loop worker's inline decision uses):
small requests (1 to 1,000 sequences, rollouts of 1 to 20 steps) called straight through the WSGI app with a
ready environ (no test client, whose own work would count), fitted by least squares with no safety factor, and
prints measured/estimated per request so the fit's error at the inline budget can be read.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import orjson

from benchmarks.harness.paths import MODELS_DIR
from service import create_app
from service.core.cost import CostModel

GRID_PREDICT = ((1, None), (100, None), (1000, None), (10_000, None))  # rows; length: the task's longest
GRID_ECHO = ((10, 1000), (100, 1000), (1000, 100), (300, 300))  # rows x length, for the long-sequence tasks
GRID_ROLLOUT = ((1, 200), (100, 50), (1000, 20), (10, 500))  # rows x steps at the longest length


def sequences(manifest: dict, rows: int, length: int, rng: np.random.Generator) -> list:
    spec = manifest["input"]
    if manifest["task"] == "arith-next":
        start, step = rng.integers(-10_000, 10_000, rows), rng.integers(-1_000, 1_000, rows)
        return (start[:, None] + step[:, None] * np.arange(length)).tolist()
    if spec["dtype"] == "float":
        start, step = rng.uniform(-1, 1, rows), rng.uniform(0.01, 0.2, rows)
        return (start[:, None] + step[:, None] * np.arange(length)).tolist()
    return rng.integers(int(spec["low"]), int(spec["high"]) + 1, (rows, length)).tolist()


def shapes(manifest: dict) -> list[tuple[int, int, int | None]]:
    """(rows, length, steps) to measure for a task."""
    longest = manifest["input"]["max_length"]
    if manifest["output"]["rollout"]:
        return [(rows, longest, steps) for rows, steps in GRID_ROLLOUT]
    if longest >= 100:
        return [(rows, length, None) for rows, length in GRID_ECHO]
    return [(rows, longest, None) for rows, _ in GRID_PREDICT]


def timed(client, task: str, body: bytes, repeats: int) -> tuple[float, float, int]:
    """(best CPU seconds, best wall seconds, status) of `repeats` requests."""
    cpu = wall = float("inf")
    status = 0
    for _ in range(repeats):
        c0, w0 = time.thread_time(), time.perf_counter()
        answer = client.post(f"/tasks/{task}/predict", data=body, content_type="application/json")
        cpu, wall = min(cpu, time.thread_time() - c0), min(wall, time.perf_counter() - w0)
        status = answer.status_code
    return cpu, wall, status


def body_of(manifest, rows, length, steps, rng) -> bytes:
    body = {"inputs": sequences(manifest, rows, length, rng)}
    if steps:
        body["steps"] = steps
    return orjson.dumps(body)


NAMES = ("NS_PER_CELL", "NS_PER_CELL_WEIGHT", "NS_PER_ROW_STEP", "NS_PER_STEP", "NS_PER_STEP_WEIGHT", "NS_PER_REQUEST")
FLOORS = (50.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # a cell is never free


def fit(grid: list[dict]) -> tuple[list[float], float, np.ndarray]:
    """The constants of service/core/cost.py from measured requests: least squares in relative error (each
    request weighs the same, small or large), then all raised by one factor so that no measured request is
    above its estimate. Returns (constants, safety factor, measured/estimated before it)."""

    def features(r):
        steps = r["steps"] or 1
        cells = r["rows"] * r["length"] * steps
        return [cells, cells * r["weights"], r["rows"] * steps, steps, steps * r["weights"], 1]

    X = np.array([features(r) for r in grid], float)
    y = np.array([r["cpu"] for r in grid]) * 1e9
    coef, *_ = np.linalg.lstsq(X / y[:, None], np.ones(len(y)), rcond=None)
    coef = np.clip(coef, FLOORS, None)
    ratio = y / (X @ coef)
    safety = float(max(1.0, ratio.max()))
    return [float(c) * safety for c in coef], safety, ratio


INLINE_ROWS = (1, 10, 100, 300, 1000)
INLINE_STEPS = ((1, 1), (10, 1), (100, 1), (1, 20), (10, 5), (100, 5))  # rollouts: rows x steps


def inline_shapes(manifest: dict) -> list[tuple[int, int, int | None]]:
    """(rows, length, steps) of the small requests the inline decision is about."""
    longest = manifest["input"]["max_length"]
    if manifest["output"]["rollout"]:
        return [(rows, longest, steps) for rows, steps in INLINE_STEPS]
    lengths = (10, 100) if longest >= 100 else (longest,)
    return [(rows, length, None) for length in lengths for rows in INLINE_ROWS if rows * length <= 30_000]


def wsgi_timer(app, task: str):
    """A function timing one request through the WSGI app as the loop worker calls it: (CPU s, wall s, status)."""
    from io import BytesIO

    from werkzeug.test import EnvironBuilder

    def timed_call(body: bytes) -> tuple[float, float, int]:
        base = EnvironBuilder(
            path=f"/tasks/{task}/predict", method="POST", data=body, content_type="application/json"
        ).get_environ()
        status: list = []
        environ = dict(base, **{"wsgi.input": BytesIO(body)})
        c0, w0 = time.thread_time(), time.perf_counter()
        b"".join(app(environ, lambda s, h, e=None: status.append(s)))
        return time.thread_time() - c0, time.perf_counter() - w0, int(status[0].split()[0])

    return timed_call


def fit_plain(grid: list[dict]) -> tuple[list[float], np.ndarray]:
    """Least squares in relative error, no safety factor: (constants, measured/estimated per request)."""
    constants, safety, ratio = fit(grid)
    constants = [c / safety for c in constants]
    return constants, ratio


def inline(args, app, predictors) -> int:
    load_start = os.getloadavg()
    rng = np.random.default_rng(0)
    grid = []
    print(f"{'task':15} {'weights':>8} {'rows':>6} {'length':>6} {'steps':>5} {'cpu ms':>8} {'wall ms':>8}", flush=True)
    for task, predictor in sorted(predictors.items()):
        call = wsgi_timer(app, task)
        for rows, length, steps in inline_shapes(predictor.manifest):
            body = body_of(predictor.manifest, rows, length, steps, rng)
            call(body)  # warm
            runs = [call(body) for _ in range(args.repeats)]
            assert all(r[2] == 200 for r in runs), (task, rows, length, steps, runs[0])
            cpu, wall = min(r[0] for r in runs), min(r[1] for r in runs)
            grid.append(
                {"task": task, "weights": predictor.cost.weights, "rows": rows, "length": length, "steps": steps}
                | {"cells": rows * length * (steps or 1), "cpu": cpu, "wall": wall}
            )
            print(
                f"{task:15} {predictor.cost.weights:8d} {rows:6d} {length:6d} {steps or '-':>5} {cpu * 1e3:8.3f} "
                f"{wall * 1e3:8.3f}",
                flush=True,
            )
    constants, ratio = fit_plain(grid)
    print(
        f"\nmeasured/estimated {ratio.min():.2f}..{ratio.max():.2f} (median {np.median(ratio):.2f}), no safety factor"
    )
    print("service/core/cost.py FITTED:\n" + "\n".join(f"FIT_{n} = {v:.4g}" for n, v in zip(NAMES, constants)))
    load_end = os.getloadavg()
    print(f"load average {load_start[0]:.2f} -> {load_end[0]:.2f}; {os.cpu_count()} cores; best of {args.repeats}")
    if args.json:
        with open(args.json, "wb") as f:
            f.write(orjson.dumps({"grid": grid, "constants": constants, "load": [load_start, load_end]}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inline", action="store_true", help="fit the realistic (inline) estimate instead")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=1.0, help="TOYSEQ_MAX_REQUEST_SECONDS to check")
    parser.add_argument("--models-dir", default=str(MODELS_DIR))
    parser.add_argument("--json", help="write the measurements here")
    args = parser.parse_args(argv)

    load_start = os.getloadavg()
    # No limits while measuring: the grid goes past the budget on purpose.
    app = create_app(
        {
            "models_dir": args.models_dir,
            "log_level": "warning",
            "max_request_seconds": 1e9,
            "max_rollout_values": 10**9,
            "max_body_bytes": 2**30,
        }
    )
    client = app.test_client()
    predictors = app.extensions["toyseq"].registry.predictors
    if args.inline:
        return inline(args, app, predictors)
    rng = np.random.default_rng(0)
    rows_out = []
    print(
        f"{'task':15} {'weights':>8} {'rows':>6} {'length':>6} {'steps':>5} {'cells':>10} {'cpu s':>7} {'wall s':>7} "
        f"{'ns/cell':>8}",
        flush=True,
    )
    for task, predictor in sorted(predictors.items()):
        for rows, length, steps in shapes(predictor.manifest):
            cpu, wall, status = timed(client, task, body_of(predictor.manifest, rows, length, steps, rng), args.repeats)
            assert status == 200, (task, rows, length, steps, status)
            cells = rows * length * (steps or 1)
            rows_out.append(
                {
                    "task": task,
                    "weights": predictor.cost.weights,
                    "rows": rows,
                    "length": length,
                    "steps": steps,
                    "cells": cells,
                    "cpu": cpu,
                    "wall": wall,
                }
            )
            print(
                f"{task:15} {predictor.cost.weights:8d} {rows:6d} {length:6d} {steps or '-':>5} {cells:10d} "
                f"{cpu:7.3f} {wall:7.3f} {cpu / cells * 1e9:8.0f}",
                flush=True,
            )

    constants, safety, ratio = fit(rows_out)
    print(
        f"\nmeasured/estimated before the safety factor {ratio.min():.2f}..{ratio.max():.2f}; safety factor "
        f"{safety:.2f} (every measured request at or under its estimate)"
    )
    print("service/core/cost.py:\n" + "\n".join(f"{name} = {value:.4g}" for name, value in zip(NAMES, constants)))

    # The largest request the budget accepts, per task, with the fitted constants.
    print(f"largest accepted request at --budget {args.budget:g} s (estimated CPU), measured:")
    print(f"{'task':15} {'rows':>6} {'length':>6} {'steps':>5} {'estimate s':>10} {'cpu s':>7} {'wall s':>7}")
    largest = []
    for task, predictor in sorted(predictors.items()):
        model = CostModel(predictor.cost.weights, *constants)
        m = predictor.manifest
        length = m["input"]["max_length"]
        steps = 1000 if m["output"]["rollout"] else None
        rows = model.largest(args.budget, length, steps)
        while rows < 1 and steps and steps > 1:  # one sequence of 1000 steps is over: fewer steps
            steps //= 2
            rows = model.largest(args.budget, length, steps)
        rows = min(rows, 10_000)
        estimate = float(model.seconds(rows, rows * length, steps))
        cpu, wall, status = timed(client, task, body_of(m, rows, length, steps, rng), args.repeats)
        largest.append(
            {
                "task": task,
                "rows": rows,
                "length": length,
                "steps": steps,
                "estimate": estimate,
                "cpu": cpu,
                "wall": wall,
                "status": status,
            }
        )
        print(f"{task:15} {rows:6d} {length:6d} {steps or '-':>5} {estimate:10.3f} {cpu:7.3f} {wall:7.3f}", flush=True)
    load_end = os.getloadavg()
    print(
        f"\nload average at start {load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f}, at end "
        f"{load_end[0]:.2f} / {load_end[1]:.2f} / {load_end[2]:.2f}; {os.cpu_count()} cores; "
        f"repeats {args.repeats} (best counts)"
    )
    if args.json:
        with open(args.json, "wb") as f:
            f.write(
                orjson.dumps(
                    {
                        "grid": rows_out,
                        "constants": constants,
                        "safety": safety,
                        "largest": largest,
                        "load": [load_start, load_end],
                    },
                    option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY,
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
