"""The batch-scoring tests' helpers (tests/scoring/): the CLI as a subprocess, a committed task to score, and
valid rows with the Predictor's own answers for them."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from benchmarks.harness.paths import ROOT, TASKS
from service.core.predictor import Predictor

TIMEOUT = 120


def run_cli(*args: str, stdin: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "service.scoring", *map(str, args)],
        input=stdin,
        cwd=ROOT,
        capture_output=True,
        timeout=TIMEOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def pick(*wanted: str) -> str:
    for task in wanted:
        if task in TASKS:
            return task
    pytest.skip(f"none of {wanted} is committed yet")


def valid_sequences(predictor: Predictor, n: int, seed: int = 0) -> list[list]:
    spec = predictor.manifest["input"]
    rng = random.Random(seed)
    low, high = int(spec["low"]), int(spec["high"])
    top = min(spec["max_length"], spec["min_length"] + 20)
    return [[rng.randint(low, high) for _ in range(rng.randint(spec["min_length"], top))] for _ in range(n)]


def expected(predictor: Predictor, sequences: list, **options) -> list:
    return predictor.predict(predictor.codec.check(sequences), **options)["outputs"]
