"""Triton's own client examples (tests/support/triton_examples/, copied unchanged from triton-inference-server/
client) run against real gunicorn over HTTP and gRPC, changed only in the names that belong to Triton's example
repository: the model ("simple" becomes a task), the server's name ("triton") and how many models its index lists.

    .venv/bin/python -m pytest tests/server/test_triton_examples.py
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from benchmarks.harness.paths import ROOT, TASKS
from benchmarks.harness.server import Server

pytestmark = pytest.mark.slow
EXAMPLES = ROOT / "tests" / "support" / "triton_examples"
TASK = "echo-lag"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("tritonclient.grpc", reason="pip install -e '.[test]' (tritonclient[all])")
    with Server(tmp_path_factory.mktemp("examples") / "gunicorn.log", grpc=True) as s:
        yield s


def adapted(name: str, folder, count: int = len(TASKS)) -> str:
    """The example with Triton's example-repository names replaced by toyseq's; nothing else changes."""
    source = (EXAMPLES / f"{name}.py").read_text()
    changed = source.replace('model_name = "simple"', f'model_name = "{TASK}"').replace('== "triton"', '== "toyseq"')
    changed = re.sub(r"(get_model_repository_index\(\)(?:\.models)?\) != )\d+", rf"\g<1>{count}", changed)
    path = folder / f"{name}.py"
    path.write_text(changed)
    return str(path)


def run(script: str, url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, script, "-u", url], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_health_metadata_example_runs_unchanged(server, tmp_path, protocol):
    """Health, server and model metadata, Triton's wording for an unknown model and (gRPC) the model
    configuration."""
    url = server.url.removeprefix("http://") if protocol == "http" else server.grpc_target
    done = run(adapted(f"simple_{protocol}_health_metadata", tmp_path), url)
    assert done.returncode == 0 and "FAILED" not in done.stdout, done.stdout + done.stderr
    assert f"'{TASK}'" in done.stdout or f'name: "{TASK}"' in done.stdout  # it printed our model's metadata


@pytest.fixture(scope="module")
def control_server(tmp_path_factory, models_copy):
    pytest.importorskip("tritonclient.grpc", reason="pip install -e '.[test]' (tritonclient[all])")
    log = tmp_path_factory.mktemp("control") / "gunicorn.log"
    with Server(log, {"TOYSEQ_MODEL_CONTROL": "explicit"}, models_copy, grpc=True) as s:
        yield s


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_model_control_example_runs_unchanged(control_server, tmp_path, protocol):
    """The repository index, load, a load whose config is not JSON refused ("failed to load"), a load whose config
    sets max_batch_size, read back from the model configuration, unload, and an unknown model refused."""
    url = control_server.url.removeprefix("http://") if protocol == "http" else control_server.grpc_target
    done = run(adapted(f"simple_{protocol}_model_control", tmp_path), url)
    assert done.returncode == 0 and "PASS: model control" in done.stdout, done.stdout + done.stderr
