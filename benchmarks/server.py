"""A gunicorn process on 127.0.0.1 for a benchmark: the project's gunicorn config, any app spec, a free port,
started and stopped by this process only."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
TOYSEQ_APP = "service:create_app()"
FLOOR_APP = "benchmarks.floor:create_app()"
READY_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`gunicorn -c python:service.gunicorn_conf APP`; `ready_seconds` is process start to /readyz 200."""

    def __init__(self, app: str, models_dir: Path, log_path: Path, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        base = {k: v for k, v in os.environ.items() if not k.startswith("TOYSEQ_") and k != "PROMETHEUS_MULTIPROC_DIR"}
        base.update({"PYTHONPATH": str(ROOT), "TOYSEQ_BIND": f"127.0.0.1:{self.port}",
                     "TOYSEQ_MODELS_DIR": str(models_dir), "TOYSEQ_WORKERS": "2", "TOYSEQ_THREADS": "1",
                     **{k: str(v) for k, v in (env or {}).items()}})
        self.started = time.perf_counter()
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf", app],
                                         cwd=ROOT, env=base, stdout=log, stderr=subprocess.STDOUT)
        self.ready_seconds = self._wait_ready()

    def _wait_ready(self) -> float:
        deadline = self.started + READY_TIMEOUT
        with requests.Session() as http:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"gunicorn exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
                try:
                    if http.get(self.url + "/readyz", timeout=1).status_code == 200:
                        return time.perf_counter() - self.started
                except requests.RequestException:  # not listening yet
                    pass
                time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"gunicorn not ready in {READY_TIMEOUT:.0f} s: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
