"""Export a trained SeqModel to ONNX, prove it matches PyTorch, and write its manifest.

Inputs, outputs and dynamic axes are declared once below. Parity is checked with onnxruntime at batch
sizes and lengths other than the export example's, because a wrongly traced dynamic axis only shows up
at other shapes.
"""

from __future__ import annotations

import platform
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from service.core import manifest as manifest_mod
from service.core.codec import Batch, feature_width
from service.core.predictor import SessionConfig

from .catalog import Task
from .model import SeqModel, out_width
from .trainer import codec_for, rng_for

OPSET = 17
INPUT, OUTPUT = "x", "y"
PARITY_TOLERANCE = 1e-4  # of an output's size, at least 1: float32 logits of size 50 differ in their 6th digit
PARITY_STREAM = 3
EXPORT_BATCH = 2


class ExportError(Exception):
    """An exported model that must not be shipped; the subclass says which check it failed."""


class ShapeMismatch(ExportError):
    """onnxruntime's output shape differs from torch's at some input shape (a dynamic axis lost)."""


class ParityError(ExportError):
    """onnxruntime's outputs differ from torch's by more than PARITY_TOLERANCE x max(1, |torch's|)."""


def tensors(task: Task) -> tuple[dict, dict]:
    """The ONNX input and output as the manifest declares them."""
    indexed = task.encoder["type"] == "index"
    seq = "seq" if task.input["min_length"] != task.input["max_length"] else task.input["min_length"]
    inp = {
        "name": INPUT,
        "dtype": "int64" if indexed else "float32",
        "shape": ["batch", seq] if indexed else ["batch", seq, feature_width(task.encoder)],
    }
    out = {"name": OUTPUT, "dtype": "float32", "shape": ["batch", seq, out_width(task.decoder)]}
    return inp, out


def dynamic_axes(task: Task) -> dict:
    inp, out = tensors(task)
    return {spec["name"]: {i: d for i, d in enumerate(spec["shape"]) if isinstance(d, str)} for spec in (inp, out)}


def encoded(task: Task, batch: int, length: int, seed: int) -> np.ndarray:
    x, _ = task.generate(rng_for(PARITY_STREAM, seed), batch, length)
    feed, _ = codec_for(task).encode(Batch(x, np.full(len(x), x.shape[1])))
    return feed


def export(model: SeqModel, task: Task, path: Path) -> None:
    length = (
        task.input["max_length"]
        if task.input["min_length"] == task.input["max_length"]
        else min(task.input["min_length"] + 2, task.input["max_length"])
    )
    example = torch.from_numpy(encoded(task, EXPORT_BATCH, length, seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and LSTM batch-size notes
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes=dynamic_axes(task),
        )
    onnx.checker.check_model(str(path))


def parity_shapes(task: Task) -> list[tuple[int, int]]:
    lo, hi = task.input["min_length"], task.input["max_length"]
    lengths = sorted({lo, (lo + hi) // 2, min(hi, 300)})
    return [(batch, length) for batch in (1, 7, 64) for length in lengths]


def check_parity(model: SeqModel, task: Task, path: Path) -> float:
    """Max |onnxruntime - torch| / max(1, |torch|) over shapes other than the export example's; raise above
    PARITY_TOLERANCE."""
    session = SessionConfig().session(path)
    worst = 0.0
    for i, (batch, length) in enumerate(parity_shapes(task)):
        feed = encoded(task, batch, length, seed=i + 1)
        with torch.no_grad():
            expected = model(torch.from_numpy(feed)).numpy()
        actual = session.run([OUTPUT], {INPUT: feed})[0]
        if actual.shape != expected.shape:
            raise ShapeMismatch(
                f"{task.name}: onnxruntime output shape {actual.shape} != torch {expected.shape} "
                f"at batch {batch}, length {length}"
            )
        worst = max(worst, float((np.abs(actual - expected) / np.maximum(1.0, np.abs(expected))).max()))
    if worst > PARITY_TOLERANCE:
        raise ParityError(f"{task.name}: onnxruntime differs from torch by {worst:.2e} > {PARITY_TOLERANCE:.0e}")
    return worst


def versions() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
    }


def manifest(task: Task, path: Path, gates: list[dict], training: dict) -> dict:
    inp, out = tensors(task)
    return {
        "schema_version": manifest_mod.SCHEMA_VERSION,
        "task": task.name,
        "description": task.description,
        "example": task.example,
        "input": task.input,
        "output": {
            "kind": task.kind,
            "dtype": task.output_dtype,
            "rollout": task.rollout,
            "classes": task.decoder["type"] == "class",
        },
        "encoder": task.encoder,
        "decoder": task.decoder,
        "domain": task.domain,
        "onnx": {
            "file": manifest_mod.MODEL_FILE,
            "sha256": manifest_mod.sha256(path),
            "opset": OPSET,
            "inputs": [inp],
            "outputs": [out],
        },
        "gates": gates,
        "training": training,
        "versions": versions(),
        "created_by": f"python -m training train {task.name} --seed {training['seed']}",
    }
