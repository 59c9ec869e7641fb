"""Predictor.predict splits large mixed-length batches into onnxruntime calls of rows sorted by length:
the answers must be exactly those of each sequence answered alone, in input order, for every task,
with rollouts and top_k too; small and one-sequence batches stay one call."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.harness.paths import TASKS
from service.core import predictor as predictor_mod
from service.core.predictor import Predictor, top_k_classes

N = 600  # enough rows that several lengths are split into more than one call


def sequences(predictor: Predictor, n: int, seed: int = 0) -> list[list]:
    spec = predictor.manifest["input"]
    rng = np.random.default_rng(seed)
    top = min(spec["max_length"], spec["min_length"] + 40)
    lengths = rng.integers(spec["min_length"], top + 1, n)
    if spec["dtype"] == "int":
        return [rng.integers(int(spec["low"]), int(spec["high"]) + 1, k).tolist() for k in lengths]
    starts, steps = rng.uniform(-1000, 1000, n), rng.uniform(-5, 5, n)
    return [(a + d * np.arange(k)).tolist() for a, d, k in zip(starts, steps, lengths)]


class CountingSession:
    """Wraps an onnxruntime session to count its run calls and record their (rows, length)."""

    def __init__(self, session):
        self.session, self.calls, self.shapes = session, 0, []

    def run(self, *args):
        self.calls += 1
        self.shapes.append(next(iter(args[1].values())).shape[:2])
        return self.session.run(*args)


@pytest.fixture(scope="module", params=TASKS)
def predictor(request, models_copy) -> Predictor:
    return Predictor.load(models_copy / request.param)


def test_split_batches_answer_like_each_sequence_alone(predictor):
    # fixed-length tasks: enough rows that even one length is split
    n = max(N, 2 * predictor_mod.UNIFORM_CELLS // predictor.codec.input.min_length)
    arrays = predictor.codec.check(sequences(predictor, n))
    counting = predictor.session = CountingSession(predictor.session)
    try:
        together = predictor.predict(arrays)["outputs"]
        calls = counting.calls
    finally:
        predictor.session = counting.session
    alone = [predictor.predict([a])["outputs"][0] for a in arrays]
    assert together == alone
    assert calls > 1  # the batch really was split


def test_split_rollouts_and_top_k_answer_like_each_sequence_alone(predictor):
    arrays = predictor.codec.check(sequences(predictor, 200, seed=1))
    if predictor.rollout:
        assert predictor.predict(arrays, steps=3)["outputs"] == [
            predictor.predict([a], steps=3)["outputs"][0] for a in arrays
        ]
    if top_k_classes(predictor):
        together = predictor.predict(arrays, top_k=2)
        assert together["top_k"] == [predictor.predict([a], top_k=2)["top_k"][0] for a in arrays]
        assert together["outputs"] == predictor.predict(arrays)["outputs"]


def test_small_batches_are_one_call_and_big_ones_stay_within_the_cell_budget(models_copy):
    task = next((t for t in ("echo-lag", "echo", "alternating") if t in TASKS), None)
    if task is None:
        pytest.skip("no variable-length task with long inputs is committed")
    predictor = Predictor.load(models_copy / task)
    counting = predictor.session = CountingSession(predictor.session)
    rows = sequences(predictor, 2000, seed=2)
    for batch in ([rows[0]], rows[:10]):
        counting.calls = 0
        predictor.predict(predictor.codec.check(batch))
        assert counting.calls == 1
    predictor.cell_budget = 20 * predictor.out_width * predictor.codec.input.max_length  # 20 longest rows
    counting.shapes = []
    long_rows = [[0] * predictor.codec.input.max_length] * 50 + rows[:50]
    answers = predictor.predict(predictor.codec.check(long_rows))["outputs"]
    assert max(r * k * predictor.out_width for r, k in counting.shapes) <= predictor.cell_budget
    assert sum(r for r, k in counting.shapes if k == predictor.codec.input.max_length) == 50  # in 3 calls
    predictor.session = counting.session
    assert answers == [predictor.predict(predictor.codec.check([r]))["outputs"][0] for r in long_rows]


def test_plan_sorts_rows_into_calls_of_about_call_cells(models_copy):
    task = next((t for t in ("echo-lag", "echo") if t in TASKS), None)
    if task is None:
        pytest.skip("no task with lengths up to 30 is committed")
    predictor = Predictor.load(models_copy / task)
    rng = np.random.default_rng(3)
    arrays = [np.zeros(k, dtype=np.int64) for k in rng.integers(2, 31, 8192)]
    gather, calls = predictor._plan(arrays)
    assert sorted(np.concatenate(calls).tolist()) == list(range(len(arrays)))
    lengths = np.array([len(a) for a in arrays])
    padded = sum(len(rows) * lengths[rows].max() for rows in calls)
    assert padded <= 1.05 * lengths.sum()  # little padding
    assert all(len(rows) * lengths[rows].max() <= 2 * predictor_mod.CALL_CELLS for rows in calls)
    batch = gather(calls[0])
    assert batch.x.shape == (len(calls[0]), lengths[calls[0]].max())
