"""The toyseq codec: check raw sequences against a task's input contract, encode them into model
inputs, and decode model outputs back into answers.

Everything is built from a manifest's `input`, `encoder` and `decoder` sections. This module is the
only implementation: `training/` imports it to build its tensors and targets and the service uses it
to answer requests, so training and serving cannot drift. numpy only.

Worked example (relative encoder, basis "value"; `arith-next` adds the steps as a second feature):
    [10, 20, 30, 40, 50, 60, 70]  -- anchor 70, unit 60 (largest distance from it) -->
    features [-1, -0.83, -0.67, -0.5, -0.33, -0.17, 0]  -- LSTM -->  0.16668  -- decode: round(70 + 60 * 0.16668) --> 80
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any, Protocol

import numpy as np

MAX_PROBLEMS = 20  # an error body lists at most this many problems, then says how many more
SHORT = 256  # int sequences up to this long are range-checked in Python, not numpy


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request, located by a JSON pointer (RFC 6901)."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer}: {self.message}"


class InputError(ValueError):
    """Raised with every problem found, so a client can fix them all at once."""

    def __init__(self, problems: list[Problem], total: int | None = None, stopped: bool = False):
        self.problems = problems
        self.total = len(problems) if total is None else total
        self.stopped = stopped  # checking stopped once enough problems were found: there may be more
        more = f" (and {self.total - len(problems)} more)" if self.total > len(problems) else ""
        more += "; checking stopped there" if stopped else ""
        super().__init__("; ".join(map(str, problems)) + more)


# What InputContract.check returns: one 2-D array when the rows share a length (row i is sequence i), else
# a list of 1-D arrays. Both index, iterate and len() as a list of sequences.
Checked = np.ndarray | list[np.ndarray]


@dataclass(frozen=True)
class InputContract:
    """What one input sequence may be: JSON numbers of `dtype` in [low, high], of a length in range."""

    dtype: str  # "int": JSON integers only; "float": any finite JSON number
    low: float | None
    high: float | None
    min_length: int
    max_length: int
    # float tasks that extrapolate steps: a window that is not constant must have a largest step of at
    # least this share of max(1, its largest |value|). Below it, float64 cannot hold the window's values
    # to the precision the answer is promised in (a step of one ulp cannot be continued to 0.1% of itself).
    min_relative_step: float | None = None

    @classmethod
    def from_manifest(cls, spec: dict) -> InputContract:
        return cls(
            spec["dtype"],
            spec.get("low"),
            spec.get("high"),
            spec["min_length"],
            spec["max_length"],
            spec.get("min_relative_step"),
        )

    @property
    def length_text(self) -> str:
        if self.min_length == self.max_length:
            return f"exactly {self.min_length}"
        return f"{self.min_length}..{self.max_length}"

    def check(self, sequences: Any, task: str, pointer: str = "/inputs") -> Checked:
        """Return the sequences as numpy values, or raise InputError naming every bad place.

        `sequences` is a list of sequences (decoded JSON) or a 2-D numpy array (a binary tensor). A batch whose
        rows share one length comes back as one 2-D array (row i is sequence i); a ragged one as a list of 1-D
        arrays. Either way the whole batch is checked at once, vectorised (types, lengths, ranges); only a
        batch that fails is walked value by value, to locate each problem. Same limits, same answers."""
        checked: Checked | None
        if isinstance(sequences, np.ndarray):
            checked = self._array(sequences)
            if checked is None:
                self._explain_all(sequences.tolist() if sequences.ndim else sequences.item(), task, pointer)
        else:
            if not isinstance(sequences, list):
                raise InputError([Problem(pointer, f"expected a list of sequences, got {json_type(sequences)}")])
            checked = self._lists(sequences)
            if checked is None:
                self._explain_all(sequences, task, pointer)
        assert checked is not None  # _explain_all raised
        if self.min_relative_step is not None:
            self._check_steps(checked, task, pointer)
        return checked

    def _explain_all(self, sequences: Any, task: str, pointer: str) -> None:
        """Raise InputError locating every problem of a batch the fast checks refused."""
        if not isinstance(sequences, list):
            raise InputError([Problem(pointer, f"expected a list of sequences, got {json_type(sequences)}")])
        if not sequences:
            raise InputError([Problem(pointer, "expected at least one sequence, got an empty list")])
        problems: list[Problem] = []
        for i, seq in enumerate(sequences):
            if self._fast(seq) is not None:
                continue
            problems.extend(self._explain(seq, task, f"{pointer}/{i}"))
            if len(problems) >= MAX_PROBLEMS and i + 1 < len(sequences):
                # Enough to show: stop, so that a large body of bad values is refused quickly rather than
                # explained value by value.
                raise InputError(problems[:MAX_PROBLEMS], total=len(problems), stopped=True)
        if not problems:  # unreachable while each row's checks are the batch's: say so rather than pass it
            problems.append(Problem(pointer, "the sequences could not be read together"))
        raise InputError(problems[:MAX_PROBLEMS], total=len(problems))

    def _check_steps(self, checked: Checked, task: str, pointer: str) -> None:
        problems = []
        for i, arr in enumerate(checked):
            if len(arr) < 2:
                continue
            largest = float(np.abs(np.diff(arr)).max())
            floor = (self.min_relative_step or 0.0) * max(1.0, float(np.abs(arr).max()))
            if 0 < largest < floor:
                problems.append(
                    Problem(
                        f"{pointer}/{i}",
                        (
                            f"the largest step {largest:.3g} is below {self.min_relative_step:g} x the largest |value| "
                            f"(at least 1): float64 cannot hold such a window precisely enough for task {task} to "
                            f"continue it; send a constant window or steps of at least {floor:.3g}"
                        ),
                    )
                )
        if problems:
            raise InputError(problems[:MAX_PROBLEMS], total=len(problems))

    def _array(self, arr: np.ndarray) -> np.ndarray | None:
        """A 2-D numeric array checked at C speed (None: look closer). Integer tasks take integer arrays only
        (a float array falls to the walk, which names each non-integer); number tasks take any real array."""
        if arr.ndim != 2 or not len(arr) or not self.min_length <= arr.shape[1] <= self.max_length:
            return None
        kind = arr.dtype.kind
        if self.dtype == "int":
            if kind not in "iu":
                return None
            arr = arr.astype(np.int64, copy=False)
        else:
            if kind not in "iuf":
                return None
            arr = arr.astype(np.float64, copy=False)
            if not np.isfinite(arr).all():
                return None
        return arr if self._in_range(arr) else None

    def _lists(self, sequences: list) -> Checked | None:
        """Decoded JSON rows in one numpy conversion (per-row checks would be most of the time of a request of
        many short rows); None means 'look closer'."""
        if not sequences or set(map(type, sequences)) != {list}:
            return None
        n = len(sequences)
        if n == 1:
            arr = self._fast(sequences[0])
            return None if arr is None else arr[None, :]
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=n)
        shortest, longest = int(lengths.min()), int(lengths.max())
        if shortest < self.min_length or longest > self.max_length:
            return None
        values = self._values(list(chain.from_iterable(sequences)))
        if values is None:
            return None
        if shortest == longest:
            return values.reshape(n, shortest)
        ends = np.cumsum(lengths).tolist()
        return [values[start:end] for start, end in zip([0, *ends[:-1]], ends)]  # views, without np.split's overhead

    def _fast(self, seq: Any) -> np.ndarray | None:
        """One sequence at C speed; None means 'look closer' (see _explain)."""
        if type(seq) is not list or not self.min_length <= len(seq) <= self.max_length:
            return None
        return self._values(seq)

    def _values(self, values: list) -> np.ndarray | None:
        """`values` as one array when each is an allowed JSON number within range; else None."""
        if not set(map(type, values)) <= (_INT_TYPES if self.dtype == "int" else _NUMBER_TYPES):
            return None
        # short int lists: Python's min/max beat numpy's per-call overhead (floats keep numpy: NaN)
        short = self.dtype == "int" and 0 < len(values) <= SHORT and None not in (self.low, self.high)
        if short and (min(values) < self.low or max(values) > self.high):
            return None
        try:
            arr = np.array(values, dtype=np.int64 if self.dtype == "int" else np.float64)
        except (OverflowError, ValueError):
            return None
        if self.dtype == "float" and not np.isfinite(arr).all():
            return None
        if not short and not self._in_range(arr):
            return None
        return arr

    def _in_range(self, arr: np.ndarray) -> bool:
        return (self.low is None or arr.min() >= self.low) and (self.high is None or arr.max() <= self.high)

    def _explain(self, seq: Any, task: str, pointer: str) -> list[Problem]:
        if not isinstance(seq, list):
            return [Problem(pointer, f"expected a sequence (a JSON array of numbers), got {json_type(seq)}")]
        problems = []
        if not self.min_length <= len(seq) <= self.max_length:
            problems.append(Problem(pointer, self._length_problem(len(seq), task)))
        for j, value in enumerate(seq):
            message = self._value_problem(value, task)
            if message:
                problems.append(Problem(f"{pointer}/{j}", message))
        return problems

    def _length_problem(self, length: int, task: str) -> str:
        # "length 2 is outside exactly 3" reads as nonsense: a fixed length is named as the one it must be.
        if self.min_length == self.max_length:
            return f"length {length}, but task {task} takes exactly {self.min_length} values"
        return f"length {length} is outside {self.length_text} for task {task}"

    def _value_problem(self, value: Any, task: str) -> str | None:
        kind = "an integer" if self.dtype == "int" else "a number"
        if self.dtype == "int" and type(value) is float and value.is_integer() and abs(value) >= 2**63:
            # JSON parsers read integers past 64 bits as floats: say what is wrong with 10**30, its size
            return (
                f"{value:.6g} is out of range: outside {_fmt(self.low)}..{_fmt(self.high)} for task {task} "
                "(integers past 64 bits are not accepted)"
            )
        if type(value) not in (_INT_TYPES if self.dtype == "int" else _NUMBER_TYPES):
            return f"expected {kind}, got {_described(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"expected a finite number, got {value}"
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            return f"{_short(value)} is outside {_fmt(self.low)}..{_fmt(self.high)} for task {task}"
        return None


_INT_TYPES = frozenset({int})  # bool is a subclass of int, but type(True) is bool: rejected
_NUMBER_TYPES = frozenset({int, float})


def json_type(value: Any) -> str:
    names = {
        bool: "a boolean",
        type(None): "null",
        str: "a string",
        dict: "an object",
        list: "an array",
        float: "a non-integer number",
        int: "an integer",
    }
    return names.get(type(value), type(value).__name__)


def _described(value: Any) -> str:
    """A JSON value as a client wrote it: `null`, `a boolean (true)`, `a string "abc"`, never a Python repr."""
    if value is None:
        return "null"
    if type(value) is bool:
        return f"a boolean ({'true' if value else 'false'})"
    return f"{json_type(value)} {_short(value)}"


def _short(value: Any) -> str:
    return short_json(value, 40)


def short_json(value: Any, limit: int) -> str:
    """`value` as JSON spells it ("abc", {"a": 1}, [[1]]), cut to `limit` characters with "..." at the end.
    Written iteratively and only as far as the limit: a client's value, however deep or long, costs at most
    `limit` characters of work and never recursion (json.dumps of an array nested ~1,000 deep raised
    RecursionError, a 500; the parsers take up to 1,023 levels)."""
    out: list[str] = []
    size = 0
    for token in _json_tokens(value):
        out.append(token)
        size += len(token)
        if size > limit:
            break
    text = "".join(out)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_tokens(value: Any) -> Iterator[str]:
    """The JSON text of `value` in small pieces, depth-first with an explicit stack (no recursion)."""
    stack: list[_Open] = []
    pending: Any = value
    while True:
        if type(pending) is list:
            yield "["
            stack.append(_Open(iter(pending), "]"))
        elif type(pending) is dict:
            yield "{"
            stack.append(_Open(iter(pending.items()), "}"))
        else:
            yield _scalar(pending)
        while stack:
            top = stack[-1]
            item: Any = next(top.rest, _END)
            if item is _END:
                stack.pop()
                yield top.closer
                continue
            if top.started:
                yield ", "
            top.started = True
            if top.closer == "}":
                key, pending = item
                yield _scalar(str(key)) + ": "
            else:
                pending = item
            break
        else:
            return


@dataclass
class _Open:
    """An array or object being written: its remaining items, how it closes, whether one was written."""

    rest: Iterator[Any]
    closer: str
    started: bool = False


_END = object()


def _scalar(value: Any) -> str:
    if type(value) is str and len(value) > 64:
        value = value[:64]  # a long string is cut anyway: never spell more of it than can be shown
    return json.dumps(value, ensure_ascii=False, default=str)


def _fmt(x: float | None) -> str:
    return "" if x is None else str(int(x)) if float(x).is_integer() else str(x)


@dataclass
class Batch:
    """Sequences right-padded into one array. The LSTM is causal, so padding after a sequence's end
    never changes its outputs at positions before the end."""

    x: np.ndarray  # [batch, max_len], float64 or int64
    lengths: np.ndarray  # [batch], int64

    @classmethod
    def of(cls, sequences: list[np.ndarray]) -> Batch:
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        if (lengths == lengths[0]).all():
            return cls(np.stack(sequences), lengths)
        x = np.zeros((len(sequences), int(lengths.max())), dtype=sequences[0].dtype)
        for row, seq in zip(x, sequences):
            row[: len(seq)] = seq
        return cls(x, lengths)

    @property
    def last(self) -> np.ndarray:
        return self.x[np.arange(len(self.x)), self.lengths - 1]

    def slide(self, values: np.ndarray) -> Batch:
        """The next rollout window: drop each sequence's first value, append its prediction."""
        x = self.x.copy()  # rows shorter than the batch keep their padding in the last column
        x[:, :-1] = self.x[:, 1:]
        x[np.arange(len(x)), self.lengths - 1] = values
        return Batch(x, self.lengths)


