"""Train, export, check and evaluate one task; replace its committed model only when every gate passes."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from service.core import manifest as manifest_mod
from service.core.predictor import Predictor, SessionConfig

from . import export, plot
from .catalog import Task
from .evaluation import DEFAULT_N, evaluate
from .trainer import Trainer

REJECTED = ".rejected"  # models/.rejected/<task>: kept for inspection, never served (not a task folder)


def train_task(
    task: Task, models_dir: Path, seed: int, eval_seed: int, n: int = DEFAULT_N, progress: bool = True
) -> dict:
    """Returns a summary row; a model that fails a gate goes to models/.rejected/<task>, never to models/<task>."""
    torch.set_num_threads(1)  # one thread: bit-for-bit repeatable, and `--jobs` runs tasks side by side
    result = Trainer(task, seed, progress).run()
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{task.name}-", dir=models_dir))
    try:
        onnx_path = staging / manifest_mod.MODEL_FILE
        export.export(result.model, task, onnx_path)
        parity = export.check_parity(result.model, task, onnx_path)
        training = {
            "seed": seed,
            "config": {"model": asdict(task.model), "train": asdict(task.train)},
            "steps": result.steps,
            "seconds": round(result.seconds, 1),
            "best_val_loss": result.best_val_loss,
            "onnx_parity_max_rel_diff": parity,
        }
        draft = export.manifest(task, onnx_path, [], training)
        session = SessionConfig().session(onnx_path)
        gates = evaluate(task, Predictor(draft, session), eval_seed, n)
        draft["gates"] = gates
        manifest_mod.validate(draft)
        (staging / manifest_mod.MANIFEST_FILE).write_text(json.dumps(draft, indent=2) + "\n")
        passed = all(g["passed"] for g in gates)
        plot.loss_curve(
            result.history,
            f"{task.name}: {result.steps} steps, {result.seconds:.0f} s, gates {'passed' if passed else 'FAILED'}",
            staging / "training.png",
        )
        target = models_dir / task.name if passed else models_dir / REJECTED / task.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(staging), str(target))
        return {
            "task": task.name,
            "passed": passed,
            "gates": gates,
            "steps": result.steps,
            "seconds": result.seconds,
            "saved_to": str(target),
        }
    finally:
        shutil.rmtree(staging, ignore_errors=True)
