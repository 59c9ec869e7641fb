"""Held-out evaluation of an exported model, through onnxruntime and the service's own predict path.

Every metric draws fresh sequences from the evaluation stream, which training never draws from, and
asks `service.core.predictor.Predictor` for the answers, exactly as the service would.
"""
from __future__ import annotations

import numpy as np

from service.core.predictor import Predictor

from .catalog import Gate, Task

EVAL_STREAM = 2
DEFAULT_EVAL_SEED = 2026
DEFAULT_N = 10_000


def spread_lengths(task: Task, n: int) -> np.ndarray:
    """n lengths spread evenly over the task's whole input length range."""
    return np.linspace(task.input["min_length"], task.input["max_length"], n).round().astype(int)


def heldout(task: Task, rng, n: int, extra: int = 0, **kw) -> tuple[list[np.ndarray], list]:
    """n sequences over the whole length range, each generated `extra` values longer; with targets."""
    xs, ys = [], []
    lengths, counts = np.unique(spread_lengths(task, n), return_counts=True)
    for length, count in zip(lengths, counts):
        x, y = task.generate(rng, int(count), int(length) + extra, **kw)
        xs.extend(x)
        ys.extend(y)
    return xs, ys


def future(task: Task, rng, n: int, steps: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Windows and the `steps` true values that follow each."""
    if task.input["min_length"] == task.input["max_length"]:  # fixed window: a clean progression
        xs, _ = heldout(task, rng, n)
        x = np.stack(xs)
        step = x[:, 1] - x[:, 0]
        return xs, x[:, -1:] + step[:, None] * np.arange(1, steps + 1)
    xs, ys = heldout(task, rng, n, extra=steps)
    windows = [x[: len(x) - steps] for x in xs]
    return windows, np.stack([np.append(x[len(x) - steps:], y)[:steps] for x, y in zip(xs, ys)])


def _answers(predictor: Predictor, xs: list, steps: int | None = None) -> list:
    return predictor.predict(xs, steps=steps)["outputs"]


def exact(task, predictor, rng, n):
    xs, ys = heldout(task, rng, n)
    return float(np.mean([np.array_equal(a, y) for a, y in zip(_answers(predictor, xs), ys)]))


def _errors(task, predictor, rng, n):
    xs, ys = heldout(task, rng, n)
    return np.asarray(_answers(predictor, xs), dtype=np.float64) - np.asarray(ys, dtype=np.float64)


def mse(task, predictor, rng, n):
    return float(np.mean(_errors(task, predictor, rng, n) ** 2))


def mae(task, predictor, rng, n):
    return float(np.mean(np.abs(_errors(task, predictor, rng, n))))


def rounded_exact(task, predictor, rng, n):
    return float(np.mean(np.rint(_errors(task, predictor, rng, n)) == 0))


def rollout_exact(steps):
    def metric(task, predictor, rng, n):
        xs, truth = future(task, rng, n, steps)
        return float(np.mean((np.asarray(_answers(predictor, xs, steps)) == truth).all(axis=1)))
    return metric


def rollout_max_abs_error(steps):
    def metric(task, predictor, rng, n):
        xs, truth = future(task, rng, n, steps)
        return float(np.abs(np.asarray(_answers(predictor, xs, steps)) - truth).max())
    return metric


def exact_clean(task, predictor, rng, n):
    xs, ys = heldout(task, rng, n, wrong=0.0)
    return float(np.mean(np.asarray(_answers(predictor, xs)) == np.asarray(ys)))


def exact_one_wrong(task, predictor, rng, n):
    """Every window has one wrong value among its first six (constant windows cannot, and are skipped)."""
    xs, ys = heldout(task, rng, n, wrong=1.0)
    keep = [i for i, x in enumerate(xs) if x.max() > x.min()]
    answers = np.asarray(_answers(predictor, [xs[i] for i in keep]))
    return float(np.mean(answers == np.asarray(ys)[keep]))


METRICS = {
    "exact": exact,
    "mse": mse,
    "mae": mae,
    "rounded_exact": rounded_exact,
    "rollout20_exact": rollout_exact(20),
    "rollout10_max_abs_error": rollout_max_abs_error(10),
    "exact_clean": exact_clean,
    "exact_one_wrong": exact_one_wrong,
    "rollout20_exact_clean": rollout_exact(20),
}


def evaluate(task: Task, predictor: Predictor, eval_seed: int = DEFAULT_EVAL_SEED, n: int = DEFAULT_N,
             gates: tuple[Gate, ...] | None = None) -> list[dict]:
    """Measure every gate of `task`; each gate draws from its own evaluation stream."""
    results = []
    for i, gate in enumerate(gates or task.gates):
        rng = np.random.default_rng([EVAL_STREAM, eval_seed, i])
        value = METRICS[gate.metric](task, predictor, rng, n)
        results.append({"metric": gate.metric, "op": gate.op, "threshold": gate.threshold, "value": value,
                        "n": n, "eval_seed": eval_seed, "passed": gate.passes(value)})
    return results
