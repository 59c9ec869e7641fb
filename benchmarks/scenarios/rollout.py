"""Rollout: 100 next values for 1 and for 1,000 arith-next sequences in one predict call (100 onnxruntime
calls for the whole batch) vs. looping over the sequences one by one (100 calls per sequence).

    python -m benchmarks.scenarios.rollout
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.harness.timing import QUICK, Sizes, seconds_per_call
from service.core.predictor import Predictor

TASK, STEPS = "arith-next", 100


def sequences(count: int, rng: np.random.Generator) -> list[np.ndarray]:
    starts = rng.integers(-10_000, 10_000, count)
    steps = rng.integers(-1_000, 1_000, count)
    return list(starts[:, None] + steps[:, None] * np.arange(7))


def one_by_one(predictor: Predictor, arrays: list, budget: float) -> float:
    """Seconds per sequence when each is rolled out alone (bounded by `budget`: extrapolated)."""
    started, done = time.perf_counter(), 0
    for arr in arrays:
        predictor.predict([arr], steps=STEPS)
        done += 1
        if time.perf_counter() - started > budget:
            break
    return (time.perf_counter() - started) / done


def run(models_dir: Path, sizes: Sizes) -> dict:
    predictor = Predictor.load(models_dir / TASK)
    rng = np.random.default_rng(0)
    rows = []
    for count in sizes.rollout_counts:
        arrays = sequences(count, rng)
        batched = seconds_per_call(lambda arrays=arrays: predictor.predict(arrays, steps=STEPS), sizes.timed_seconds, 1)
        looped = one_by_one(predictor, arrays, sizes.rollout_loop_seconds) * count
        rows.append(
            {
                "sequences": count,
                "steps": STEPS,
                "batched_ms": batched * 1e3,
                "one_by_one_ms": looped * 1e3,
                "speedup": looped / batched,
                "values_per_s": count * STEPS / batched,
            }
        )
    return {"task": TASK, "rows": rows}


def main() -> int:
    for row in run(Path("models"), QUICK)["rows"]:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
