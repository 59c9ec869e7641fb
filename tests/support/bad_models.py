"""Ways to break a committed model folder, each with the words the refusal must contain (FAULTS): used by
tests/server/store/test_bad_models.py and the pod test with a corrupt model (tests/deploy/)."""

from __future__ import annotations

import json

from service.core import manifest as manifest_mod


def corrupt_with_matching_hash(folder):
    """Garbage bytes whose sha256 the manifest records: only onnxruntime can refuse them."""
    model = folder / manifest_mod.MODEL_FILE
    model.write_bytes(b"\x08\x07not an onnx model" * 50)
    path = folder / manifest_mod.MANIFEST_FILE
    m = json.loads(path.read_text())
    m["onnx"]["sha256"] = manifest_mod.sha256(model)
    path.write_text(json.dumps(m))


def truncated(folder):
    model = folder / manifest_mod.MODEL_FILE
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])


def wrong_sha(folder):
    path = folder / manifest_mod.MANIFEST_FILE
    m = json.loads(path.read_text())
    m["onnx"]["sha256"] = "0" * 64
    path.write_text(json.dumps(m))


def missing_model(folder):
    (folder / manifest_mod.MODEL_FILE).unlink()


def schema_version(folder):
    path = folder / manifest_mod.MANIFEST_FILE
    m = json.loads(path.read_text())
    m["schema_version"] = 99
    path.write_text(json.dumps(m))


def not_json(folder):
    (folder / manifest_mod.MANIFEST_FILE).write_text("{ nope")


FAULTS = {
    "corrupt-onnx": (corrupt_with_matching_hash, "onnxruntime cannot load"),
    "truncated-onnx": (truncated, "sha256"),
    "wrong-sha256": (wrong_sha, "sha256"),
    "missing-model": (missing_model, "model.onnx is missing"),
    "unknown-schema-version": (schema_version, "unknown schema_version 99"),
    "manifest-not-json": (not_json, "not readable JSON"),
}
