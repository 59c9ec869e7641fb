"""A task's domain: which accepted inputs are of the task's kind, so that its answer means something.

The contract (codec.InputContract) says what the service accepts; the domain says which of those inputs the
model was built for. `ramp` accepts any numbers but was built for evenly spaced ones; `arith-next` accepts any
seven integers but was built for a progression with at most one wrong value among the first six;
`alternating` accepts any 0/1 sequence but was built for 0/1/0/1... Outside its domain a model still answers
(the contract accepts the input), and `in_domain` says that the answer has no meaning.

Training declares each task's rule in the manifest's `domain` (training/catalog.py); this module is the one
implementation, used by the service (every answer's `in_domain`, /metrics) and by training's evaluation
(every evaluated case must be in the domain, so the gates measure what the domain promises).

    {"rule": "contract"}                            every input the contract accepts
    {"rule": "evenly-spaced", "tolerance": 1e-3}    each step within tolerance x the window's largest |step| of
                                                    the window's mean step (constant windows included)
    {"rule": "alternating"}                         no two neighbouring values equal
    {"rule": "progression", "max_wrong": 1}         integers on one progression through the last value, except
                                                    at most `max_wrong` of the values before it
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .codec import Checked

CONTRACT, EVENLY_SPACED, ALTERNATING, PROGRESSION = "contract", "evenly-spaced", "alternating", "progression"
RULES = (CONTRACT, EVENLY_SPACED, ALTERNATING, PROGRESSION)

# The manifest's `domain` (service/core/manifest.py puts it in the manifest schema).
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["rule"],
    "oneOf": [
        {"properties": {"rule": {"const": CONTRACT}}, "additionalProperties": False},
        {
            "properties": {"rule": {"const": EVENLY_SPACED}, "tolerance": {"type": "number", "exclusiveMinimum": 0}},
            "required": ["tolerance"],
            "additionalProperties": False,
        },
        {"properties": {"rule": {"const": ALTERNATING}}, "additionalProperties": False},
        {
            "properties": {"rule": {"const": PROGRESSION}, "max_wrong": {"enum": [0, 1]}},
            "required": ["max_wrong"],
            "additionalProperties": False,
        },
    ],
}

# int64 arithmetic on a progression's values stays exact below this magnitude (a step times the window's length)
_EXACT_INT = 2**56
_ONE_MAX = 64  # a single sequence up to this long is checked in plain Python


class Domain:
    """One task's domain rule (see the module docstring); `check` answers one boolean per checked sequence."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = dict(spec)
        self.rule: str = spec["rule"]
        if self.rule not in RULES:
            raise ValueError(f"unknown domain rule {self.rule!r}; known: {', '.join(RULES)}")
        self.tolerance = float(spec.get("tolerance", 0.0))
        self.max_wrong = int(spec.get("max_wrong", 0))
        rows: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            EVENLY_SPACED: self._evenly_spaced,
            ALTERNATING: _alternating,
            PROGRESSION: self._progression,
        }
        self._rows = rows.get(self.rule)
        # One sequence (most requests) in plain Python: numpy's per-call overhead would cost more than the rule.
        one: dict[str, Callable[[list[Any]], bool]] = {
            EVENLY_SPACED: self._evenly_spaced_one,
            ALTERNATING: _alternating_one,
            PROGRESSION: lambda row: (
                _progression_exact([int(v) for v in row], self.max_wrong) if len(row) >= 3 else True
            ),
        }
        self._one = one.get(self.rule)

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> Domain:
        return cls(manifest["domain"])

    @property
    def whole_contract(self) -> bool:
        """True when every input the contract accepts is in the domain."""
        return self._rows is None

    def description(self) -> str:
        """The rule in words, for people (GET /tasks/<name>, the playground, docs/tasks.md)."""
        if self.rule == EVENLY_SPACED:
            return (
                f"evenly spaced values: every step within {self.tolerance:g} x the largest step of the mean step "
                "(a constant sequence is evenly spaced)"
            )
        if self.rule == ALTERNATING:
            return "alternating values: no two neighbours equal"
        if self.rule == PROGRESSION:
            if self.max_wrong == 0:
                return "an integer arithmetic progression"
            return (
                "an integer arithmetic progression through the last value, where at most "
                f"{self.max_wrong} of the values before the last may be off it"
            )
        return "every input the contract accepts"

    def check(self, sequences: Checked) -> list[bool]:
        """One boolean per sequence (checked by the codec: numpy rows in the contract), in order."""
        n = len(sequences)
        if self._rows is None:
            return [True] * n
        if n == 1 and self._one is not None and len(sequences[0]) <= _ONE_MAX:
            return [self._one(sequences[0].tolist())]
        if isinstance(sequences, np.ndarray):
            return self._rows(sequences).tolist()
        # ragged rows: one vectorised call per length
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=n)
        result = np.empty(n, dtype=bool)
        for length in np.unique(lengths).tolist():
            rows = np.flatnonzero(lengths == length)
            result[rows] = self._rows(np.stack([sequences[i] for i in rows.tolist()]))
        return result.tolist()

    def _evenly_spaced(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64, copy=False)
        if x.shape[1] < 3:
            return np.ones(len(x), dtype=bool)  # one step (or none) is evenly spaced
        steps = np.diff(x, axis=1)
        mean = (x[:, -1] - x[:, 0]) / (x.shape[1] - 1)
        deviation = np.abs(steps - mean[:, None]).max(axis=1)
        largest = np.abs(steps).max(axis=1)
        return deviation <= self.tolerance * largest

    def _evenly_spaced_one(self, row: list[float]) -> bool:
        """_evenly_spaced for one row, in Python floats: the same operations, so the same answer."""
        if len(row) < 3:
            return True
        steps = [b - a for a, b in zip(row, row[1:])]
        mean = (row[-1] - row[0]) / (len(row) - 1)
        deviation = max(abs(s - mean) for s in steps)
        return bool(deviation <= self.tolerance * max(abs(s) for s in steps))

    def _progression(self, x: np.ndarray) -> np.ndarray:
        if x.shape[1] < 3:
            return np.ones(len(x), dtype=bool)
        if x.dtype.kind not in "iu" or (len(x) and int(np.abs(x).max()) >= _EXACT_INT):
            return np.array([_progression_exact([int(v) for v in row], self.max_wrong) for row in x.tolist()], bool)
        return _progression_int64(x.astype(np.int64, copy=False), self.max_wrong)


