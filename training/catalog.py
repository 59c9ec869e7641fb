"""The task catalog: every toy task toyseq learns, declared as data.

A task is declared with keyword arguments: a one-line description and one worked example (its generator's
docstring shows the same example), a generator, an input contract, an encoder and a decoder (specs for
service/core/codec.py, copied into the manifest), a model and training recipe, and the evaluation suite
(named categories covering the whole input contract) its exported model must pass on held-out data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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


def sum_first_two(rng, batch, length, balanced: float = 0.0):
    """Add the first two numbers, ignore the third: [40, 2, 77] -> 42.

    `balanced` is the share of rows whose sum is drawn uniformly from 0..200 (then the first addend
    uniformly among those that make it): uniform addends make sums near 0 and 200 rare (only 0 + 0 makes
    0), and a classifier learns a rare class last.
    """
    x = rng.integers(0, 101, (batch, 3))
    rows = np.flatnonzero(rng.random(batch) < balanced)
    total = rng.integers(0, 201, len(rows))
    low, high = np.maximum(0, total - 100), np.minimum(100, total)
    x[rows, 0] = low + np.floor(rng.random(len(rows)) * (high - low + 1)).astype(np.int64)
    x[rows, 1] = total - x[rows, 0]
    return x, x[:, 0] + x[:, 1]


def copy_first(rng, batch, length, repeated: float = 0.0):
    """Remember the first value to the end: [17, 3, 65, 8] -> 17.

    `repeated` is the share of rows that are a first value and then one other value repeated, the hardest
    case: the repeated value floods the memory the first one is kept in.
    """
    x = rng.integers(0, 100, (batch, length))
    rows = rng.random(batch) < repeated
    x[rows, 1:] = rng.integers(0, 100, (int(rows.sum()), 1))
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


ARITH_BOUND = 10**9  # arith-next's contract: every input value in [-1e9, 1e9]
ARITH_WINDOW = 7


def progressions(rng, batch, scale: str = "all") -> np.ndarray:
    """[batch, 8] integer progressions whose first seven values lie within the contract.
    scale "small": start in [-10000, 10000], step in [-1000, 1000]; "large": |step| in [1000, 1e6];
    "all": |step| 0 (5%) or log-uniform in [1, 1e9/3] (the largest a 7-value window admits), the
    window placed anywhere in the contract, and touching one of its bounds in a quarter of the rows."""
    if scale == "small":
        start = rng.integers(-10_000, 10_001, batch)
        step = rng.integers(-1_000, 1_001, batch)
    else:
        lo, hi = (3.0, 6.0) if scale == "large" else (0.0, np.log10(2 * ARITH_BOUND / (ARITH_WINDOW - 1)))
        step = np.floor(10 ** rng.uniform(lo, hi, batch)).astype(np.int64)
        if scale == "all":
            step[rng.random(batch) < 0.05] = 0
        step *= rng.choice([-1, 1], batch)
        span = np.abs(step) * (ARITH_WINDOW - 1)
        low = -ARITH_BOUND + np.where(step < 0, span, 0)  # where x0 may lie for x6 to stay inside too
        high = ARITH_BOUND - np.where(step > 0, span, 0)
        start = low + np.floor(rng.random(batch) * (high - low + 1)).astype(np.int64)
        if scale == "all":
            edge = rng.random(batch)
            start = np.where(edge < 0.125, low, np.where(edge < 0.25, high, start))
    return start[:, None] + step[:, None] * np.arange(ARITH_WINDOW + 1)


def arith_next(rng, batch, length, wrong: float = 0.0, scale: str = "small", kind: str = "in_range"):
    """Next term of an integer arithmetic progression, even when one of the first six values is wrong:
    [100, 250, 300, 400, 500, 600, 700] -> 800 (250 should have been 200).

    `wrong` is the share of rows where one of the first six values is replaced by another integer of
    the kind `kind` (see corrupt); `scale` picks the progressions (see progressions).
    """
    x = progressions(rng, batch, scale)
    return corrupt(rng, x[:, :-1], wrong, kind), x[:, -1]


TRAIN_MIX = {
    "scale": (("small", 0.25), ("large", 0.25), ("all", 0.5)),
    "kind": (("in_range", 0.45), ("outlier", 0.4), ("near", 0.15)),
}


def arith_next_training(rng, batch, length, wrong: float = 0.0):
    """arith-next's training rows: every scale and every kind of wrong value the contract admits."""
    xs, ys = [], []
    scales = rng.choice(len(TRAIN_MIX["scale"]), batch, p=[w for _, w in TRAIN_MIX["scale"]])
    kinds = rng.choice(len(TRAIN_MIX["kind"]), batch, p=[w for _, w in TRAIN_MIX["kind"]])
    for i, (scale, _) in enumerate(TRAIN_MIX["scale"]):
        for j, (kind, _) in enumerate(TRAIN_MIX["kind"]):
            count = int(((scales == i) & (kinds == j)).sum())
            if count:
                x, y = arith_next(rng, count, length, wrong, scale, kind)
                xs.append(x)
                ys.append(y)
    order = rng.permutation(batch)
    return np.concatenate(xs)[order], np.concatenate(ys)[order]


