"""Shared fixtures: the real app from the factory on the committed models, and real gunicorn servers on
127.0.0.1 (a factory fixture, so tests can pass their own TOYSEQ_ settings or models)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks.harness.paths import MODELS_DIR, TASKS
from benchmarks.harness.server import Server
from service import create_app


@pytest.fixture(scope="session")
def tasks() -> list[str]:
    if not TASKS:
        pytest.skip("no committed models yet")
    return TASKS


@pytest.fixture(scope="session")
def models_copy(tmp_path_factory) -> Path:
    """A private copy of the committed models, so that training replacing one mid-run cannot change a test."""
    dest = tmp_path_factory.mktemp("models") / "models"
    dest.mkdir()
    for task in TASKS:
        shutil.copytree(MODELS_DIR / task, dest / task)
    return dest


@pytest.fixture(scope="session")
def app(models_copy):
    return create_app({"models_dir": str(models_copy)})


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def make_client(models_copy):
    """A test client for an app built with extra settings (e.g. {"api_key": "k"})."""

    def make(**settings):
        return create_app({"models_dir": str(models_copy), **settings}).test_client()

    return make


@pytest.fixture()
def gunicorn_server(tmp_path, models_copy):
    """Factory: gunicorn_server(env_overrides=None, models_dir=None, wait_ready=True) -> Server. Every
    server started is SIGTERMed (then killed if it hangs) at teardown."""
    started: list[Server] = []

    def start(env_overrides: dict | None = None, models_dir: Path | None = None, wait_ready: bool = True) -> Server:
        server = Server(
            tmp_path / "gunicorn.log",
            env_overrides,
            models_dir or models_copy,
            wait_path="/readyz" if wait_ready else "/healthz",
        )
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            try:
                server.stop()
            except subprocess.TimeoutExpired:
                pass
