"""gunicorn started as an operator starts it and run until it exits (start-up refusals: bad settings, strict
mode with a bad model)."""

from __future__ import annotations

import subprocess

from benchmarks.harness.paths import ROOT
from benchmarks.harness.server import free_port, gunicorn_command, server_env


def run_gunicorn(env: dict, tmp_path) -> subprocess.CompletedProcess:
    """gunicorn as an operator starts it, TMPDIR in tmp_path so that a left-over metrics folder shows."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.run(
        gunicorn_command(),
        cwd=ROOT,
        env=server_env(free_port(), {"TMPDIR": str(tmp_path / "tmp"), **env}, tmp_path / "models"),
        capture_output=True,
        text=True,
        timeout=120,
    )
