"""Training: export parity on a tiny model, determinism, and never committing a model that fails."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from service.core import manifest as manifest_mod
from training import export
from training.__main__ import main as cli
from training.catalog import TASKS
from training.config import ModelConfig
from training.pipeline import REJECTED, train_task
from training.trainer import Trainer


def tiny(name, steps=60, **train):
    """A task with a model small enough to train in seconds (a ReLU head, too, where the task has one)."""
    task = TASKS[name]
    cfg = dataclasses.replace(task.train, steps=steps, eval_every=20, val_size=256, **train)
    return dataclasses.replace(task, model=ModelConfig(embed=4, hidden=8, head=8 if task.model.head else 0), train=cfg)


@pytest.mark.parametrize("name", ["echo-lag", "ramp", "sum-first-two"])
def test_export_matches_torch_at_other_shapes(name, tmp_path):
    task = tiny(name, steps=20)
    model = Trainer(task, seed=1, progress=False).run().model
    path = tmp_path / "model.onnx"
    export.export(model, task, path)
    assert export.check_parity(model, task, path) <= export.PARITY_TOLERANCE
    shapes = {b for b, _ in export.parity_shapes(task)}
    assert export.EXPORT_BATCH not in shapes  # parity is proven away from the traced batch size


def test_parity_check_catches_a_mismatch(tmp_path):
    task = tiny("last-value", steps=20)
    model = Trainer(task, seed=1, progress=False).run().model
    path = tmp_path / "model.onnx"
    export.export(model, task, path)
    with torch.no_grad():
        model.head.bias += 0.01  # the ONNX file now holds different weights than the torch model
    with pytest.raises(export.ParityError, match="differs from torch"):
        export.check_parity(model, task, path)


def test_same_seed_same_metrics(tmp_path):
    task = tiny("alternating", steps=200)
    runs = [train_task(task, tmp_path / f"run{i}", seed=3, eval_seed=11, n=300, progress=False) for i in range(2)]
    assert runs[0]["gates"] == runs[1]["gates"]
    a, b = (json.loads((tmp_path / f"run{i}/alternating/manifest.json").read_text()) for i in range(2))
    assert a["onnx"]["sha256"] == b["onnx"]["sha256"]


def test_different_seed_different_model():
    task = tiny("last-value", steps=30)
    a, b = (Trainer(task, seed=s, progress=False).run() for s in (1, 2))
    assert a.best_val_loss != b.best_val_loss


def test_a_failing_model_never_replaces_the_committed_one(tmp_path):
    good = tmp_path / "models"
    row = train_task(tiny("alternating", steps=200), good, seed=0, eval_seed=5, n=200, progress=False)
    assert row["passed"], row["gates"]
    before = manifest_mod.sha256(good / "alternating" / "model.onnx")
    failing = tiny("alternating", steps=1, lr=1e-6)
    row = train_task(failing, good, seed=0, eval_seed=5, n=200, progress=False)
    assert not row["passed"]
    assert manifest_mod.sha256(good / "alternating" / "model.onnx") == before
    assert (good / REJECTED / "alternating" / "manifest.json").exists()
    assert [p.name for p in manifest_mod.discover(good)] == ["alternating"]


def test_manifest_schema_rejects_broken_manifests(tmp_path):
    row = train_task(tiny("last-value", steps=20), tmp_path, seed=0, eval_seed=5, n=100, progress=False)
    folder = tmp_path / ("last-value" if row["passed"] else f"{REJECTED}/last-value")
    good = json.loads((folder / "manifest.json").read_text())
    manifest_mod.validate(good)
    breaks = [
        (lambda m: m.pop("encoder"), "'encoder' is a required property"),
        (lambda m: m.update(schema_version=99), "schema_version"),
        (lambda m: m["input"].update(dtype="complex"), "/input/dtype"),
        (lambda m: m["onnx"].update(sha256="xyz"), "/onnx/sha256"),
        (lambda m: m["gates"][0].pop("eval_seed"), "eval_seed"),
    ]
    for breaker, words in breaks:
        broken = json.loads(json.dumps(good))
        breaker(broken)
        with pytest.raises(manifest_mod.ManifestError, match=words):
            manifest_mod.validate(broken)


def test_cli_rejects_unknown_tasks(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["train", "no-such-task"])
    assert exit_.value.code == 2
    assert "unknown task(s) no-such-task" in capsys.readouterr().err


def test_generators_honour_their_contracts():
    rng = np.random.default_rng(0)
    for task in TASKS.values():
        lo, hi = task.input["min_length"], task.input["max_length"]
        x, y = task.generate(rng, 16, lo if lo == hi else (lo + hi) // 2)
        assert len(x) == len(y) == 16
        if task.input["low"] is not None:
            assert x.min() >= task.input["low"] and x.max() <= task.input["high"]
    x, y = TASKS["arith-next"].generate(rng, 2000, 7, wrong=1.0)
    step = y - x[:, 6]  # the last value is never the wrong one
    clean = x[:, 6:] - step[:, None] * (6 - np.arange(7))
    assert ((x != clean).sum(axis=1) <= 1).all() and ((x != clean).sum(axis=1) == 1).mean() > 0.99


def test_misses_report_locates_each_wrong_value():
    from benchmarks.harness.paths import MODELS_DIR
    from service.core.predictor import Predictor
    from training.experiments import misses

    found = misses.located_misses(Predictor.load(MODELS_DIR / "arith-next"), np.random.default_rng(5), 3000)
    assert 2900 < len(found["pos"]) <= 3000  # one wrong value per window, constant windows dropped
    assert set(found["pos"].tolist()) == set(range(6)) and ((found["where"] >= 0) & (found["where"] <= 1)).all()
    report = misses.table(found)
    assert f"{found['exact'].mean():.4f} exact over {len(found['pos'])}" in report and len(report.splitlines()) == 8


def test_margins_experiment_scores_every_input(capsys):
    """A few steps of sum-first-two with a small ReLU head: every one of the 101**3 inputs is scored."""
    from training.experiments import margins

    margins.main(["--steps", "5", "--batch", "32", "--head", "8"])
    report = json.loads(capsys.readouterr().out)
    assert report["inputs"] == 101**3 and report["model"]["head"] == 8 and report["steps"] == 5
    assert report["wrong"] <= report["margin_under_1"] <= report["margin_under_2"] <= report["inputs"]
    assert report["wrong"] > 0  # five steps cannot learn it: the count is real


def test_train_without_torch_names_the_extra_to_install(tmp_path):
    """`python -m training train` on a machine with only the service installed: a hint, not a traceback."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"  # torch absent: importing it raises ModuleNotFoundError
        "from training.__main__ import main\n"
        f"sys.exit(main(['train', 'alternating', '--models-dir', {str(tmp_path)!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "pip install -e '.[training]'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "alternating").exists()


