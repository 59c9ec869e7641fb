"""The models a benchmark runs on: the committed ones where they exist, else untrained stand-ins.

A stand-in is the task's SeqModel with its catalog architecture and fresh random weights, exported with
training.export and given a real manifest. Its shapes, operators and so its cost are those of the trained
model, so speed figures hold; its answers are meaningless, which no benchmark looks at. Every result says
which kind of model it came from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from service.core import manifest as manifest_mod

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = ROOT / "models"


def untrained(task_name: str, seed: int = 0):
    """A torch SeqModel with the task's architecture and random weights (eval mode)."""
    from training.catalog import TASKS
    from training.model import SeqModel, out_width

    task = TASKS[task_name]
    torch.manual_seed(seed)
    return SeqModel(task.encoder, out_width(task.decoder), task.model).eval()


def export_folder(model, task_name: str, folder: Path) -> Path:
    """Export a torch SeqModel to `folder` (model.onnx + manifest.json) the way training does."""
    from training import export
    from training.catalog import TASKS

    task = TASKS[task_name]
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / manifest_mod.MODEL_FILE
    export.export(model, task, onnx_path)
    # The schema wants at least one gate: say plainly that this model was never evaluated.
    gates = [
        {
            "metric": "untrained stand-in for benchmarks",
            "op": ">=",
            "threshold": 1,
            "value": 0,
            "n": 1,
            "eval_seed": 0,
            "passed": False,
        }
    ]
    draft = export.manifest(task, onnx_path, gates, {"seed": 0, "config": {"untrained": True}})
    manifest_mod.validate(draft)
    (folder / manifest_mod.MANIFEST_FILE).write_text(json.dumps(draft, indent=2) + "\n")
    return folder


def prepare(tasks: list[str], dest: Path, models_dir: Path = MODELS_DIR) -> dict[str, str]:
    """Fill `dest` with one folder per task; return task -> "trained" or "untrained stand-in"."""
    dest.mkdir(parents=True, exist_ok=True)
    kinds = {}
    for name in tasks:
        source = models_dir / name
        try:
            manifest_mod.load(source)
            shutil.copytree(source, dest / name, dirs_exist_ok=True)
            kinds[name] = "trained"
        except manifest_mod.ManifestError:  # not trained yet (or being replaced): same cost, random weights
            torch.set_num_threads(1)
            export_folder(untrained(name), name, dest / name)
            kinds[name] = "untrained stand-in"
    return kinds