# --- encoders: Batch -> (model input, context the decoder needs) ---------------------------------


class Encoder(Protocol):
    width: int  # features per step of the model input (an index encoder feeds one token)

    def encode(self, batch: Batch) -> tuple[np.ndarray, Any]: ...


class Decoder(Protocol):
    positions: str

    def decode(self, out: np.ndarray, batch: Batch, ctx: Any, arrays: bool = False) -> Any: ...

    def next_values(self, out: np.ndarray, batch: Batch, ctx: Any) -> np.ndarray: ...

    def encode_target(self, y: np.ndarray, ctx: Any) -> np.ndarray: ...

    def training_slice(self, out: Any) -> Any: ...


class IndexEncoder:
    """Integer tokens as class indices (value - low); the model embeds them."""

    width = 1

    def __init__(self, spec: dict):
        self.low = int(spec["low"])
        self.classes = int(spec["classes"])

    def encode(self, batch: Batch) -> tuple[np.ndarray, Any]:
        if self.low == 0 and batch.x.dtype == np.int64:
            return batch.x, None  # already the indices (no copy: onnxruntime only reads its inputs)
        return (batch.x - self.low).astype(np.int64), None


class RelativeEncoder:
    """Offset-free and scale-free. The anchor is the window's last value. basis "value" feeds each
    value's position relative to the anchor, (x_t - anchor) / unit, where the unit is the window's
    largest distance from the anchor, so features lie in [-1, 1]; basis "step" feeds each step
    x_t - x_(t-1) (the first is 0) in units of the largest step; basis "value+step" feeds both, two
    features per step, in the "value" unit. With "signed" the unit takes the sign that puts the farthest
    value (or step) at -1, so a falling window reads exactly like its rising mirror image. The decoder
    reads the answer as anchor + output * unit, so one model serves every start, step size and
    direction. The model still has to find the answer: which steps to trust, and what comes next."""

    BASES = ("value", "step", "value+step")

    def __init__(self, spec: dict):
        self.basis = spec.get("basis", "value")
        self.min_scale = float(spec.get("min_scale", 1e-12))
        self.signed = bool(spec.get("signed", False))
        self.width = len(self.basis.split("+"))  # features per step

    def encode(self, batch: Batch) -> tuple[np.ndarray, Any]:
        x = batch.x.astype(np.float64)
        anchor = batch.last.astype(np.float64)
        padding = np.arange(x.shape[1]) >= batch.lengths[:, None]
        steps = np.zeros_like(x)
        steps[:, 1:] = np.diff(x, axis=1)
        values = x - anchor[:, None]
        steps[padding] = values[padding] = 0.0  # padding must not set the unit
        base = steps if self.basis == "step" else values
        unit = np.abs(base).max(axis=1)
        if self.signed:  # the farthest value always reads -1: rising and falling windows look alike
            unit *= -np.sign(base[np.arange(len(base)), np.abs(base).argmax(axis=1)])
        constant = np.abs(unit) < self.min_scale
        unit[constant] = 1.0  # features of a constant window are all 0 whatever the unit
        feats = {"value": values, "step": steps, "value+step": np.stack([values, steps], axis=-1)}[self.basis]
        feats = feats if feats.ndim == 3 else feats[..., None]
        # The decoder reads the answer in a unit of 0 for a constant window, so it answers the constant
        # itself: a window with no step has nothing to extrapolate.
        return (feats / unit[:, None, None]).astype(np.float32), (anchor, np.where(constant, 0.0, unit))


