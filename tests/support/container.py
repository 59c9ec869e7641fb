"""The container engine for the image tests (tests/deploy/): podman or docker, whichever exists and works,
and the image's name and time limits. The `engine` and `image` fixtures are in tests/deploy/conftest.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BASE_IMAGE = "python:3.11-slim"
IMAGE = "localhost/toyseq:test"
BUILD_TIMEOUT = 360
READY_TIMEOUT = 90
COMMAND_TIMEOUT = 60
PODMAN_CONF = Path(os.environ.get("TMPDIR") or "/tmp") / "ocitest" / "containers.conf"


class Engine:
    """The podman or docker command line, with the environment podman needs on this machine."""

    def __init__(self, name: str):
        self.name = name
        self.env = dict(os.environ)
        if name == "podman" and PODMAN_CONF.exists():
            self.env["CONTAINERS_CONF"] = str(PODMAN_CONF)

    def run(self, *args: str, timeout: float = COMMAND_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([self.name, *args], capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{self.name} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def image_size(self, image: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


def find_engine() -> Engine:
    """The first usable engine; skips, saying why, when none is."""
    found = [name for name in ("podman", "docker") if shutil.which(name)]
    if not found:
        pytest.skip("neither podman nor docker is installed (on this machine: bash ../shared/container/prepare.sh)")
    engine = Engine(found[0])
    if engine.run("info", check=False, timeout=COMMAND_TIMEOUT).returncode != 0:
        pytest.skip(f"{engine.name} is installed but not usable (`{engine.name} info` fails; no daemon?)")
    if engine.run("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        pytest.skip(
            f"base image {BASE_IMAGE} is missing and builds never pull "
            "(on this machine: bash ../shared/container/prepare.sh builds a local stand-in)"
        )
    return engine
