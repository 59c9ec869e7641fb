"""The manifest: the contract between training and serving, one `models/<task>/manifest.json` per task.

Training writes it (see training/export.py); the service reads nothing else about a model. `load`
refuses a manifest that does not match SCHEMA, or whose model.onnx does not hash to its sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import jsonschema

from . import domain
from .codec import RelativeEncoder

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"


class ManifestError(Exception):
    """A model folder that cannot be served, with the reason."""


_number = {"type": "number"}
_nullable_number = {"type": ["number", "null"]}
_tensor = {
    "type": "object",
    "required": ["name", "dtype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "dtype": {"enum": ["int64", "float32"]},
        "shape": {"type": "array", "items": {"type": ["string", "integer"]}},
    },
}
_positions = {
    "positions": {"enum": ["last", "all"]},
    "skip": {"type": "integer", "minimum": 0},
}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "toyseq model manifest",
    "type": "object",
    "required": [
        "schema_version",
        "task",
        "description",
        "example",
        "input",
        "output",
        "encoder",
        "decoder",
        "domain",
        "onnx",
        "gates",
        "training",
        "versions",
    ],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "task": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$"},
        "description": {"type": "string", "minLength": 1},
        "example": {"type": "object", "required": ["input", "output"]},
        "input": {
            "type": "object",
            "required": ["dtype", "low", "high", "min_length", "max_length"],
            "properties": {
                "dtype": {"enum": ["int", "float"]},
                "low": _nullable_number,
                "high": _nullable_number,
                "min_length": {"type": "integer", "minimum": 1},
                "max_length": {"type": "integer", "minimum": 1},
                "min_relative_step": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "output": {
            "type": "object",
            "required": ["kind", "dtype", "rollout", "classes"],
            "properties": {
                "kind": {"enum": ["value", "echo", "next"]},
                "dtype": {"enum": ["int", "float"]},
                "rollout": {"type": "boolean"},
                "classes": {"type": "boolean"},
            },
        },
        "encoder": {
            "type": "object",
            "required": ["type"],
            "oneOf": [
                {
                    "properties": {
                        "type": {"const": "index"},
                        "low": {"type": "integer"},
                        "classes": {"type": "integer", "minimum": 2},
                    },
                    "required": ["low", "classes"],
                },
                {
                    "properties": {
                        "type": {"const": "relative"},
                        "basis": {"enum": list(RelativeEncoder.BASES)},
                        "min_scale": _number,
                        "signed": {"type": "boolean"},
                    }
                },
                {"properties": {"type": {"const": "robust-step"}, "clip": _number, "log_scale": _number}},
            ],
        },
        "decoder": {
            "type": "object",
            "required": ["type", "positions"],
            "oneOf": [
                {
                    "properties": {
                        "type": {"const": "class"},
                        "low": {"type": "integer"},
                        "classes": {"type": "integer", "minimum": 2},
                        **_positions,
                    },
                    "required": ["low", "classes"],
                },
                {
                    "properties": {
                        "type": {"const": "relative"},
                        "round": {"type": "boolean"},
                        "quantum": {"type": "number", "minimum": 0},
                        **_positions,
                    }
                },
                {
                    "properties": {
                        "type": {"const": "wrong-position"},
                        "classes": {"type": "integer", "minimum": 2},
                        **_positions,
                    },
                    "required": ["classes"],
                },
            ],
        },
        # which accepted inputs are of the task's kind (service/core/domain.py): answers say in_domain
        "domain": domain.SCHEMA,
        "onnx": {
            "type": "object",
            "required": ["file", "sha256", "opset", "inputs", "outputs"],
            "properties": {
                "file": {"const": MODEL_FILE},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "opset": {"type": "integer"},
                "inputs": {"type": "array", "items": _tensor, "minItems": 1, "maxItems": 1},
                "outputs": {"type": "array", "items": _tensor, "minItems": 1, "maxItems": 1},
            },
        },
        "gates": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["metric", "op", "threshold", "value", "n", "eval_seed", "passed"],
                "properties": {
                    "category": {"type": "string"},  # the suite's name for the cases measured
                    "steps": {"type": ["integer", "null"]},  # a rollout of this many steps, else one answer
                    "metric": {"type": "string"},
                    "op": {"enum": [">=", "<="]},
                    "threshold": _number,
                    "value": _number,
                    "n": {"type": "integer", "minimum": 1},
                    "eval_seed": {"type": "integer"},
                    "passed": {"type": "boolean"},
                },
            },
        },
        "training": {"type": "object", "required": ["seed", "config"]},
        "versions": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def validate(manifest: dict) -> None:
    """Raise ManifestError naming the first place where `manifest` breaks the schema."""
    try:
        jsonschema.validate(manifest, SCHEMA)
    except jsonschema.ValidationError as err:
        where = "/" + "/".join(map(str, err.absolute_path))
        raise ManifestError(f"manifest {where}: {err.message}") from None
    spec = manifest["input"]
    if spec["min_length"] > spec["max_length"]:
        raise ManifestError("manifest /input: min_length is greater than max_length")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(folder: Path, check_hash: bool = True) -> dict:
    """Read and validate `folder`/manifest.json; check that model.onnx matches its sha256."""
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{MANIFEST_FILE} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ManifestError(f"{MANIFEST_FILE} is not readable JSON: {err}") from None
    if isinstance(manifest, dict) and manifest.get("schema_version") != SCHEMA_VERSION:
        raise ManifestError(
            f"unknown schema_version {manifest.get('schema_version')!r} (this service reads {SCHEMA_VERSION})"
        )
    validate(manifest)
    if manifest["task"] != folder.name:
        raise ManifestError(f"manifest names task {manifest['task']!r} but its folder is {folder.name!r}")
    model = folder / MODEL_FILE
    if check_hash:
        if not model.is_file():
            raise ManifestError(f"{MODEL_FILE} is missing")
        actual = sha256(model)
        if actual != manifest["onnx"]["sha256"]:
            raise ManifestError(
                f"{MODEL_FILE} sha256 {actual[:12]}... does not match the manifest's "
                f"{manifest['onnx']['sha256'][:12]}..."
            )
    return manifest


# The committed models, beside the `service` package: in a source tree or an editable install (pip install -e .)
PACKAGED_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def default_models_dir() -> Path:
    """Where the models are when no folder is named: $TOYSEQ_MODELS_DIR, else ./models when the working directory
    has one, else the models folder beside the package (so that tools work from any directory)."""
    named = os.environ.get("TOYSEQ_MODELS_DIR")
    if named:
        return Path(named)
    here = Path("models")
    return here if here.is_dir() or not PACKAGED_MODELS_DIR.is_dir() else PACKAGED_MODELS_DIR


def discover(models_dir: Path) -> list[Path]:
    """Every model folder under `models_dir`: a folder holding a manifest.json; its name is the task."""
    return sorted(p.parent for p in Path(models_dir).glob(f"*/{MANIFEST_FILE}"))
