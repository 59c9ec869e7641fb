"""benchmarks.scenarios.ab and benchmarks.scenarios.fronts end to end on tiny runs: ab serves two variants of the working tree (one with
a setting) side by side, each measured at one request size, with a ratio against the first; fronts loads the loop
worker and Granian on the trivial app. No speed asserted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from benchmarks.harness.paths import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install -y wrk)")
def test_ab_serves_each_variant_and_reports_its_ratio(tmp_path):
    out = tmp_path / "ab.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.scenarios.ab",
            "--variant",
            "a=.",
            "--variant",
            "b=.:TOYSEQ_LOG_LEVEL=warning",
        ]
        + ["--rounds", "1", "--seconds", "1", "--sequences", "1", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["variants"]["b"]["env"] == {"TOYSEQ_LOG_LEVEL": "warning"}
    for name in ("a", "b"):
        row = figures["variants"][name]["1"]
        assert row["requests_per_s"] > 0 and row["cpu_ms_per_request"] > 0 and row["errors"] == 0
    assert "vs a (range)" in done.stdout and "load average" in done.stdout


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install -y wrk)")
def test_fronts_loads_the_loop_worker_and_granian_on_the_trivial_app():
    from benchmarks.peers import envs

    if not envs.ready("granian"):
        pytest.skip("the granian virtualenv is not installed (python -m benchmarks.peers.envs granian)")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scenarios.fronts", "--rounds", "1", "--seconds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for front in ("loop", "granian"):
        line = next(row for row in done.stdout.splitlines() if row.startswith(front))
        assert float(line.split("median ")[1].split()[0]) > 0, line
