"""gunicorn on 127.0.0.1 for tests and benchmarks: the project's gunicorn config, any app spec, a free
port, started by this process and stopped by it (SIGTERM, then kill if it hangs)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from .paths import MODELS_DIR, ROOT

TOYSEQ_APP = "service:create_app()"
FLOOR_APP = "benchmarks.reference.floor:create_app()"
GUNICORN_CONF = "python:service.server.gunicorn_conf"
READY_TIMEOUT = 90.0  # seconds for gunicorn to load every model in every worker on a busy machine
STOP_TIMEOUT = 40.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(port: int, env_overrides: dict | None = None, models_dir: Path = MODELS_DIR, root: Path = ROOT) -> dict:
    """This process's environment without any TOYSEQ_ setting, then the test's: 2 workers x 1 thread, gRPC off
    (servers in tests must not all take port 8001; Server(grpc=True) serves it on a free port)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOYSEQ_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        {
            "PYTHONPATH": str(root),
            "TOYSEQ_BIND": f"127.0.0.1:{port}",
            "TOYSEQ_MODELS_DIR": str(models_dir),
            "TOYSEQ_WORKERS": "2",
            "TOYSEQ_THREADS": "1",
            "TOYSEQ_GRPC_BIND": "",
        }
    )
    env.update({k: str(v) for k, v in (env_overrides or {}).items()})
    return env


def gunicorn_conf(root: Path = ROOT) -> str:
    """The tree's gunicorn config (older trees, as benchmarks.scenarios.regression serves them, kept it in service/)."""
    return GUNICORN_CONF if (root / "service" / "server").is_dir() else "python:service.gunicorn_conf"


def gunicorn_command(app: str = TOYSEQ_APP, root: Path = ROOT) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", gunicorn_conf(root), app]


class Server:
    """`gunicorn -c python:service.server.gunicorn_conf APP`, waited for until `wait_path` answers 200
    (at most READY_TIMEOUT); `ready_seconds` is process start to that answer. grpc=True also serves the Open
    Inference Protocol over gRPC on a free port, `grpc_port` (`grpc_target` is host:port)."""

    def __init__(
        self,
        log_path: Path,
        env: dict | None = None,
        models_dir: Path = MODELS_DIR,
        app: str = TOYSEQ_APP,
        wait_path: str | None = "/readyz",
        root: Path = ROOT,
        grpc: bool = False,
    ):
        self.port = free_port()
        self.url = self.base_url = f"http://127.0.0.1:{self.port}"
        self.grpc_port = free_port() if grpc else None
        self.grpc_target = f"127.0.0.1:{self.grpc_port}" if grpc else None
        if grpc:
            env = {"TOYSEQ_GRPC_BIND": self.grpc_target, **(env or {})}
        self.log_path = log_path
        self.started = time.perf_counter()
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                gunicorn_command(app, root),
                cwd=root,
                env=server_env(self.port, env, models_dir, root),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.ready_seconds = self._wait(wait_path) if wait_path else 0.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait(self, path: str) -> float:
        deadline = self.started + READY_TIMEOUT
        with requests.Session() as http:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
                try:
                    if http.get(self.url + path, timeout=2).status_code == 200:
                        return time.perf_counter() - self.started
                except requests.RequestException:  # not listening yet, or a worker still booting
                    pass
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"gunicorn not ready in {READY_TIMEOUT:.0f} s:\n{self.log()[-3000:]}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait for the exit code; a server that hangs is killed and TimeoutExpired raised."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        except subprocess.TimeoutExpired:
            pass