class RobustStepEncoder:
    """For a progression with at most one wrong value. Each step x_t - x_(t-1) is compared with the
    window's median step, which one wrong value cannot move (it spoils at most 2 of the steps, and the
    middle two of the sorted steps stay clean). Two features per step, both 0 on a clean progression:
    the step's deviation from the median in units of |median| (at least 1), clipped to +-`clip` so that
    an outlier of any size reads alike; and the deviation itself, log-compressed (sign x log1p(|d|) /
    `log_scale`), so that a deviation of 1 at a step of 1e8 is as visible as one of 1e9 at a step of 1.
    The first position has no step and reads 0. The model only has to say which position the
    deviations point at (see WrongPositionDecoder)."""

    width = 2

    def __init__(self, spec: dict):
        self.clip = float(spec.get("clip", 4.0))
        self.log_scale = float(spec.get("log_scale", 10.0))

    def encode(self, batch: Batch) -> tuple[np.ndarray, Any]:
        x = batch.x.astype(np.int64)
        steps = np.diff(x, axis=1).astype(np.float64)  # exact: steps stay far below 2**53
        median = np.median(steps, axis=1, keepdims=True)
        dev = steps - median
        ratio = np.clip(dev / np.maximum(np.abs(median), 1.0), -self.clip, self.clip)
        logged = np.sign(dev) * np.log1p(np.abs(dev)) / self.log_scale
        feats = np.zeros((len(x), x.shape[1], 2), dtype=np.float32)
        feats[:, 1:, 0] = ratio
        feats[:, 1:, 1] = logged
        return feats, x