def _alternating_one(row: list[int]) -> bool:
    return all(a != b for a, b in zip(row, row[1:]))


def _alternating(x: np.ndarray) -> np.ndarray:
    return (np.diff(x, axis=1) != 0).all(axis=1)


def _progression_int64(x: np.ndarray, max_wrong: int) -> np.ndarray:
    """Every row's candidate steps: if the value before the last is right, the last step; if it is the wrong
    one, half the last two steps (then the two before it are right). A row is in the domain when one candidate
    puts all but `max_wrong` of the values before the last on the progression through the last value."""
    last = x.shape[1] - 1
    end = x[:, last]
    back = np.arange(last, 0, -1, dtype=np.int64)  # steps from each earlier position to the last
    one = end - x[:, last - 1]
    two = end - x[:, last - 2]
    ok = (x[:, :last] != end[:, None] - back * one[:, None]).sum(axis=1) <= max_wrong
    even = two % 2 == 0
    half = two // 2
    ok |= even & ((x[:, :last] != end[:, None] - back * half[:, None]).sum(axis=1) <= max_wrong)
    return ok


def _progression_exact(row: list[int], max_wrong: int) -> bool:
    """The same rule in Python integers (values too large for int64 arithmetic)."""
    last = len(row) - 1
    candidates = [row[last] - row[last - 1]]
    if (row[last] - row[last - 2]) % 2 == 0:
        candidates.append((row[last] - row[last - 2]) // 2)
    return any(sum(row[k] != row[last] - (last - k) * step for k in range(last)) <= max_wrong for step in candidates)
