"""The contract's hard cases through the service's own predict path (HTTP), the best-constant ablation,
and the exhaustive sum-first-two check."""

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from benchmarks.harness.paths import MODELS_DIR
from service.core import manifest as manifest_mod
from service.core.codec import Batch
from service.core.predictor import Predictor
from training.catalog import TASKS
from training.evaluation import CASES, DEFAULT_EVAL_SEED, METRICS
from training.trainer import codec_for

COMMITTED = [t for t in TASKS if (MODELS_DIR / t / manifest_mod.MANIFEST_FILE).exists()]


def predict(client, task, inputs, **extra):
    r = client.post(f"/tasks/{task}/predict", json={"inputs": inputs, **extra})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


# --- arith-next --------------------------------------------------------------------------------


def test_arith_next_outliers_from_the_issue_are_answered_and_located(client):
    inputs = [
        [0, 101, 202, 303, 404, 1515, 606],
        [101, 202, 303, 404, 1515, 606, 707],
        [202, 303, 404, 1515, 606, 707, 808],
        [10, 20, 30, 40, 50, 1000000, 70],
        [-1000000000, 3, 6, 9, 12, 15, 18],
        [5, 10, 15, -20, 25, 30, 35],
    ]
    body = predict(client, "arith-next", inputs)
    assert body["outputs"] == [707, 808, 909, 80, 21, 40]
    assert body["wrong_position"] == [5, 4, 3, 5, 0, 3]


def test_arith_next_clean_progressions_at_every_magnitude(client):
    inputs, want = [], []
    for start, step in [
        (0, 0),
        (7, 1),
        (7, -1),
        (0, 2_000_000),
        (-(10**9), 3 * 10**8),
        (10**9, -(10**8)),
        (10**9 - 6 * 333_333_333, 333_333_333),
        (999_999_994, 1),
    ]:
        inputs.append([start + step * k for k in range(7)])
        want.append(start + step * 7)
    body = predict(client, "arith-next", inputs)
    assert body["outputs"] == want  # the last of these answers beyond the contract's 1e9: an answer may
    assert body["wrong_position"] == [None] * len(inputs)


def test_arith_next_rolls_out_past_the_contract_bound_exactly(client):
    window = [10**9 - 6 * 300_000_000 + 300_000_000 * k for k in range(7)]
    body = predict(client, "arith-next", [window], steps=20)
    assert body["outputs"] == [[10**9 + 300_000_000 * k for k in range(1, 21)]]


# --- ramp --------------------------------------------------------------------------------------


def test_ramp_constant_windows_answer_the_constant(client):
    body = predict(client, "ramp", [[0, 0, 0], [5, 5, 5, 5], [1e5] * 50, [-1e6] * 3])
    assert body["outputs"] == [0, 5, 1e5, -1e6]
    rolled = predict(client, "ramp", [[1e5] * 50], steps=50)["outputs"][0]
    assert rolled == [1e5] * 50


def test_ramp_window_too_fine_for_float64_is_422_saying_why(client):
    r = client.post("/tasks/ramp/predict", json={"inputs": [[1e6 - 2e-9, 1e6 - 1e-9, 1e6], [0.0, 0.5, 1.0]]})
    assert r.status_code == 422
    errors = r.get_json()["errors"]
    assert [e["pointer"] for e in errors] == ["/inputs/0"]
    assert "float64" in errors[0]["message"] and "constant" in errors[0]["message"]


def test_ramp_continues_large_and_small_steps_within_a_thousandth_of_the_step(client):
    windows = [
        [1e6 - 3e4 * (9 - k) for k in range(10)],
        [-0.5 + 1e-6 * k for k in range(3)],
        [123.0 - 0.37 * k for k in range(50)],
    ]
    outputs = predict(client, "ramp", windows)["outputs"]
    for w, out in zip(windows, outputs):
        step = w[-1] - w[-2]
        assert abs(out - (w[-1] + step)) <= 1e-3 * abs(step)


# --- copy-first, sum-first-two -------------------------------------------------------------------


def test_copy_first_keeps_the_first_value_against_a_repeated_one(client):
    inputs = [[0] + [94] * 19, [99] + [0] * 19, [50, 51], [7] + [8] * 10]
    assert predict(client, "copy-first", inputs)["outputs"] == [0, 99, 50, 7]


def test_sum_first_two_answers_integers_with_top_k(client):
    body = predict(client, "sum-first-two", [[40, 2, 77], [0, 0, 0], [100, 100, 100]], top_k=3)
    assert body["outputs"] == [42, 0, 200]
    assert all(isinstance(v, int) for v in body["outputs"])
    assert [t[0]["value"] for t in body["top_k"]] == [42, 0, 200]


def test_sum_first_two_every_possible_input_is_answered_as_recorded():
    """All 101**3 = 1,030,301 inputs, batched through the Predictor (the service's predict path): the share
    answered exactly is the one the manifest records (and GET /tasks shows), and meets its gate."""
    task = TASKS["sum-first-two"]
    cases = CASES["every_input"](task, None, 0, None)
    answers = Predictor.load(MODELS_DIR / "sum-first-two").predict(cases.inputs)["outputs"]
    assert len(answers) == 1_030_301
    wrong = np.flatnonzero(np.asarray(answers) != np.asarray(cases.truth))
    recorded = next(
        g for g in manifest_mod.load(MODELS_DIR / "sum-first-two")["gates"] if g["category"] == "every_input"
    )
    assert 1 - wrong.size / len(answers) == pytest.approx(recorded["value"], abs=1e-12)
    assert recorded["passed"] and recorded["value"] >= recorded["threshold"]