def corrupt(rng, x: np.ndarray, share: float, kind: str = "in_range") -> np.ndarray:
    """Replace one of the first six values, in `share` of the rows, by a different integer within the
    contract. kind "in_range": between the window's smallest and largest value (rows whose values are
    all equal have no such integer and stay clean); "near": the true value +-1..10; "outlier": 3x the
    value, its sign flipped, 0, +-1e6, 2..1000 window spans away, a contract bound, or anywhere in it."""
    x = x.copy()
    rows = np.flatnonzero(rng.random(len(x)) < share)
    pos = rng.integers(0, 6, len(rows))
    true = x[rows, pos]
    low, high = x[rows].min(axis=1), x[rows].max(axis=1)
    if kind == "in_range":
        keep = high > low
        rows, pos, true, low, high = rows[keep], pos[keep], true[keep], low[keep], high[keep]
        # draw from the range minus the true value: shift draws at or above it up by one
        draw = rng.integers(low, high)  # in [low, high - 1]
        draw += draw >= true
    elif kind == "near":
        draw = true + rng.integers(1, 11, len(rows)) * rng.choice([-1, 1], len(rows))
    else:
        span = np.maximum(high - low, 1)
        far = true + rng.integers(2, 1001, len(rows)) * span * rng.choice([-1, 1], len(rows))
        options = np.stack(
            [
                3 * true,
                -true,
                np.zeros_like(true),
                np.full_like(true, 10**6),
                np.full_like(true, -(10**6)),
                far,
                np.full_like(true, ARITH_BOUND),
                np.full_like(true, -ARITH_BOUND),
                rng.integers(-ARITH_BOUND, ARITH_BOUND + 1, len(rows)),
            ],
            axis=1,
        )
        draw = options[np.arange(len(rows)), rng.integers(0, options.shape[1], len(rows))]
        draw = np.clip(draw, -ARITH_BOUND, ARITH_BOUND)
        same = draw == true  # e.g. 0 or a sign flip of 0: move one step toward the inside of the contract
        draw[same] += np.where(draw[same] >= 0, -1, 1)
    x[rows, pos] = np.clip(draw, -ARITH_BOUND, ARITH_BOUND) if kind == "near" else draw
    # "near" clipped at a bound may land on the true value again: such a row simply stays clean
    return x


@dataclass(frozen=True)
class Category:
    """One named part of a task's evaluation suite: which cases (a builder in training/evaluation.py
    CASES, with its parameters), the metric measured on the answers, and the gate it must meet."""

    name: str
    cases: str  # a name in training/evaluation.py CASES
    metric: str  # a name in training/evaluation.py METRICS
    op: str  # ">=" or "<="
    threshold: float
    params: dict = field(default_factory=dict)  # passed to the case builder
    steps: int | None = None  # a rollout of this many steps instead of one answer

    def passes(self, value: float) -> bool:
        return value >= self.threshold if self.op == ">=" else value <= self.threshold


@dataclass(frozen=True, kw_only=True)
class Task:
    name: str
    description: str  # one line: what the task asks
    example: dict  # one worked example, {"input": [...], "output": ...}; a test checks it against `truth`
    generate: Callable
    input: dict  # the manifest's input contract
    kind: str  # "value", "echo" or "next" (next-value tasks support rollout)
    output_dtype: str
    encoder: dict
    decoder: dict
    suite: tuple[Category, ...]
    # which accepted inputs are of the task's kind (service/core/domain.py); every evaluated case must be one
    domain: dict = field(default_factory=lambda: {"rule": "contract"})
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    truth: Callable | None = None  # the right answer for one input row, for cases built without the generator
    train_generate: Callable | None = None  # training's rows, when they differ from `generate`'s

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
    def rollout(self) -> bool:
        return self.kind == "next"


