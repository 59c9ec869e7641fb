"""Runtime alone: the service's predict path (encode, onnxruntime, decode) vs torch eager inference of the
same weights, in one process. A fresh echo-lag SeqModel is exported with training.export, so both sides
hold identical weights; torch gets as many threads as onnxruntime (TOYSEQ_THREADS, 1 by default).

    python -m benchmarks.scenarios.runtime
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import models
from benchmarks.harness.timing import QUICK, Sizes, seconds_per_call
from service.core.predictor import Predictor, SessionConfig

TASK, LENGTH = "echo-lag", 10
GOALS = {1: 3.0, 4096: 1.5}


def torch_path(model, predictor: Predictor):
    """The same request path with torch eager in place of onnxruntime: same codec encode and decode."""
    codec = predictor.codec

    def predict(batch):
        feed, ctx = codec.encode(batch)
        with torch.inference_mode():
            out = model(torch.from_numpy(feed)).numpy()
        return codec.decode(out, batch, ctx)

    return predict


def check_same_weights(model, predictor: Predictor, batch) -> None:
    feed, _ = predictor.codec.encode(batch)
    with torch.inference_mode():
        expected = model(torch.from_numpy(feed)).numpy()
    actual, _ = predictor.run(batch)
    if not np.allclose(actual, expected, atol=1e-4):
        raise AssertionError("onnxruntime and torch disagree: not the same weights")


def run(sizes: Sizes, threads: int = 1) -> dict:
    from service.core.codec import Batch

    torch.set_num_threads(threads)
    model = models.untrained(TASK, seed=1)
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="toyseq-runtime-") as tmp:
        folder = models.export_folder(model, TASK, Path(tmp) / TASK)
        predictor = Predictor.load(folder, SessionConfig(intra_op_threads=threads))
        eager = torch_path(model, predictor)
        for batch_size in sizes.runtime_batches:
            arrays = list(rng.integers(0, 100, (batch_size, LENGTH)))
            check_same_weights(model, predictor, Batch.of(arrays))
            ort_s = seconds_per_call(lambda arrays=arrays: predictor.predict(arrays), sizes.timed_seconds)
            torch_s = seconds_per_call(lambda arrays=arrays: eager(Batch.of(arrays)), sizes.timed_seconds)
            goal = GOALS.get(batch_size)
            rows.append(
                {
                    "batch": batch_size,
                    "length": LENGTH,
                    "onnxruntime_ms": ort_s * 1e3,
                    "torch_eager_ms": torch_s * 1e3,
                    "speedup": torch_s / ort_s,
                    "goal": goal,
                    "met": None if goal is None else torch_s / ort_s >= goal,
                }
            )
    return {"task": TASK, "threads": threads, "rows": rows}


def main() -> int:
    for row in run(QUICK)["rows"]:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
