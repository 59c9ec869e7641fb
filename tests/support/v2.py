"""The Open Inference Protocol clients' shared expectations (tests/server/http/test_v2_clients.py and
tests/server/grpc/test_grpc.py): the API key the servers run with, the rows each task gets, and the native
endpoint's answer as the v2 tensors it must equal."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import requests

from benchmarks.harness.paths import MODELS_DIR, ROOT
from service.core import manifest as manifest_mod

API_KEY = "v2-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
KSERVE_PYTHON = Path(os.environ.get("TOYSEQ_KSERVE_PYTHON") or ROOT / ".venv-kserve" / "bin" / "python")


@functools.cache  # loading checks the manifest: ~0.2 s each
def manifest(task) -> dict:
    return manifest_mod.load(MODELS_DIR / task, check_hash=False)


def rows_for(task, n=2) -> list[list]:
    m = manifest(task)
    base = m["example"]["input"]
    high = m["input"].get("high")
    rows = [list(base)]
    for k in range(1, n):
        shifted = [v + k for v in base]
        rows.append(shifted if high is None or max(shifted) <= high else list(reversed(base)))
    return rows


def input_dtype(task) -> str:
    return "INT64" if manifest(task)["input"]["dtype"] == "int" else "FP64"


def options(task) -> dict:
    """The toyseq parameters a task takes: a rollout or a top-k, else none."""
    m = manifest(task)
    if m["output"]["rollout"]:
        return {"steps": 3}
    if m["output"]["classes"] and m["output"]["kind"] != "echo":
        return {"top_k": 2}
    return {}


def native(url: str, task: str, rows: list, params: dict) -> dict:
    r = requests.post(f"{url}/tasks/{task}/predict", json={"inputs": rows, **params}, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def expected_tensors(answer: dict, params: dict) -> dict[str, list]:
    """The native answer as the v2 output tensors it must equal."""
    extras = (
        {"wrong_position": [-1 if p is None else p for p in answer["wrong_position"]]}
        if "wrong_position" in answer
        else {}
    )
    if "steps" in params:
        return {"output": [row[0] for row in answer["outputs"]], **extras, "rollout": answer["outputs"]}
    tensors = {"output": answer["outputs"], **extras}
    if "top_k" in params:
        tensors["top_k_values"] = [[t["value"] for t in row] for row in answer["top_k"]]
        tensors["top_k_p"] = [[t["p"] for t in row] for row in answer["top_k"]]
    return tensors
