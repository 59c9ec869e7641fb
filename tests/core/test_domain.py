"""A task's domain (service/core/domain.py): which accepted inputs are of the task's kind. The rules against
brute-force definitions, on the issue's examples and through the real models (answers unchanged, in_domain
added), and the manifest's `domain` schema."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from benchmarks.harness.paths import MODELS_DIR
from service.core import manifest as manifest_mod
from service.core.domain import Domain
from service.core.predictor import Predictor

RAMP = Domain({"rule": "evenly-spaced", "tolerance": 1e-3})
ARITH = Domain({"rule": "progression", "max_wrong": 1})
ALTERNATING = Domain({"rule": "alternating"})


def arith_brute(row: list[int]) -> bool:
    """The definition: some integer step puts every value but at most one of the first six on the progression
    through the 7th. Any such step is fixed by the 7th and one right earlier value, so trying those is enough."""
    last = len(row) - 1
    steps = {(row[last] - row[k]) // (last - k) for k in range(last) if (row[last] - row[k]) % (last - k) == 0}
    return any(sum(row[k] != row[last] - (last - k) * s for k in range(last)) <= 1 for s in steps)


@pytest.mark.parametrize(
    "domain, rows, expected",
    [
        # the issue's examples, and their in-domain twins
        (RAMP, [[1, 5, 2], [0.0, 0.05, 0.1, 0.15, 0.2], [3, 3, 3], [1e6, 1e6 - 0.01, 1e6 - 0.02]], [0, 1, 1, 1]),
        (ARITH, [[1, 2, 3, 4, 5, 6, 70], [1, 2, 30, 4, 50, 6, 7], [100, 250, 300, 400, 500, 600, 700]], [0, 0, 1]),
        (ALTERNATING, [[1, 1, 0], [0, 1, 0, 1], [1], [1, 0, 0, 1]], [0, 1, 1, 0]),
        (Domain({"rule": "contract"}), [[1, 1, 0], [7]], [1, 1]),
    ],
)
def test_the_issues_examples(domain, rows, expected):
    assert domain.check([np.asarray(r, dtype=float if domain is RAMP else np.int64) for r in rows]) == [
        bool(e) for e in expected
    ]


def test_ramp_tolerance_is_a_share_of_the_largest_step():
    base = 1000.0 + 0.5 * np.arange(10)
    for nudge, inside in ((0.0, True), (0.4e-3 * 0.5, True), (1.2e-3 * 0.5, False), (0.5, False)):
        x = base.copy()
        x[4] += nudge
        assert RAMP.check(x[None, :]) == [inside], nudge
    # rounding at the contract's scale stays far inside the tolerance
    rng = np.random.default_rng(1)
    start, step = rng.uniform(-1e6, 1e6 - 50, 500), 10 ** rng.uniform(-2, 0, 500)
    rows = start[:, None] + step[:, None] * np.arange(50)
    assert all(RAMP.check(rows))


def test_progression_matches_its_definition_on_random_windows():
    rng = np.random.default_rng(0)
    clean = rng.integers(-20, 21, (4000, 1)) + rng.integers(-3, 4, (4000, 1)) * np.arange(7)
    rows = clean.copy()
    for _ in range(2):  # some rows clean, the rest one or two values changed, some by a little
        picked = rng.random(len(rows)) < 0.4
        pos = rng.integers(0, 7, len(rows))
        rows[picked, pos[picked]] += rng.integers(-3, 4, int(picked.sum()))
    got = ARITH.check(rows)
    assert got == [arith_brute(r) for r in rows.tolist()]
    assert 0.2 < np.mean(got) < 0.9  # both answers are exercised


def test_progression_every_wrong_position_and_the_seventh():
    clean = [10, 20, 30, 40, 50, 60, 70]
    for k in range(6):
        row = list(clean)
        row[k] = -999
        assert ARITH.check(np.array([row])) == [True], k
        two = list(row)
        two[(k + 1) % 6] = 12345
        assert ARITH.check(np.array([two])) == [False], k
    assert ARITH.check(np.array([clean[:-1] + [71]])) == [False]  # a wrong 7th is never in the domain
    assert ARITH.check(np.array([[5] * 7, [5] * 6 + [6]])) == [True, False]


def test_progression_in_python_integers_beyond_int64_arithmetic():
    big = 2**62
    rows = [[big - 7 + k for k in range(7)], [big - 7 + k for k in range(6)] + [big]]
    assert ARITH.check([np.array(r, dtype=object) for r in rows]) == [True, False]


def test_ragged_batches_answer_as_each_row_alone():
    rng = np.random.default_rng(2)
    rows = []
    for length in rng.integers(1, 51, 300):
        first = int(rng.integers(0, 2))
        row = (first + np.arange(length)) % 2
        if rng.random() < 0.5:
            row[rng.integers(0, length)] ^= 1
        rows.append(row.astype(np.int64))
    assert ALTERNATING.check(rows) == [ALTERNATING.check([r])[0] for r in rows]


def test_predict_adds_in_domain_and_leaves_the_answers():
    """The issue's examples through the real models: the answers are what they were, in_domain says which
    have no meaning."""
    cases = {
        "ramp": ([[1, 5, 2], [0.0, 0.05, 0.1, 0.15, 0.2]], [False, True]),
        "arith-next": (
            [[1, 2, 3, 4, 5, 6, 70], [1, 2, 30, 4, 50, 6, 7], [100, 250, 300, 400, 500, 600, 700]],
            [0, 0, 1],
        ),
        "alternating": ([[1, 1, 0], [0, 1, 0]], [False, True]),
        "echo": ([[1, 1, 0]], [True]),
    }
    for task, (rows, expected) in cases.items():
        predictor = Predictor.load(MODELS_DIR / task)
        result = predictor.predict(predictor.codec.check(rows))
        assert result["in_domain"] == [bool(e) for e in expected], task
        for row, output in zip(rows, result["outputs"]):  # the same answer as alone, in_domain or not
            assert predictor.predict(predictor.codec.check([row]))["outputs"] == [output]
        steps = predictor.predict(predictor.codec.check(rows), steps=3) if predictor.rollout else None
        if steps is not None:  # a rollout's in_domain describes the input window
            assert steps["in_domain"] == result["in_domain"]
    assert Predictor.load(MODELS_DIR / "ramp").predict(np.array([[1.0, 5.0, 2.0]]))["outputs"] == [3.46484375]


def test_every_committed_manifest_declares_its_domain():
    rules = {f.name: manifest_mod.load(f)["domain"]["rule"] for f in manifest_mod.discover(MODELS_DIR)}
    assert rules["ramp"] == "evenly-spaced" and rules["arith-next"] == "progression"
    assert rules["alternating"] == "alternating" and rules["echo"] == "contract"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.pop("domain"), "'domain' is a required property"),
        (lambda m: m.update(domain={"rule": "smooth"}), "manifest /domain"),
        (lambda m: m.update(domain={"rule": "evenly-spaced"}), "manifest /domain"),
        (lambda m: m.update(domain={"rule": "progression", "max_wrong": 2}), "manifest /domain"),
    ],
)
def test_a_manifest_without_a_known_domain_is_refused(tmp_path, change, message):
    folder = tmp_path / "ramp"
    folder.mkdir()
    manifest = copy.deepcopy(json.loads((MODELS_DIR / "ramp" / "manifest.json").read_text()))
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(manifest_mod.ManifestError, match=message):
        manifest_mod.load(folder, check_hash=False)


def test_one_sequence_is_answered_as_in_a_batch():
    """A single sequence takes a plain-Python path: it must agree with the vectorised one, row by row."""
    rng = np.random.default_rng(3)
    ramps = [
        np.round(rng.uniform(-5, 5) + rng.uniform(-1, 1) * np.arange(k), int(rng.integers(0, 4)))
        for k in rng.integers(3, 51, 400)
    ]
    ramps += [np.array([0.0, 0.5, 1.0 + d]) for d in (0.0, 4.9e-4, 5.1e-4, -4.9e-4, -5.1e-4)]
    assert RAMP.check(ramps) == [RAMP.check([r])[0] for r in ramps]
    # each step within 0.001 x the largest step of the mean step: here a last value off by up to about 0.001
    assert RAMP.check([np.array([0.0, 0.5, 1.0009])]) == [True]
    assert RAMP.check([np.array([0.0, 0.5, 1.0011])]) == [False]
    windows = rng.integers(-3, 4, (400, 7)) + rng.integers(-2, 3, (400, 1)) * np.arange(7)
    assert ARITH.check(windows) == [ARITH.check(windows[i : i + 1])[0] for i in range(len(windows))]
