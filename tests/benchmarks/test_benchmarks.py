"""The benchmark scripts run end to end in smoke mode (tiny counts and durations), so they cannot rot.
Asserts every section is present with positive figures; speed targets belong to the full run, not to tests."""

from __future__ import annotations

import shutil
import subprocess
import sys

import orjson
import pytest

from benchmarks.harness.paths import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def positive_numbers(value, where=""):
    """Every number in the result tree, with its path, so a failure names the figure."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from positive_numbers(item, f"{where}/{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from positive_numbers(item, f"{where}/{i}")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield where, value


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install -y wrk)")
def test_smoke_run_writes_every_section(tmp_path):
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = orjson.loads((out / "results.json").read_bytes())
    for section in ("http", "runtime", "rollout", "scaling", "coldstart", "scoring"):
        assert section in results, section
    http = results["http"]
    for side in ("toyseq", "floor"):
        assert http["one_per_request"][side]["requests_per_s"] > 0
        assert http["one_per_request"][side]["errors"] == 0
    assert http["v2_one_per_request"]["v2"]["requests_per_s"] > 0
    assert http["v2_one_per_request"]["v2"]["errors"] == 0  # wrk counts non-2xx: the v2 body was answered
    assert http["batch_per_request"]["sequences_per_s"] > 0
    assert http["batch_per_request"]["errors"] == 0
    assert {row["batch"] for row in results["runtime"]["rows"]} >= {1}
    assert len(results["scaling"]["by_batch"]) >= 2 and len(results["scaling"]["by_length"]) >= 2
    measured = [
        (where, v)
        for where, v in positive_numbers(results)
        if where.startswith(("/http", "/runtime", "/rollout", "/scaling", "/coldstart", "/scoring"))
        and not where.endswith(("/errors", "/non_2xx", "/goal"))
    ]
    assert measured
    assert [m for m in measured if m[1] <= 0] == []
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| benchmark |" in done.stdout


def test_a_missed_goal_never_reads_as_met():
    from benchmarks.harness.report import ratio

    assert ratio(0.7988, 0.8) == "0.79x" and ratio(0.8, 0.8) == "0.80x" and ratio(0.7988) == "0.80x"


def test_missing_extras_are_named_instead_of_a_traceback(monkeypatch, capsys):
    import benchmarks.__main__ as entry

    monkeypatch.setattr(entry, "NEEDS", {"toyseq_no_such_module": "test"})
    assert entry.main(["--smoke"]) == 2
    assert "pip install -e '.[test]'" in capsys.readouterr().err


def test_ray_scoring_benchmark_smoke_run_prints_every_figure():
    """benchmarks.scenarios.ray_scoring end to end on a few rows (both engines really run; no speed asserted)."""
    pytest.importorskip("ray")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.scenarios.ray_scoring",
            "--rows",
            "3000",
            "--rounds",
            "1",
            "--formats",
            "parquet",
            "--timeout",
            "200",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for needle in (
        "one core, microseconds per row: read",
        "round 1 local:",
        "round 1 ray  :",
        "ray / local once started",
        "estimate, 100M rows of parquet",
        "per core the time goes to",
        "load average",
    ):
        assert needle in done.stdout, (needle, done.stdout)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install -y wrk)")
def test_regression_benchmark_serves_two_trees_and_reports_each_ratio(tmp_path):
    """HEAD against itself, one short round: both trees are exported and served, every scenario is measured
    on both sides (no model differs, so none is skipped) and a ratio comes out."""
    out = tmp_path / "regression.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scenarios.regression", "--before", "HEAD", "--rounds", "1", "--seconds", "1"]
        + ["--floor", "0", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    figures = orjson.loads(out.read_bytes())
    assert figures["skipped_tasks"] == []
    assert len(figures["scenarios"]) == 3
    for row in figures["scenarios"]:
        assert row["before_rps"] > 0 and row["after_rps"] > 0 and row["ratio_median"] > 0
        assert row["before_cpu_ms"] > 0 and row["after_cpu_ms"] > 0
    assert "after/before" in done.stdout and "load average" in done.stdout


@pytest.mark.skipif(
    shutil.which("h2load") is None, reason="h2load is not installed (apt-get install -y nghttp2-client)"
)
def test_grpc_modes_smoke_run_loads_both_grpc_servers():
    """benchmarks.scenarios.grpc_modes in smoke mode: h2load drives toyseq's gRPC server, sync, aio and loop, and every call
    it counts was answered (the same message was checked with a real gRPC call first); loop is grpc.aio on the
    worker's own event loop."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scenarios.grpc_modes", "--rounds", "1", "--seconds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| sync", "| aio", "| loop"))]
    assert len(rows) == 3, done.stdout
    for row in rows:
        one_rps, hundred_rps = (float(cell.replace(",", "")) for cell in (row.split("|")[2], row.split("|")[4]))
        assert one_rps > 0 and hundred_rps > 0, row
    assert "aio / sync, one sequence(s) per request:" in done.stdout
    assert "loop / sync, one sequence(s) per request:" in done.stdout


def test_grpc_load_frames_a_message_as_grpc_does():
    """The body h2load sends is one gRPC length-prefixed message: flag 0 (not compressed), 4-byte big-endian length."""
    from benchmarks.harness import h2load

    assert h2load.frame(b"abc") == b"\0\0\0\0\x03abc"


def test_check_benchmark_compares_two_revisions_in_one_process():
    """HEAD against this tree, one round of 10 rows: both sides load, answer alike and get a ratio."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scenarios.check", "--before", "HEAD", "--rounds", "1", "--rows", "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    for what in ("parse", "parse+batch", "end to end", "v2 binary"):
        assert what in done.stdout and "after/before" in done.stdout, done.stdout