# --- decoders: model output [batch, seq, out] -> answers -----------------------------------------


class _Positions:
    """Which output steps carry the answer: the last one, or every one from `skip` on."""

    def __init__(self, spec: dict):
        self.positions = spec["positions"]  # "last" or "all"
        self.skip = int(spec.get("skip", 0))

    def pick_last(self, out: np.ndarray, batch: Batch) -> np.ndarray:
        return out[np.arange(len(out)), batch.lengths - 1]

    def training_slice(self, out: Any) -> Any:
        """The same selection on an unpadded training batch (works on numpy arrays and torch tensors)."""
        return out[:, -1] if self.positions == "last" else out[:, self.skip :]


class ClassDecoder(_Positions):
    """Logits over `classes` values starting at `low`; the answer is the most likely one."""

    def __init__(self, spec: dict):
        super().__init__(spec)
        self.low = int(spec["low"])
        self.classes = int(spec["classes"])

    def decode(self, out: np.ndarray, batch: Batch, ctx: Any, arrays: bool = False) -> Any:
        """The answers as lists, or with `arrays` as one numpy array when they are rectangular (for orjson's numpy
        support: no Python object per value); ragged echo answers stay lists of rows."""
        if self.positions == "last":
            last = self.pick_last(out, batch).argmax(-1) + self.low
            return last if arrays else last.tolist()
        best = out.argmax(-1) + self.low
        if (batch.lengths == best.shape[1]).all():  # no padding: one conversion for the whole batch
            rows = best[:, self.skip :]
            return np.ascontiguousarray(rows) if arrays else rows.tolist()
        return [row[self.skip : n].tolist() for row, n in zip(best, batch.lengths)]

    def next_values(self, out: np.ndarray, batch: Batch, ctx: Any) -> np.ndarray:
        return self.pick_last(out, batch).argmax(-1) + self.low

    def top_k(self, out: np.ndarray, batch: Batch, k: int) -> list[list[dict]]:
        """The k most likely answers with their probabilities, for a task whose answer is one class."""
        logits = self.pick_last(out, batch).astype(np.float64)
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        k = min(k, self.classes)
        best = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
        return [[{"value": int(c) + self.low, "p": float(p[c])} for c in row] for row, p in zip(best, probs)]

    def encode_target(self, y: np.ndarray, ctx: Any) -> np.ndarray:
        return (np.asarray(y) - self.low).astype(np.int64)


