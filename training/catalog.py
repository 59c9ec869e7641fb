"""The task catalog: every toy task toyseq learns, declared as data.

A task is a generator (its docstring shows one worked example), an input contract, an encoder and a
decoder (specs for service/core/codec.py, copied into the manifest), a model and training recipe, and the
gates its exported model must meet on held-out data.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from service.core.codec import feature_width

from .config import ModelConfig, TrainConfig

# Generators take (rng, batch, length) and return (x [batch, length], y): y is [batch] for a value or
# next-value task, [batch, length - skip] for an echo task. Fixed-length tasks ignore `length`.


def echo(rng: np.random.Generator, batch: int, length: int):
    """Echo the current observation: [42, 7, 99] -> [42, 7, 99]."""
    x = rng.integers(0, 100, (batch, length))
    return x, x


def echo_lag(rng, batch, length):
    """Echo the previous observation: [42, 7, 99] -> [42, 7] (y_t = x_(t-1))."""
    x = rng.integers(0, 100, (batch, length))
    return x, x[:, :-1]


def second_element(rng, batch, length):
    """Return the second element: [3, 1, 4, 1, 0, 2, 2, 4, 0, 3] -> 1."""
    x = rng.integers(0, 5, (batch, 10))
    return x, x[:, 1]


def sum_first_two(rng, batch, length):
    """Add the first two numbers, ignore the third: [40, 2, 77] -> 42."""
    x = rng.integers(0, 101, (batch, 3))
    return x, (x[:, 0] + x[:, 1]).astype(np.float64)


def copy_first(rng, batch, length):
    """Remember the first value to the end: [17, 3, 65, 8] -> 17."""
    x = rng.integers(0, 100, (batch, length))
    return x, x[:, 0]


def last_value(rng, batch, length):
    """Return the last value: [17, 3, 65, 8] -> 8."""
    x = rng.integers(0, 100, (batch, length))
    return x, x[:, -1]


def alternating(rng, batch, length):
    """Continue an alternating 0/1 pattern: [0, 1, 0, 1, 0] -> 1."""
    first = rng.integers(0, 2, (batch, 1))
    x = (first + np.arange(length + 1)) % 2
    return x[:, :-1], x[:, -1]


def ramp(rng, batch, length):
    """Continue an evenly spaced real sequence: [0.0, 0.05, 0.1, 0.15, 0.2] -> 0.25."""
    start = rng.uniform(-1, 1, (batch, 1))
    step = rng.uniform(0.01, 0.2, (batch, 1)) * rng.choice([-1.0, 1.0], (batch, 1))
    x = start + step * np.arange(length + 1)
    return x[:, :-1], x[:, -1]


def arith_next(rng, batch, length, wrong: float = 0.0):
    """Next term of an integer arithmetic progression, even when one of the first six values is wrong:
    [100, 250, 300, 400, 500, 600, 700] -> 800 (250 should have been 200).

    `wrong` is the share of rows where one of the first six values is replaced by another integer
    from the progression's range.
    """
    start = rng.integers(-10_000, 10_001, (batch, 1))
    step = rng.integers(-1_000, 1_001, (batch, 1))
    x = start + step * np.arange(8)
    return corrupt(rng, x[:, :-1], wrong), x[:, -1]


def corrupt(rng, x: np.ndarray, share: float) -> np.ndarray:
    """Replace one of the first six values, in `share` of the rows, by a different integer between the
    window's smallest and largest value (rows whose values are all equal have no such integer)."""
    x = x.copy()
    low, high = x.min(axis=1), x.max(axis=1)
    rows = np.flatnonzero((rng.random(len(x)) < share) & (high > low))
    pos = rng.integers(0, 6, len(rows))
    # draw from the range minus the true value: shift draws at or above it up by one
    draw = rng.integers(low[rows], high[rows])  # in [low, high - 1]
    draw += draw >= x[rows, pos]
    x[rows, pos] = draw
    return x


@dataclass(frozen=True)
class Gate:
    metric: str  # a name in training/evaluation.py METRICS
    op: str  # ">=" or "<="
    threshold: float

    def passes(self, value: float) -> bool:
        return value >= self.threshold if self.op == ">=" else value <= self.threshold


