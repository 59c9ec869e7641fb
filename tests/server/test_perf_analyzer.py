"""Triton's load generator, perf_analyzer (the binary from the tritonclient 2.47.0 wheel; tests/support/
perf_analyzer.py finds it, .ci/run installs it), measures every task over HTTP and over gRPC against real
gunicorn, unchanged: it reads the model configuration and metadata, sends the task's worked example as its input
data, and reports throughput and the server-side statistics (Triton's statistics extension, keyed by the integer
version it parses).

    .venv/bin/python -m pytest tests/server/test_perf_analyzer.py
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from benchmarks.harness.paths import MODELS_DIR, TASKS
from benchmarks.harness.server import Server
from service.core import manifest as manifest_mod
from tests.support import perf_analyzer

pytestmark = pytest.mark.slow
RUN_TIMEOUT = 120  # seconds for one bounded run (REQUESTS requests, plus start-up) on a busy machine
REQUESTS = 100  # perf_analyzer's --request-count: a fixed measurement, no waiting for stable windows


@pytest.fixture(scope="module")
def tool():
    found = perf_analyzer.find()
    if found.binary is None:
        pytest.skip(found.reason)
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("perf") / "gunicorn.log", grpc=True) as s:
        yield s


def input_data(task: str, folder) -> str:
    """perf_analyzer's --input-data file: the task's worked example as one request of batch 1 (random data would
    break the input contract, and a variable length needs a shape)."""
    example = manifest_mod.load(MODELS_DIR / task, check_hash=False)["example"]["input"]
    path = folder / f"{task}.json"
    path.write_text(json.dumps({"data": [{"input": {"content": example, "shape": [len(example)]}}]}))
    return str(path)


def run(tool, task: str, url: str, protocol: str, data: str) -> str:
    command = [tool.binary, "-m", task, "-u", url, "-i", protocol, "--input-data", data]
    # bounded: a fixed number of requests, whatever the spread (the machine is shared)
    command += ["--request-count", str(REQUESTS)]
    try:
        done = subprocess.run(command, env=tool.env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as err:  # say how far it got
        raise AssertionError(f"{' '.join(command)} ran past {RUN_TIMEOUT} s:\n{err.stdout}\n{err.stderr}") from None
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("task", TASKS)
def test_perf_analyzer_measures_every_task_with_server_side_statistics(tool, server, tmp_path, task, protocol):
    url = server.url.removeprefix("http://") if protocol == "http" else server.grpc_target
    out = run(tool, task, url, protocol, input_data(task, tmp_path))
    throughput = float(re.search(r"Throughput: ([\d.]+) infer/sec", out).group(1))
    assert throughput > 0 and f"Request count: {REQUESTS}" in out, out
    server_side = out.split("  Server: ", 1)[1]  # the statistics extension's counts over the measurement
    counts = {
        name: int(value)
        for name, value in re.findall(r"(Inference count|Execution count|Successful request count): (\d+)", server_side)
    }
    assert set(counts) == {"Inference count", "Execution count", "Successful request count"}, out
    # the server's own counts of what perf_analyzer sent, summed over both workers (another worker's last
    # requests may still be in its 50 ms flush when perf_analyzer reads them)
    assert REQUESTS // 2 <= min(counts.values()) <= max(counts.values()) <= REQUESTS, out
    assert re.search(r"compute infer \d+ usec", server_side), out
