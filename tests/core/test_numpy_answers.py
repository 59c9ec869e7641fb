"""Predictor.predict(arrays=True) answers with numpy arrays that orjson writes itself (OPT_SERIALIZE_NUMPY, no
Python object per value): the bytes on the wire must be exactly those of the lists it answered before, for every
committed task, batch shape, rollout and top_k."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from benchmarks.harness.paths import MODELS_DIR, TASKS
from service.core.predictor import Predictor, top_k_classes


def batches(predictor: Predictor) -> list[list]:
    spec = predictor.manifest["input"]
    rng = np.random.default_rng(7)
    out = [[predictor.manifest["example"]["input"]]]
    for rows, length in ((1, spec["min_length"]), (5, spec["max_length"]), (100, min(spec["max_length"], 10))):
        length = max(spec["min_length"], length)
        if spec["dtype"] == "int":
            out.append(rng.integers(int(spec["low"]), int(spec["high"]) + 1, (rows, length)).tolist())
        else:
            starts, steps = rng.uniform(-1000, 1000, rows), rng.uniform(-5, 5, rows)
            out.append((starts[:, None] + steps[:, None] * np.arange(length)).tolist())
    lengths = range(spec["min_length"], min(spec["max_length"], spec["min_length"] + 3) + 1)
    ragged = [out[-1][i][: lengths[i % len(lengths)]] for i in range(6)]  # mixed lengths: lists, as before
    return [*out, ragged]


@pytest.mark.parametrize("task", TASKS)
def test_numpy_answers_write_the_same_json_as_lists(task):
    predictor = Predictor.load(MODELS_DIR / task)
    options = [{}]
    if predictor.rollout:
        options.append({"steps": 3})
    if top_k_classes(predictor):
        options.append({"top_k": 2})
    for inputs in batches(predictor):
        checked = predictor.codec.check(inputs)
        for option in options:
            lists = predictor.predict(checked, **option)
            arrays = predictor.predict(checked, **option, arrays=True)
            assert orjson.dumps(arrays, option=orjson.OPT_SERIALIZE_NUMPY) == orjson.dumps(lists), (task, option)


def test_a_rectangular_batch_is_answered_as_one_array():
    predictor = Predictor.load(MODELS_DIR / "echo-lag")
    result = predictor.predict(predictor.codec.check([[1, 2, 3], [4, 5, 6]]), arrays=True)
    assert isinstance(result["outputs"], np.ndarray) and result["outputs"].tolist() == [[1, 2], [4, 5]]