@dataclass(frozen=True)
class Task:
    name: str
    generate: Callable
    input: dict  # the manifest's input contract
    kind: str  # "value", "echo" or "next" (next-value tasks support rollout)
    output_dtype: str
    encoder: dict
    decoder: dict
    gates: tuple[Gate, ...]
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def train_lengths(self) -> tuple[int, int]:
        """The lengths training draws from: the configured range, else the task's fixed length."""
        return self.train.lengths if self.train.lengths != (0, 0) else (self.input["min_length"],) * 2

    @property
    def work(self) -> float:
        """A rough training cost (LSTM multiply-adds over all steps), to schedule long tasks first."""
        lo, hi = self.train_lengths
        width = self.model.embed if self.encoder["type"] == "index" else feature_width(self.encoder)
        hidden = self.model.hidden
        per_cell = 4 * hidden * (hidden + width) + (self.model.layers - 1) * 8 * hidden * hidden
        return self.train.steps * self.train.batch * (lo + hi) / 2 * per_cell

    @property
    def description(self) -> str:
        return " ".join(self.generate.__doc__.split(":")[0].split())

    @property
    def example(self) -> dict:
        """The worked example in the generator's docstring ('...: [inputs] -> output'), as JSON values."""
        summary = " ".join(self.generate.__doc__.split("\n\n")[0].split())
        left, right = summary.split(":", 1)[1].split("->")
        right = right.strip()
        right = right[: right.index("]") + 1] if right.startswith("[") else right.split()[0].rstrip(".")
        return {"input": ast.literal_eval(left.strip()), "output": ast.literal_eval(right)}

    @property
    def rollout(self) -> bool:
        return self.kind == "next"


def ints(low, high, min_length, max_length, **extra):
    return {"dtype": "int", "low": low, "high": high, "min_length": min_length, "max_length": max_length, **extra}


def classes(low, count, **positions):
    return ({"type": "index", "low": low, "classes": count},
            {"type": "class", "low": low, "classes": count, **positions})


EXACT = (Gate("exact", ">=", 1.0),)

TASKS = {t.name: t for t in [
    Task("echo", echo, ints(0, 99, 1, 1000), "echo", "int", *classes(0, 100, positions="all"), EXACT,
         ModelConfig(embed=32, hidden=64), TrainConfig(lengths=(1, 64), steps=1500, batch=64)),
    Task("echo-lag", echo_lag, ints(0, 99, 2, 1000), "echo", "int", *classes(0, 100, positions="all", skip=1),
         EXACT, ModelConfig(embed=32, hidden=64), TrainConfig(lengths=(2, 64), steps=2500, batch=64)),
    Task("second-element", second_element, ints(0, 4, 10, 10), "value", "int", *classes(0, 5, positions="last"),
         EXACT, ModelConfig(embed=8, hidden=32), TrainConfig(steps=1500, batch=128)),
    Task("sum-first-two", sum_first_two, ints(0, 100, 3, 3), "value", "float",
         {"type": "index", "low": 0, "classes": 101}, {"type": "scaled", "scale": 100.0, "positions": "last"},
         (Gate("rounded_exact", ">=", 0.999), Gate("mae", "<=", 0.1)),
         ModelConfig(embed=16, hidden=96),
         TrainConfig(steps=12000, batch=256, loss="l1", eval_every=250, patience=30)),
    Task("copy-first", copy_first, ints(0, 99, 2, 20), "value", "int", *classes(0, 100, positions="last"),
         EXACT, ModelConfig(embed=32, hidden=128), TrainConfig(lengths=(2, 20), steps=2000, batch=128)),
    Task("last-value", last_value, ints(0, 99, 1, 20), "value", "int", *classes(0, 100, positions="last"),
         EXACT, ModelConfig(embed=32, hidden=64), TrainConfig(lengths=(1, 20), steps=1000, batch=128)),
    Task("alternating", alternating, ints(0, 1, 1, 50), "next", "int", *classes(0, 2, positions="last"),
         (*EXACT, Gate("rollout20_exact", ">=", 1.0)),
         ModelConfig(embed=4, hidden=16), TrainConfig(lengths=(1, 50), steps=400, batch=64)),
    Task("ramp", ramp, {"dtype": "float", "low": -1e6, "high": 1e6, "min_length": 3, "max_length": 50,
                        "evaluated_on": "start in [-1, 1], step +-[0.01, 0.2]"},
         "next", "float", {"type": "relative", "basis": "step"}, {"type": "relative", "positions": "last"},
         (Gate("mse", "<=", 1e-5), Gate("rollout10_max_abs_error", "<=", 0.01)),
         ModelConfig(hidden=32),
         TrainConfig(lengths=(3, 50), lengths_per_step=16, steps=10000, batch=256, loss="l1", eval_every=250,
                     patience=30)),
    Task("arith-next", arith_next, ints(-10**9, 10**9, 7, 7, evaluated_on="start in [-10000, 10000], "
                                        "step in [-1000, 1000]"),
         "next", "int", {"type": "relative", "basis": "value+step", "signed": True},
         {"type": "relative", "positions": "last", "round": True},
         (Gate("exact_clean", ">=", 1.0), Gate("exact_one_wrong", ">=", 0.99),
          Gate("rollout20_exact_clean", ">=", 1.0)),
         ModelConfig(hidden=64, layers=3),
         TrainConfig(steps=10000, batch=256, loss="l1_unit", wrong=0.75, eval_every=250, patience=20)),
]}
