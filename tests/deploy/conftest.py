"""Fixtures of the container and pod tests: the container engine, and the image built once per module from the
Dockerfile (never pulling: the base image must be local)."""

from __future__ import annotations

import time

import pytest

from benchmarks.harness.paths import ROOT
from tests.support.container import BUILD_TIMEOUT, IMAGE, Engine, find_engine


@pytest.fixture(scope="module")
def engine() -> Engine:
    return find_engine()


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    # Never pull: the base must be local. podman: docker format keeps HEALTHCHECK, which OCI format drops.
    extra = ["--pull=never", "--format", "docker"] if engine.name == "podman" else ["--pull=false"]
    started = time.monotonic()
    engine.run("build", *extra, "-t", IMAGE, str(ROOT), timeout=BUILD_TIMEOUT)
    print(f"\n{engine.name} build: {time.monotonic() - started:.1f} s")
    return IMAGE
