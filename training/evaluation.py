"""Evaluation of an exported model on its task's whole suite, through the service's own predict path.

Each category of a task's suite (training/catalog.py) names a case builder below, a metric and a gate.
Random cases come from the evaluation stream, which training never draws from; exhaustive cases (every
input of a small domain) ignore the stream. Every answer comes from `service.core.predictor.Predictor`,
exactly as the service would give it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from itertools import product

import numpy as np

from service.core.codec import InputContract
from service.core.domain import Domain
from service.core.predictor import Predictor

from .catalog import ARITH_BOUND, ARITH_WINDOW, Category, Task

EVAL_STREAM = 2
DEFAULT_EVAL_SEED = 2026
DEFAULT_N = 10_000


class OutsideDomain(ValueError):
    """A case builder made an input outside the task's domain: the suite would measure answers with no meaning."""


@dataclass
class Cases:
    inputs: list  # numpy rows, as Codec.check returns them
    truth: list | np.ndarray  # one right answer per row; [rows, steps] for a rollout
    scale: np.ndarray | None = None  # per row: the unit an error is measured in
    group: np.ndarray | None = None  # per row: a label whose worst group is reported (exact_worst_position)


def spread_lengths(task: Task, n: int) -> np.ndarray:
    """n lengths spread evenly over the task's whole input length range."""
    return np.linspace(task.input["min_length"], task.input["max_length"], n).round().astype(int)


def heldout(task: Task, rng, n: int, extra: int = 0, lengths=None, **kw) -> tuple[list[np.ndarray], list]:
    """n sequences over the whole length range (or `lengths`), each generated `extra` values longer."""
    xs, ys = [], []
    lengths, counts = np.unique(spread_lengths(task, n) if lengths is None else lengths, return_counts=True)
    for length, count in zip(lengths, counts):
        x, y = task.generate(rng, int(count), int(length) + extra, **kw)
        xs.extend(x)
        ys.extend(y)
    return xs, ys


def future(task: Task, rng, n: int, steps: int, **kw) -> tuple[list[np.ndarray], np.ndarray]:
    """Windows and the `steps` true values that follow each."""
    if task.name == "arith-next":  # a fixed window of a clean progression: continue it exactly
        xs, ys = heldout(task, rng, n, **kw)
        x = np.stack(xs)
        step = np.asarray(ys) - x[:, -1]
        return xs, x[:, -1:] + step[:, None] * np.arange(1, steps + 1)
    xs, ys = heldout(task, rng, n, extra=steps, **kw)
    windows = [x[: len(x) - steps] for x in xs]
    return windows, np.stack([np.append(x[len(x) - steps :], y)[:steps] for x, y in zip(xs, ys)])


def _truths(task: Task, xs: list) -> list:
    return [task.truth(x) for x in xs]


# --- case builders: (task, rng, n, steps, **params) -> Cases -------------------------------------


def heldout_cases(task, rng, n, steps, **params) -> Cases:
    """The task's own generator over its whole length range (params go to the generator)."""
    if steps:
        xs, truth = future(task, rng, n, steps, **params)
        return Cases(xs, truth, scale=_ramp_steps(xs) if task.name == "ramp" else None)
    xs, ys = heldout(task, rng, n, **params)
    if params.get("wrong"):  # only rows that really have a wrong value, labelled by its position
        x = np.stack(xs)
        step = np.asarray(ys) - x[:, -1]
        clean = x[:, -1:] - step[:, None] * np.arange(ARITH_WINDOW - 1, -1, -1)
        off = x != clean
        keep = np.flatnonzero(off.any(axis=1))
        return Cases([xs[i] for i in keep], np.asarray(ys)[keep], group=off[keep].argmax(axis=1))
    return Cases(xs, ys, scale=_ramp_steps(xs) if task.name == "ramp" else None)