def ints(low, high, min_length, max_length, **extra):
    return {"dtype": "int", "low": low, "high": high, "min_length": min_length, "max_length": max_length, **extra}


def classes(low, count, **positions) -> dict:
    """The encoder and decoder of a class task: tokens embedded, the answer a class distribution."""
    return {
        "encoder": {"type": "index", "low": low, "classes": count},
        "decoder": {"type": "class", "low": low, "classes": count, **positions},
    }


# The right answer for one input row, per task. Named functions, not lambdas: a Task is pickled to the
# worker processes of `python -m training train --jobs 2`.
def _itself(x):
    return x


def _all_but_last(x):
    return x[:-1]


def _second(x):
    return x[1]


def _sum_of_first_two(x):
    return x[0] + x[1]


def _first(x):
    return x[0]


def _last(x):
    return x[-1]


def _flip_last(x):
    return 1 - x[-1]


def exact(name="heldout", cases="heldout", **params):
    return Category(name, cases, "exact", ">=", 1.0, params)


EXACT = exact()
EDGES = (exact("edge_lengths", "lengths"), exact("edge_values", "constants"))
ONE_WRONG = 0.999  # arith-next: share of windows with one wrong value answered exactly, at every position
RAMP_QUANTUM = 2.0**-10  # ramp answers in 1/1024ths of the window's largest step (see RelativeDecoder)
# ramp's answers are gated to within this share of a step, so its domain admits steps that differ by as little
RAMP_TOLERANCE = 1e-3