# --- the best constant output ------------------------------------------------------------------


def best_constant(task) -> np.ndarray:
    """The output that, repeated for every input, fits the training targets best: in encoded units, the
    most frequent class (as one-hot logits) or the median of a regression target (the L1 optimum)."""
    codec = codec_for(task)
    rng = np.random.default_rng(12345)
    width = codec.decoder.classes if hasattr(codec.decoder, "classes") else 1
    targets = []
    lo, hi = task.train_lengths
    for length in np.unique(np.linspace(lo, hi, 4).round().astype(int)):
        extra = {k: v for k in ("wrong", "repeated", "balanced") if (v := getattr(task.train, k))}
        x, y = (task.train_generate or task.generate)(rng, 512, int(length), **extra)
        _, ctx = codec.encode(Batch(x, np.full(len(x), x.shape[1])))
        targets.append(np.asarray(codec.encode_target(y, ctx)).ravel())
    targets = np.concatenate(targets)
    if width == 1:
        return np.array([np.median(targets)], dtype=np.float32)
    out = np.zeros(width, dtype=np.float32)
    out[np.bincount(targets, minlength=width).argmax()] = 1.0
    return out


def constant_model(src, dst, value: np.ndarray) -> None:
    """Copy a model folder, its ONNX model replaced by one answering `value` at every step of every row."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / manifest_mod.MANIFEST_FILE).read_text())
    inp, out = manifest["onnx"]["inputs"][0], manifest["onnx"]["outputs"][0]
    dtype = TensorProto.INT64 if inp["dtype"] == "int64" else TensorProto.FLOAT
    nodes = [
        helper.make_node("Shape", [inp["name"]], ["shape"]),
        helper.make_node("Slice", ["shape", "zero", "two"], ["batch_seq"]),
        helper.make_node("Concat", ["batch_seq", "width"], ["target"], axis=0),
        helper.make_node("Expand", ["value", "target"], [out["name"]]),
    ]
    inits = [
        helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
        helper.make_tensor("two", TensorProto.INT64, [1], [2]),
        helper.make_tensor("width", TensorProto.INT64, [1], [len(value)]),
        helper.make_tensor("value", TensorProto.FLOAT, [1, 1, len(value)], value.tolist()),
    ]
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info(inp["name"], dtype, inp["shape"])],
        [helper.make_tensor_value_info(out["name"], TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", manifest["onnx"]["opset"])])
    onnx.save(model, str(dst / manifest_mod.MODEL_FILE))
    manifest["onnx"]["sha256"] = manifest_mod.sha256(dst / manifest_mod.MODEL_FILE)
    (dst / manifest_mod.MANIFEST_FILE).write_text(json.dumps(manifest))


@pytest.mark.parametrize("task", COMMITTED)
def test_best_constant_output_fails_a_gate(task, tmp_path):
    """The encoder and decoder only normalise and decode: an LSTM replaced by the single output that fits
    training best misses at least one category of the suite."""
    spec = TASKS[task]
    constant_model(MODELS_DIR / task, tmp_path / task, best_constant(spec))
    predictor = Predictor.load(tmp_path / task)
    measured = []
    for i, category in enumerate(spec.suite):
        rng = np.random.default_rng([2, DEFAULT_EVAL_SEED + 1, i])
        cases = CASES[category.cases](spec, rng, 500, category.steps, **category.params)
        if len(cases.inputs) > 50_000:  # exhaustive suites: a fixed sample of their cases is plenty here
            keep = np.random.default_rng(0).choice(len(cases.inputs), 50_000, replace=False)
            cases.inputs = [cases.inputs[j] for j in keep]
            cases.truth = [cases.truth[j] for j in keep]
        answers = predictor.predict(cases.inputs, steps=category.steps)["outputs"]
        value = METRICS[category.metric](answers, cases)
        measured.append((category.name, value))
        if not category.passes(value):
            return
    pytest.fail(f"{task}: a constant output passes every category: {measured}")


# --- the domain --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [t for t in COMMITTED if TASKS[t].domain["rule"] != "contract"])
def test_every_suite_case_is_in_the_domain_and_the_catalog_declares_the_manifests(name):
    """The suites measure inputs of the task's kind, by the service's own definition; and the committed
    manifest's domain is the catalog's (`evaluate --record` writes it)."""
    from service.core.domain import Domain

    task = TASKS[name]
    assert manifest_mod.load(MODELS_DIR / name)["domain"] == task.domain
    domain = Domain(task.domain)
    for category in task.suite:
        cases = CASES[category.cases](task, np.random.default_rng(0), 300, category.steps, **category.params)
        assert all(domain.check(cases.inputs)), (name, category.name)


def test_a_case_outside_the_domain_stops_the_evaluation(monkeypatch):
    from training.catalog import Category
    from training.evaluation import Cases, OutsideDomain, evaluate

    def uneven(task, rng, n, steps):
        return Cases([np.array([0.0, 1.0, 5.0]), np.array([0.0, 1.0, 2.0])], np.array([3.0, 3.0]), scale=np.ones(2))

    monkeypatch.setitem(CASES, "uneven", uneven)
    predictor = Predictor.load(MODELS_DIR / "ramp")
    category = Category("uneven", "uneven", "max_step_error", "<=", 1e-3)
    with pytest.raises(
        OutsideDomain, match=r"ramp uneven: 1 of 2 cases are outside the domain .* e\.g\. \[0\.0, 1\.0, 5\.0\]"
    ):
        evaluate(TASKS["ramp"], predictor, suite=(category,))
