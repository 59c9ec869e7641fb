"""Scaling: echo sequences/s through the service's in-process path (Codec.check + Predictor.predict) as the
batch grows at length 10, and as the length grows at a fixed batch.

    python -m benchmarks.scenarios.scaling
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from benchmarks.harness.timing import QUICK, Sizes, seconds_per_call
from service.core.predictor import Predictor

TASK, LENGTH = "echo", 10


def rate(predictor: Predictor, batch: int, length: int, budget: float, rng: np.random.Generator) -> dict:
    raw = rng.integers(0, 100, (batch, length)).tolist()  # JSON-decoded form, as a request holds it
    seconds = seconds_per_call(lambda: predictor.predict(predictor.codec.check(raw)), budget, 2)
    return {
        "batch": batch,
        "length": length,
        "ms": seconds * 1e3,
        "sequences_per_s": batch / seconds,
        "values_per_s": batch * length / seconds,
    }


def run(models_dir: Path, sizes: Sizes) -> dict:
    predictor = Predictor.load(models_dir / TASK)
    rng = np.random.default_rng(0)
    by_batch = [rate(predictor, b, LENGTH, sizes.timed_seconds, rng) for b in sizes.scaling_batches]
    by_length = [
        rate(predictor, sizes.scaling_length_batch, n, sizes.timed_seconds, rng) for n in sizes.scaling_lengths
    ]
    return {"task": TASK, "by_batch": by_batch, "by_length": by_length}


def main() -> int:
    result = run(Path("models"), QUICK)
    for row in result["by_batch"] + result["by_length"]:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