TASKS = {
    t.name: t
    for t in [
        Task(
            name="echo",
            description="Echo the current observation",
            example={"input": [42, 7, 99], "output": [42, 7, 99]},
            generate=echo,
            truth=_itself,
            input=ints(0, 99, 1, 1000),
            kind="echo",
            output_dtype="int",
            **classes(0, 100, positions="all"),
            suite=(EXACT, *EDGES),
            model=ModelConfig(embed=32, hidden=64),
            train=TrainConfig(lengths=(1, 64), steps=1500, batch=64),
        ),
        Task(
            name="echo-lag",
            description="Echo the previous observation",
            example={"input": [42, 7, 99], "output": [42, 7]},
            generate=echo_lag,
            truth=_all_but_last,
            input=ints(0, 99, 2, 1000),
            kind="echo",
            output_dtype="int",
            **classes(0, 100, positions="all", skip=1),
            suite=(EXACT, *EDGES),
            model=ModelConfig(embed=32, hidden=64),
            train=TrainConfig(lengths=(2, 64), steps=2500, batch=64),
        ),
        Task(
            name="second-element",
            description="Return the second element",
            example={"input": [3, 1, 4, 1, 0, 2, 2, 4, 0, 3], "output": 1},
            generate=second_element,
            truth=_second,
            input=ints(0, 4, 10, 10),
            kind="value",
            output_dtype="int",
            **classes(0, 5, positions="last"),
            suite=(EXACT, exact("edge_values", "constants"), exact("every_first_two", "first_two")),
            model=ModelConfig(embed=8, hidden=32),
            train=TrainConfig(steps=1500, batch=128),
        ),
        Task(
            name="sum-first-two",
            description="Add the first two numbers, ignore the third",
            example={"input": [40, 2, 77], "output": 42},
            generate=sum_first_two,
            truth=_sum_of_first_two,
            input=ints(0, 100, 3, 3),
            kind="value",
            output_dtype="int",
            **classes(0, 201, positions="last"),
            suite=(EXACT, exact("every_input", "every_input")),
            # A sum lies along a line in the LSTM's state; a ReLU layer tells 201 neighbouring classes apart
            # along it, which a linear head learns only slowly and never exactly.
            model=ModelConfig(embed=32, hidden=128, head=256),
            train=TrainConfig(steps=16000, batch=256, lr=3e-3, eval_every=250, patience=1000, balanced=0.5),
        ),
        Task(
            name="copy-first",
            description="Remember the first value to the end",
            example={"input": [17, 3, 65, 8], "output": 17},
            generate=copy_first,
            truth=_first,
            input=ints(0, 99, 2, 20),
            kind="value",
            output_dtype="int",
            **classes(0, 100, positions="last"),
            suite=(EXACT, *EDGES, exact("first_then_repeated", "first_then_repeated")),
            model=ModelConfig(embed=32, hidden=128),
            train=TrainConfig(lengths=(2, 20), steps=3000, batch=128, repeated=0.3),
        ),
        Task(
            name="last-value",
            description="Return the last value",
            example={"input": [17, 3, 65, 8], "output": 8},
            generate=last_value,
            truth=_last,
            input=ints(0, 99, 1, 20),
            kind="value",
            output_dtype="int",
            **classes(0, 100, positions="last"),
            suite=(EXACT, *EDGES),
            model=ModelConfig(embed=32, hidden=64),
            train=TrainConfig(lengths=(1, 20), steps=1000, batch=128),
        ),
        Task(
            name="alternating",
            description="Continue an alternating 0/1 pattern",
            example={"input": [0, 1, 0, 1, 0], "output": 1},
            generate=alternating,
            truth=_flip_last,
            input=ints(0, 1, 1, 50),
            kind="next",
            output_dtype="int",
            **classes(0, 2, positions="last"),
            domain={"rule": "alternating"},
            suite=(
                exact("every_input", "every_alternation"),
                Category("rollout20", "every_alternation", "exact", ">=", 1.0, steps=20),
            ),
            model=ModelConfig(embed=4, hidden=16),
            train=TrainConfig(lengths=(1, 50), steps=400, batch=64),
        ),
        Task(
            name="ramp",
            description="Continue an evenly spaced real sequence",
            example={"input": [0.0, 0.05, 0.1, 0.15, 0.2], "output": 0.25},
            generate=ramp,
            input={
                "dtype": "float",
                "low": -1e6,
                "high": 1e6,
                "min_length": 3,
                "max_length": 50,
                "min_relative_step": 1e-9,
            },
            kind="next",
            output_dtype="float",
            encoder={"type": "relative", "basis": "step"},
            decoder={"type": "relative", "positions": "last", "quantum": RAMP_QUANTUM},
            domain={"rule": "evenly-spaced", "tolerance": RAMP_TOLERANCE},
            suite=(
                Category("heldout", "heldout", "max_step_error", "<=", RAMP_TOLERANCE),
                Category("every_scale", "ramps", "max_step_error", "<=", RAMP_TOLERANCE),
                Category("every_scale_rollout10", "ramps", "max_step_error", "<=", 0.02, steps=10),
                Category("every_scale_rollout50", "ramps", "max_step_error", "<=", 0.1, steps=50),
                Category("constants", "float_constants", "max_value_error", "<=", 1e-6),
                Category("constants_rollout50", "float_constants", "max_value_error", "<=", 1e-6, steps=50),
            ),
            model=ModelConfig(hidden=32),
            train=TrainConfig(
                lengths=(3, 50),
                lengths_per_step=16,
                steps=10000,
                batch=256,
                loss="l1",
                eval_every=250,
                patience=1000,
                val_lengths=48,
                select="max",
            ),
        ),
        Task(
            name="arith-next",
            description=(
                "Next term of an integer arithmetic progression, even when one of the first six values is wrong"
            ),
            example={"input": [100, 250, 300, 400, 500, 600, 700], "output": 800},
            generate=arith_next,
            train_generate=arith_next_training,
            input=ints(-ARITH_BOUND, ARITH_BOUND, ARITH_WINDOW, ARITH_WINDOW),
            kind="next",
            output_dtype="int",
            encoder={"type": "robust-step"},
            decoder={"type": "wrong-position", "positions": "last", "classes": 7},
            domain={"rule": "progression", "max_wrong": 1},
            suite=(
                exact("clean_small_steps", scale="small"),
                exact("clean_every_scale", scale="all"),
                exact("clean_edges", "arith_edges"),
                Category("clean_every_scale_rollout20", "heldout", "exact", ">=", 1.0, {"scale": "all"}, steps=20),
                Category(
                    "one_outlier",
                    "heldout",
                    "exact_worst_position",
                    ">=",
                    ONE_WRONG,
                    {"scale": "all", "kind": "outlier", "wrong": 1.0},
                ),
                Category(
                    "one_wrong_in_range_small_steps",
                    "heldout",
                    "exact_worst_position",
                    ">=",
                    ONE_WRONG,
                    {"scale": "small", "kind": "in_range", "wrong": 1.0},
                ),
                Category(
                    "one_wrong_in_range_large_steps",
                    "heldout",
                    "exact_worst_position",
                    ">=",
                    ONE_WRONG,
                    {"scale": "large", "kind": "in_range", "wrong": 1.0},
                ),
            ),
            model=ModelConfig(hidden=64, layers=2),
            train=TrainConfig(steps=3000, batch=256, wrong=0.75, eval_every=250, patience=1000),
        ),
    ]
}
