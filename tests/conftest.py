"""Shared fixtures: the real app from the factory on the committed models, and real gunicorn servers on
127.0.0.1 (a factory fixture, so tests can pass their own TOYSEQ_ settings or models)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from service import create_app, manifest as manifest_mod

from .paths import MODELS_DIR, ROOT

START_TIMEOUT = 60.0  # seconds for gunicorn to load every model in every worker
STOP_TIMEOUT = 40.0


def servable_tasks(models_dir: Path = MODELS_DIR) -> list[str]:
    """The committed tasks whose model passes its manifest checks (training may still be adding some)."""
    names = []
    for folder in manifest_mod.discover(models_dir):
        try:
            manifest_mod.load(folder)
        except manifest_mod.ManifestError:
            continue
        names.append(folder.name)
    return names


TASKS = servable_tasks()


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise


def server_env(port: int, env_overrides: dict | None, models_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOYSEQ_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({"PYTHONPATH": str(ROOT), "TOYSEQ_BIND": f"127.0.0.1:{port}", "TOYSEQ_MODELS_DIR": str(models_dir),
                "TOYSEQ_WORKERS": "2", "TOYSEQ_THREADS": "1"})
    env.update({k: str(v) for k, v in (env_overrides or {}).items()})
    return env


def start_gunicorn(log_dir: Path, env_overrides: dict | None = None, models_dir: Path = MODELS_DIR,
                   wait_ready: bool = True) -> Server:
    """Start `gunicorn -c python:service.gunicorn_conf 'service:create_app()'` on a free 127.0.0.1 port and
    wait (bounded) until it answers /healthz, and /readyz with 200 when `wait_ready`."""
    port = free_port()
    log_path = log_dir / f"gunicorn-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf",
                                 "service:create_app()"], cwd=ROOT, env=server_env(port, env_overrides, models_dir),
                                stdout=log, stderr=subprocess.STDOUT)
    server = Server(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + START_TIMEOUT
    path = "/readyz" if wait_ready else "/healthz"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{server.log()[-3000:]}")
        try:
            if requests.get(server.base_url + path, timeout=2).status_code == 200:
                return server
        except requests.RequestException:  # not listening yet, or a worker still booting
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"gunicorn not ready after {START_TIMEOUT}s:\n{server.log()[-3000:]}")


@pytest.fixture()
def gunicorn_server(tmp_path, models_copy):
    """Factory: gunicorn_server(env_overrides=None, models_dir=None, wait_ready=True) -> Server. Every
    server started is SIGTERMed (then killed if it hangs) at teardown."""
    started: list[Server] = []

    def start(env_overrides: dict | None = None, models_dir: Path | None = None, wait_ready: bool = True) -> Server:
        server = start_gunicorn(tmp_path, env_overrides, models_dir or models_copy, wait_ready)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            try:
                server.stop()
            except subprocess.TimeoutExpired:
                pass