class RelativeDecoder(_Positions):
    """The next value as last value + output * scale, the unit the RelativeEncoder chose.
    `round` makes integer tasks answer integers. `quantum` reads the output to the nearest multiple of
    it: the model's answer in units of the window's largest step is known to that precision, and a
    rollout that feeds back an answer carrying the model's last-digit bias would add that bias up at
    every step (quadratically, over a rollout whose window the answers come to fill)."""

    def __init__(self, spec: dict):
        super().__init__(spec)
        self.round = bool(spec.get("round", False))
        self.quantum = float(spec.get("quantum", 0.0))

    def next_values(self, out: np.ndarray, batch: Batch, ctx: Any) -> np.ndarray:
        anchor, scale = ctx
        output = self.pick_last(out, batch)[:, 0].astype(np.float64)
        if self.quantum:
            output = np.rint(output / self.quantum) * self.quantum
        values = anchor + output * scale
        return np.rint(values).astype(np.int64) if self.round else values

    def decode(self, out: np.ndarray, batch: Batch, ctx: Any, arrays: bool = False) -> Any:
        values = self.next_values(out, batch, ctx)
        return values if arrays else values.tolist()

    def encode_target(self, y: np.ndarray, ctx: Any) -> np.ndarray:
        anchor, scale = ctx
        offset = np.asarray(y, dtype=np.float64) - anchor
        safe = np.where(scale == 0, 1.0, scale)  # a constant window's target is 0 in any unit
        return np.where(scale == 0, 0.0, offset / safe).astype(np.float32)