def test_every_task_pickles_for_the_worker_processes():
    """`train --jobs 2` sends each Task to a spawned worker: a lambda in a Task would never arrive there
    (the pool's feeder thread fails, and the task is silently never trained)."""
    import pickle

    for task in TASKS.values():
        assert pickle.loads(pickle.dumps(task)).name == task.name


def test_every_worked_example_is_right():
    """The example each task shows (manifest, GET /tasks, the playground) is its own right answer."""
    from collections import Counter

    from training.catalog import TASKS

    def continued(x):  # ramp and arith-next: the last value plus the step most of the window agrees on
        return x[-1] + Counter(np.diff(x).round(9).tolist()).most_common(1)[0][0]

    for task in TASKS.values():
        x = np.array(task.example["input"])
        expected = (task.truth or continued)(x)
        assert np.allclose(np.asarray(expected), np.asarray(task.example["output"])), task.name


def test_training_help_names_each_subcommand():
    done = subprocess.run([sys.executable, "-m", "training", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "re-measure committed models" in done.stdout and "train, export and gate-check" in done.stdout


@pytest.mark.slow
def test_train_reports_each_task_as_it_finishes(tmp_path, capsys):
    """`python -m training train` says what it starts, each task as it finishes (not in submission order), then
    each gate and a total."""
    assert cli(["train", "alternating", "second-element", "--models-dir", str(tmp_path), "-n", "200"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("training 2 tasks, 2 at a time (costliest first: ")
    done = [line for line in out if " of 2 done, " in line]
    assert len(done) == 2 and {line.split(":")[0] for line in done} == {"alternating", "second-element"}
    assert out[-1].startswith("trained 2 task(s) in ")
    assert (tmp_path / "alternating" / "manifest.json").exists()
    assert json.loads((tmp_path / "alternating" / "manifest.json").read_text())["domain"] == {"rule": "alternating"}
