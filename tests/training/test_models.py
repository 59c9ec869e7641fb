"""The committed models: valid manifests, gates met on fresh held-out data, and the LSTM doing the work."""

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from benchmarks.harness.paths import MODELS_DIR
from service.core import manifest as manifest_mod
from service.core.predictor import Predictor
from training.catalog import TASKS
from training.evaluation import DEFAULT_EVAL_SEED, evaluate

FRESH_SEED = DEFAULT_EVAL_SEED + 7919  # not the seed recorded in the manifests, nor any training stream
N = 2000  # per gate: enough to see a miss at the 99.9% gates' resolution, fast enough for CI

COMMITTED = [t for t in TASKS if (MODELS_DIR / t / manifest_mod.MANIFEST_FILE).exists()]


def test_every_task_is_committed():
    assert COMMITTED == list(TASKS)


@pytest.mark.parametrize("task", COMMITTED)
def test_manifest_is_valid_and_records_passed_gates(task):
    manifest = manifest_mod.load(MODELS_DIR / task)
    recorded = [(g["category"], g["metric"], g["threshold"]) for g in manifest["gates"]]
    assert recorded == [(c.name, c.metric, c.threshold) for c in TASKS[task].suite]
    assert all(g["passed"] for g in manifest["gates"])
    assert manifest["training"]["seed"] is not None and manifest["versions"]["torch"].startswith("2.13")
    assert (MODELS_DIR / task / "training.png").stat().st_size > 1000


@pytest.mark.parametrize("task", COMMITTED)
def test_gates_hold_on_fresh_heldout_data(task):
    """Every category of the suite, on fresh cases; exhaustive categories (every input of a small domain)
    are the same cases whatever the seed; sum-first-two's million inputs are checked once, in
    tests/test_suites.py."""
    suite = tuple(c for c in TASKS[task].suite if c.cases != "every_input")
    results = evaluate(TASKS[task], Predictor.load(MODELS_DIR / task), FRESH_SEED, N, suite)
    failed = [r for r in results if not r["passed"]]
    assert not failed, failed


def randomise_lstm(src, dst, seed=0):
    """Copy a model folder with every LSTM weight (W, R, B) replaced by random values of the same scale."""
    shutil.copytree(src, dst)
    model = onnx.load(str(dst / manifest_mod.MODEL_FILE))
    inits = {i.name: i for i in model.graph.initializer}
    weights = [name for n in model.graph.node if n.op_type == "LSTM" for name in n.input[1:4]]
    assert weights
    rng = np.random.default_rng(seed)
    for name in weights:
        w = numpy_helper.to_array(inits[name])
        noise = rng.normal(0, w.std() or 0.1, w.shape).astype(w.dtype)
        inits[name].CopyFrom(numpy_helper.from_array(noise, name))
    onnx.save(model, str(dst / manifest_mod.MODEL_FILE))
    manifest = json.loads((dst / manifest_mod.MANIFEST_FILE).read_text())
    manifest["onnx"]["sha256"] = manifest_mod.sha256(dst / manifest_mod.MODEL_FILE)
    (dst / manifest_mod.MANIFEST_FILE).write_text(json.dumps(manifest))


@pytest.mark.parametrize("task", COMMITTED)
def test_ablation_random_lstm_falls_well_short(task, tmp_path):
    """The encoder and decoder only normalise: without the trained LSTM every task misses a gate by far.
    (arith-next's clean categories still pass: from a clean window the decoder's arithmetic is exact
    whichever position the model flags; its one-wrong categories are the LSTM's.)"""
    randomise_lstm(MODELS_DIR / task, tmp_path / task)
    suite = tuple(c for c in TASKS[task].suite if c.cases not in ("every_input", "first_then_repeated"))
    results = evaluate(TASKS[task], Predictor.load(tmp_path / task), FRESH_SEED, 500, suite)
    far = [
        r
        for r in results
        if (r["value"] <= 0.9 * r["threshold"] if r["op"] == ">=" else r["value"] >= 10 * r["threshold"])
    ]
    assert far, results