class WrongPositionDecoder(_Positions):
    """For a fixed window of integers whose last value is right and one earlier value may be wrong.
    The model's classes are the positions 0..n-2 (that value is wrong) and n-1 (none is). The answer is
    computed exactly in int64 from the values the model did not flag: the last value plus the mean of
    the steps (x_last - x_k) / (last - k) over every unflagged k, rounded to the nearest integer. Every
    earlier value counts, so a wrong value the model misses spoils the answer."""

    EXTRAS = ("wrong_position",)  # what extras() answers besides the value

    def __init__(self, spec: dict):
        super().__init__(spec)
        self.classes = int(spec["classes"])  # the window's length: n - 1 positions, plus "none"
        last = self.classes - 1
        self.weights = np.array([math.lcm(*range(1, last + 1)) // (last - k) for k in range(last)], dtype=np.int64)

    def positions_of(self, out: np.ndarray, batch: Batch) -> np.ndarray:
        return self.pick_last(out, batch).argmax(-1)

    def next_values(self, out: np.ndarray, batch: Batch, ctx: Any) -> np.ndarray:
        x = ctx
        last = self.classes - 1
        flagged = self.positions_of(out, batch)
        keep = np.arange(last)[None, :] != flagged[:, None]
        spans = (x[:, last : last + 1] - x[:, :last]) * self.weights  # each span in steps, x lcm
        num = (spans * keep).sum(axis=1)
        den = keep.sum(axis=1) * int(self.weights[-1])
        step = (2 * num + den) // (2 * den)  # num / den to the nearest integer, exactly
        return x[:, last] + step

    def decode(self, out: np.ndarray, batch: Batch, ctx: Any, arrays: bool = False) -> Any:
        values = self.next_values(out, batch, ctx)
        return values if arrays else values.tolist()

    def extras(self, out: np.ndarray, batch: Batch) -> dict[str, list]:
        """The position the model judged wrong, per row (None: it judged every value right)."""
        flagged = self.positions_of(out, batch)
        return {"wrong_position": [None if p == self.classes - 1 else p for p in flagged.tolist()]}

    def encode_target(self, y: np.ndarray, ctx: Any) -> np.ndarray:
        """The class of each training row: the first position that is off the progression the true
        next value and the last value define (there is at most one), else "none"."""
        x = ctx
        last = self.classes - 1
        step = np.asarray(y, dtype=np.int64) - x[:, last]
        clean = x[:, last : last + 1] - step[:, None] * np.arange(last, 0, -1)
        off = x[:, :last] != clean
        return np.where(off.any(axis=1), off.argmax(axis=1), last).astype(np.int64)


ENCODERS: dict[str, Callable[[dict[str, Any]], Encoder]] = {
    "index": IndexEncoder,
    "relative": RelativeEncoder,
    "robust-step": RobustStepEncoder,
}
DECODERS: dict[str, Callable[[dict[str, Any]], Decoder]] = {
    "class": ClassDecoder,
    "relative": RelativeDecoder,
    "wrong-position": WrongPositionDecoder,
}


def feature_width(encoder: dict) -> int:
    """Features per step of a feature encoder (the ONNX input's last axis)."""
    return ENCODERS[encoder["type"]](encoder).width


class Codec:
    """A task's input contract, encoder and decoder, built from its manifest."""

    def __init__(self, manifest: dict):
        self.task = manifest["task"]
        self.input = InputContract.from_manifest(manifest["input"])
        self.encoder = ENCODERS[manifest["encoder"]["type"]](manifest["encoder"])
        self.decoder = DECODERS[manifest["decoder"]["type"]](manifest["decoder"])
        self.is_class = isinstance(self.decoder, ClassDecoder)

    def check(self, sequences: Any, pointer: str = "/inputs") -> Checked:
        return self.input.check(sequences, self.task, pointer)

    def encode(self, batch: Batch) -> tuple[np.ndarray, Any]:
        return self.encoder.encode(batch)

    def decode(self, out: np.ndarray, batch: Batch, ctx: Any, arrays: bool = False) -> Any:
        return self.decoder.decode(out, batch, ctx, arrays)

    def next_values(self, out: np.ndarray, batch: Batch, ctx: Any) -> np.ndarray:
        return self.decoder.next_values(out, batch, ctx)

    def top_k(self, out: np.ndarray, batch: Batch, k: int) -> list[list[dict[str, Any]]]:
        assert isinstance(self.decoder, ClassDecoder), "top_k needs a class decoder"
        return self.decoder.top_k(out, batch, k)

    def encode_target(self, y: np.ndarray, ctx: Any) -> np.ndarray:
        return self.decoder.encode_target(y, ctx)