def lengths_cases(task, rng, n, steps):
    """Random values at the shortest and the longest length the contract accepts."""
    lo, hi = task.input["min_length"], task.input["max_length"]
    xs, _ = heldout(task, rng, n, lengths=np.repeat([lo, hi], [n - n // 2, n // 2]))
    return Cases(xs, _truths(task, xs))


def constants_cases(task, rng, n, steps):
    """Every allowed value repeated, at the shortest, a middle and the longest length; and the lowest and
    highest values alternating."""
    low, high = task.input["low"], task.input["high"]
    lengths = sorted(
        {task.input["min_length"], (task.input["min_length"] + task.input["max_length"]) // 2, task.input["max_length"]}
    )
    xs = [np.full(length, v, dtype=np.int64) for v in range(low, high + 1) for length in lengths]
    xs += [
        np.where(np.arange(length) % 2 == first, high, low).astype(np.int64) for first in (0, 1) for length in lengths
    ]
    return Cases(xs, _truths(task, xs))


def first_two_cases(task, rng, n, steps):
    """Every pair of first two values, with the other values all one same allowed value."""
    low, high, length = task.input["low"], task.input["high"], task.input["max_length"]
    values = range(low, high + 1)
    xs = [np.array([a, b] + [c] * (length - 2), dtype=np.int64) for a, b, c in product(values, values, values)]
    return Cases(xs, _truths(task, xs))


def every_input_cases(task, rng, n, steps):
    """Every input of a fixed-length task: the whole domain (101**3 for sum-first-two)."""
    low, high, length = task.input["low"], task.input["high"], task.input["max_length"]
    axes = [np.arange(low, high + 1)] * length
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, length)
    return Cases(list(grid), _truths(task, grid))


def first_then_repeated_cases(task, rng, n, steps):
    """Every (first value, repeated value) pair at every length: [a, b, b, ..., b]."""
    low, high = task.input["low"], task.input["high"]
    values = np.arange(low, high + 1)
    a, b = (g.ravel() for g in np.meshgrid(values, values, indexing="ij"))
    xs = []
    for length in range(task.input["min_length"], task.input["max_length"] + 1):
        grid = np.repeat(b[:, None], length, axis=1)
        grid[:, 0] = a
        xs.extend(grid)
    return Cases(xs, _truths(task, xs))


def every_alternation_cases(task, rng, n, steps):
    """Both alternations (starting 0 or 1) at every length; with `steps`, the values that follow."""
    xs, truth = [], []
    for length in range(task.input["min_length"], task.input["max_length"] + 1):
        for first in (0, 1):
            seq = (first + np.arange(length + (steps or 1))) % 2
            xs.append(seq[:length].astype(np.int64))
            truth.append(seq[length:] if steps else seq[length])
    return Cases(xs, np.asarray(truth))


def arith_edges_cases(task, rng, n, steps):
    """Clean progressions at the contract's edges: steps 0, +-1, +-1e8 and the largest a window admits,
    placed at the lower bound, at 0 and at the upper bound."""
    largest = 2 * ARITH_BOUND // (ARITH_WINDOW - 1)
    xs, ys = [], []
    for size in (0, 1, 2, 1000, 10**6, 10**8, largest):
        for step in {size, -size}:
            span = abs(step) * (ARITH_WINDOW - 1)
            for start in (
                -ARITH_BOUND + (span if step < 0 else 0),
                -(step * (ARITH_WINDOW - 1)) // 2,  # centred on 0, whichever way it runs
                ARITH_BOUND - (span if step > 0 else 0),
            ):
                seq = start + step * np.arange(ARITH_WINDOW + 1, dtype=np.int64)
                xs.append(seq[:-1])
                ys.append(seq[-1])
    return Cases(xs, np.asarray(ys))


RAMP_BOUND = 1e6


def ramps(rng, n: int, length: int, extra: int) -> np.ndarray:
    """[n, length + extra] evenly spaced windows within the ramp contract at every scale: half with
    values up to +-1e6 and |step| log-uniform in [0.01, 1e4]; half with values near 0 and |step| in
    [1e-6, 0.01]. The window's own values stay inside the contract; what follows may leave it."""
    big = rng.random(n) < 0.5
    step = np.where(big, 10 ** rng.uniform(-2, 4, n), 10 ** rng.uniform(-6, -2, n)) * rng.choice([-1, 1], n)
    bound = np.where(big, RAMP_BOUND, 1.0)
    span = np.abs(step) * (length - 1)
    lowest = -bound + np.where(step < 0, span, 0.0)  # the window's first value may lie in [lowest, lowest + room]
    start = lowest + rng.random(n) * (2 * bound - span)
    return start[:, None] + step[:, None] * np.arange(length + extra)


def _ramp_steps(xs: list) -> np.ndarray:
    return np.array([abs(x[-1] - x[-2]) for x in xs])


def ramps_cases(task, rng, n, steps):
    """Evenly spaced windows over the contract's whole length range and scales (see ramps)."""
    xs, truth, units = [], [], []
    lengths, counts = np.unique(spread_lengths(task, n), return_counts=True)
    for length, count in zip(lengths, counts):
        seq = ramps(rng, int(count), int(length), steps or 1)
        xs.extend(seq[:, :length])
        truth.extend(seq[:, length:] if steps else seq[:, length])
        units.extend(np.abs(seq[:, 1] - seq[:, 0]))
    return Cases(xs, np.asarray(truth), scale=np.asarray(units))


def float_constants_cases(task, rng, n, steps):
    """Constant windows at every length, with values at the contract's bounds, 0, +-1 and anywhere."""
    lengths = spread_lengths(task, n)
    values = np.concatenate(
        [
            [task.input["low"], task.input["high"], 0.0, 1.0, -1.0, 1e-9],
            rng.uniform(task.input["low"], task.input["high"], n - 6),
        ]
    )
    xs = [np.full(int(length), v) for length, v in zip(lengths, values)]
    truth = np.repeat(values[:, None], steps, axis=1) if steps else values
    return Cases(xs, truth, scale=np.maximum(1.0, np.abs(values)))


CASES = {
    "heldout": heldout_cases,
    "lengths": lengths_cases,
    "constants": constants_cases,
    "first_two": first_two_cases,
    "every_input": every_input_cases,
    "first_then_repeated": first_then_repeated_cases,
    "every_alternation": every_alternation_cases,
    "arith_edges": arith_edges_cases,
    "ramps": ramps_cases,
    "float_constants": float_constants_cases,
}


# --- metrics: (answers, cases) -> float ----------------------------------------------------------


def _row_exact(answers: list, cases: Cases) -> np.ndarray:
    return np.array([np.array_equal(a, t) for a, t in zip(answers, cases.truth)])


def exact(answers, cases):
    return float(np.mean(_row_exact(answers, cases)))


def exact_worst_position(answers, cases):
    """The exact share at the position where it is lowest (every position must be right)."""
    right = _row_exact(answers, cases)
    return float(min(right[cases.group == g].mean() for g in np.unique(cases.group)))


def _max_error(answers, cases):
    err = np.abs(np.asarray(answers, dtype=np.float64) - np.asarray(cases.truth, dtype=np.float64))
    if err.ndim == 2:
        err = err.max(axis=1)
    return float((err / cases.scale).max())


METRICS = {
    "exact": exact,
    "exact_worst_position": exact_worst_position,
    "max_step_error": _max_error,  # the largest error, in units of each row's |step|
    "max_value_error": _max_error,  # the largest error, in units of max(1, |value|)
}


def measure(task: Task, predictor: Predictor, category: Category, rng, n: int) -> tuple[float, int]:
    cases = CASES[category.cases](task, rng, n, category.steps, **category.params)
    # Every case is one the contract accepts (InputError otherwise): what is measured is what is served.
    InputContract.from_manifest(task.input).check([np.asarray(x).tolist() for x in cases.inputs], task.name)
    # ... and of the task's kind, by the definition the service answers in_domain with (service/core/domain.py)
    outside = [i for i, ok in enumerate(Domain(task.domain).check(cases.inputs)) if not ok]
    if outside:
        raise OutsideDomain(
            f"{task.name} {category.name}: {len(outside)} of {len(cases.inputs)} cases are outside the domain "
            f"({Domain(task.domain).description()}), e.g. {np.asarray(cases.inputs[outside[0]]).tolist()}"
        )
    answers = predictor.predict(cases.inputs, steps=category.steps)["outputs"]
    return METRICS[category.metric](answers, cases), len(cases.inputs)


def evaluate(
    task: Task,
    predictor: Predictor,
    eval_seed: int = DEFAULT_EVAL_SEED,
    n: int = DEFAULT_N,
    suite: tuple[Category, ...] | None = None,
    progress: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Measure every category of `task`'s suite; each draws from its own evaluation stream, named by the
    category, so that measuring part of a suite draws the same cases. `progress` is called with each
    category's result as soon as it is measured."""
    results = []
    for category in suite or task.suite:
        rng = np.random.default_rng([EVAL_STREAM, eval_seed, zlib.crc32(category.name.encode())])
        value, count = measure(task, predictor, category, rng, n)
        results.append(
            {
                "category": category.name,
                "metric": category.metric,
                "op": category.op,
                "threshold": category.threshold,
                "value": value,
                "n": count,
                "eval_seed": eval_seed,
                "steps": category.steps,
                "passed": category.passes(value),
            }
        )
        if progress is not None:
            progress(results[-1])
    return results
