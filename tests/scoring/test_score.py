"""Batch scoring: the CLI `python -m service.scoring` run as a subprocess, the Python API, and
remote mode against a real gunicorn. Expected answers come from Predictor.predict on the same rows."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from benchmarks.harness.load import cli_peak_rss_mib
from benchmarks.harness.paths import ROOT
from benchmarks.harness.server import Server
from service.core.predictor import Predictor
from service.scoring.cli import score_rows
from service.scoring.client import Client, ServiceUnavailable
from tests.support.scoring import TIMEOUT, expected, pick, run_cli, valid_sequences


@pytest.fixture(scope="module")
def task() -> str:
    """A committed task with variable-length inputs, preferring one whose output is a list."""
    return pick("echo-lag", "echo", "alternating", "last-value", "copy-first")


def jsonl(lines: list) -> bytes:
    return b"".join(orjson.dumps(x) + b"\n" for x in lines)


def parse_jsonl(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines()]


@pytest.fixture(scope="module")
def predictor(models_copy, task) -> Predictor:
    return Predictor.load(models_copy / task)


def test_jsonl_file_round_trip_keeps_order_and_ids(tmp_path, models_copy, task, predictor):
    seqs = valid_sequences(predictor, 500)
    rows = [{"inputs": s, "id": f"r{i}"} if i % 3 else s for i, s in enumerate(seqs)]
    (tmp_path / "in.jsonl").write_bytes(jsonl(rows))
    out = tmp_path / "out.jsonl"
    # a small chunk size makes order across many parallel chunks matter
    done = run_cli(task, tmp_path / "in.jsonl", "-o", out, "--models-dir", models_copy, "--chunk-rows", 37)
    assert done.returncode == 0, done.stderr
    answers = parse_jsonl(out.read_bytes())
    assert [a.get("id") for a in answers] == [f"r{i}" if i % 3 else None for i in range(len(seqs))]
    assert [a["output"] for a in answers] == expected(predictor, seqs)
    assert b"500 rows, 0 errors" in done.stderr


def test_csv_stdin_to_stdout_round_trip(models_copy, task, predictor):
    seqs = valid_sequences(predictor, 300, seed=1)
    buffer = io.StringIO()
    csv.writer(buffer).writerows(seqs)
    done = run_cli(task, "-", "--format", "csv", "--models-dir", models_copy, stdin=buffer.getvalue().encode())
    assert done.returncode == 0, done.stderr
    got = list(csv.reader(io.StringIO(done.stdout.decode())))
    want = [o if isinstance(o, list) else [o] for o in expected(predictor, seqs)]
    assert got == [[str(v) for v in row] for row in want]


def test_bad_rows_are_reported_with_their_line_number_and_do_not_stop_the_job(models_copy, task, predictor):
    good = valid_sequences(predictor, 6, seed=2)
    high = int(predictor.manifest["input"]["high"])
    lines = [
        orjson.dumps(good[0]),  # line 1
        b"",  # line 2: blank, skipped
        orjson.dumps({"inputs": good[1], "id": 7}),  # line 3
        orjson.dumps([good[2][0], high + 1] + good[2][2:]),  # line 4: value out of range at /1
        b"{not json",  # line 5
        orjson.dumps({"inputs": [], "id": "empty"}),  # line 6: too short
        orjson.dumps("a string"),  # line 7
        orjson.dumps(good[3]),  # line 8
    ]
    done = run_cli(task, "--models-dir", models_copy, "--chunk-rows", 3, stdin=b"\n".join(lines) + b"\n")
    assert done.returncode == 1, done.stderr
    answers = parse_jsonl(done.stdout)
    assert len(answers) == 7
    assert [a["output"] for a in (answers[0], answers[1], answers[6])] == expected(
        predictor, [good[0], good[1], good[3]]
    )
    assert answers[1]["id"] == 7
    assert answers[2]["error"].startswith(f"line 4: /1: {high + 1} is outside")
    assert answers[3]["error"].startswith("line 5: invalid JSON")
    assert answers[4]["id"] == "empty" and answers[4]["error"].startswith("line 6: /inputs: length 0 is outside")
    assert answers[5]["error"].startswith("line 7: expected a JSON array")
    assert b"7 rows, 4 errors" in done.stderr
    tolerant = run_cli(task, "--models-dir", models_copy, "--allow-errors", stdin=b"\n".join(lines) + b"\n")
    assert tolerant.returncode == 0 and tolerant.stdout == done.stdout


def test_chunk_checked_at_once_still_names_each_bad_row(models_copy, task, predictor):
    """More bad rows in one chunk than an InputError lists (20): each still gets its own error."""
    seqs = valid_sequences(predictor, 200, seed=3)
    bad = set(range(0, 200, 4))
    rows = [["x"] if i in bad else s for i, s in enumerate(seqs)]
    done = run_cli(task, "--models-dir", models_copy, stdin=jsonl(rows))
    answers = parse_jsonl(done.stdout)
    assert done.returncode == 1
    assert [i for i, a in enumerate(answers) if "error" in a] == sorted(bad)
    assert all(
        answers[i]["error"].startswith(f"line {i + 1}: ") and "/0: expected an integer" in answers[i]["error"]
        for i in bad
    )
    assert [a["output"] for a in answers if "output" in a] == expected(predictor, [s for s in rows if s != ["x"]])


def test_line_numbers_hold_across_chunks_read_in_one_pass_and_line_by_line(models_copy, task, predictor):
    """Chunks of plain arrays are parsed in one pass, others line by line (blank lines, objects): either
    way a bad row's error names its own line, and the answers stay in order."""
    seqs = valid_sequences(predictor, 16, seed=8)
    high = int(predictor.manifest["input"]["high"])
    lines = [orjson.dumps(s) for s in seqs]
    lines[2] = b"   "  # line 3: blank, in a chunk read line by line
    lines[8] = orjson.dumps([high + 1] + seqs[8][1:])  # line 9: a bad value in a chunk of arrays
    lines[13] = orjson.dumps({"inputs": [high + 1] + seqs[13][1:], "id": "b"})  # line 14: in an object
    done = run_cli(task, "--models-dir", models_copy, "--chunk-rows", 4, stdin=b"\n".join(lines) + b"\n")
    assert done.returncode == 1, done.stderr
    answers = parse_jsonl(done.stdout)
    good = [i for i in range(16) if i not in (2, 8, 13)]
    assert len(answers) == 15
    assert [a["output"] for a in answers if "output" in a] == expected(predictor, [seqs[i] for i in good])
    errors = [a for a in answers if "error" in a]
    assert errors[0]["error"].startswith(f"line 9: /0: {high + 1} is outside")
    assert errors[1]["id"] == "b" and errors[1]["error"].startswith(f"line 14: /inputs/0: {high + 1} is outside")


def test_jobs_that_cannot_run_exit_2_in_one_line_without_usage_text(tmp_path, models_copy, task):
    """Usage text is for usage errors; an unknown task, a missing file or no models folder is one line."""
    unknown = run_cli("no-such-task", "--models-dir", models_copy, stdin=b"[1]\n")
    assert unknown.returncode == 2
    assert (
        unknown.stderr.startswith(b"toyseq-score: error: unknown task 'no-such-task'")
        and b"usage:" not in unknown.stderr
    )
    assert unknown.stderr.count(b"\n") == 1 and task.encode() in unknown.stderr  # names the known tasks
    missing = run_cli(task, tmp_path / "missing.jsonl", "--models-dir", models_copy)
    assert missing.returncode == 2 and b"cannot read" in missing.stderr and b"usage:" not in missing.stderr
    assert unknown.stdout == missing.stdout == b""
    nowhere = run_cli(task, env={"TOYSEQ_MODELS_DIR": str(tmp_path / "none")}, stdin=b"[1]\n")
    assert nowhere.returncode == 2 and f"no models folder at {tmp_path / 'none'}".encode() in nowhere.stderr
    assert b"usage:" not in nowhere.stderr
    # a real usage error still shows how to call it
    bad = run_cli(task, "--concurrency", 0, stdin=b"[1]\n")
    assert bad.returncode == 2 and bad.stderr.startswith(b"usage: toyseq-score")


def test_in_process_scoring_works_from_any_directory(tmp_path, predictor, task):
    """Without --models-dir or ./models, the models installed beside the package are used."""
    seqs = valid_sequences(predictor, 3, seed=5)
    rows = b"".join(orjson.dumps(s) + b"\n" for s in seqs)
    done = subprocess.run(
        [sys.executable, "-m", "service.scoring", task],
        input=rows,
        cwd=tmp_path,
        capture_output=True,
        timeout=TIMEOUT,
        env={k: v for k, v in os.environ.items() if k != "TOYSEQ_MODELS_DIR"} | {"PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert [a["output"] for a in parse_jsonl(done.stdout)] == expected(predictor, seqs)
    assert b"toyseq-score: " + task.encode() + b": 3 rows, 0 errors in " in done.stderr
    assert b"rows/s" not in done.stderr  # 3 rows measure start-up, not a rate


def test_the_summary_counts_in_words():
    from service.scoring.cli import summary

    assert summary(1, 1, 0.01) == "1 row, 1 error in 0.01 s"
    assert summary(4, 0, 3.0) == "4 rows, 0 errors in 3.00 s"  # no "(1 rows/s)": too few to measure a rate
    assert summary(50_000, 2, 1.0) == "50,000 rows, 2 errors in 1.00 s (50,000 rows/s)"


def test_steps_on_a_task_without_rollout_is_a_usage_error(models_copy):
    task = pick("second-element", "echo-lag", "copy-first", "last-value", "sum-first-two", "echo")
    done = run_cli(task, "--steps", 2, "--models-dir", models_copy, stdin=b"[1]\n")
    assert done.returncode == 2 and b"steps is not supported" in done.stderr


def test_python_api_matches_predictor(models_copy, task, predictor):
    seqs = valid_sequences(predictor, 50, seed=4)
    answers = list(score_rows(task, seqs + [[]], models_dir=models_copy))
    assert [a.output for a in answers[:-1]] == expected(predictor, seqs)
    assert answers[-1].output is None and answers[-1].error.startswith("line 51: length 0")


def test_rollout_and_top_k_match_predictor(models_copy):
    task = pick("alternating", "arith-next", "ramp")
    predictor = Predictor.load(models_copy / task)
    seqs = valid_sequences(predictor, 40, seed=5)
    answers = list(score_rows(task, seqs, models_dir=models_copy, steps=3))
    assert [a.output for a in answers] == expected(predictor, seqs, steps=3)
    if predictor.codec.is_class:
        tops = [a.top_k for a in score_rows(task, seqs, models_dir=models_copy, top_k=2)]
        assert tops == predictor.predict(predictor.codec.check(seqs), top_k=2)["top_k"]


# --- memory ---------------------------------------------------------------------------------------


def peak_rss_mib(path: Path, task: str, models_dir: Path) -> float:
    return cli_peak_rss_mib(task, str(path), "-o", os.devnull, "--models-dir", str(models_dir), timeout=TIMEOUT)


@pytest.mark.slow
def test_memory_stays_flat_on_a_large_file(tmp_path, models_copy, task, predictor):
    spec = predictor.manifest["input"]
    short = [
        [int(spec["low"])] * spec["min_length"],
        [int(spec["high"])] * min(spec["max_length"], spec["min_length"] + 3),
    ]
    block = jsonl([short[i % 2] for i in range(10_000)])
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    # 100k rows already reach the steady state (buffers of every in-flight chunk and thread allocated);
    # 200k more rows held in memory would cost well over 60 MiB.
    small.write_bytes(block * 10)  # 100k rows
    large.write_bytes(block * 30)  # 300k rows
    started = time.monotonic()
    small_rss = peak_rss_mib(small, task, models_copy)
    large_rss = peak_rss_mib(large, task, models_copy)
    assert large_rss - small_rss < 20, (small_rss, large_rss)
    assert time.monotonic() - started < TIMEOUT


# --- remote mode ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_remote_mode_matches_local_mode(tmp_path, gunicorn_server, models_copy, task, predictor):
    # chunks sized by the advertised max_batch, then halved on 413 by the small body limit
    server = gunicorn_server({"TOYSEQ_API_KEY": "secret", "TOYSEQ_MAX_BATCH": "50", "TOYSEQ_MAX_BODY_BYTES": "1200"})
    seqs = valid_sequences(predictor, 400, seed=6)
    rows = [{"inputs": s, "id": i} for i, s in enumerate(seqs)]
    for i in (5, 6, 120, 399):  # bad rows inside chunks the service refuses with 422
        rows[i] = {"inputs": [int(predictor.manifest["input"]["high"]) + 1], "id": i}
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl(rows))
    local = run_cli(task, path, "--models-dir", models_copy)
    remote = run_cli(task, path, "--url", server.base_url, "--concurrency", 3, env={"TOYSEQ_API_KEY": "secret"})
    assert remote.returncode == local.returncode == 1, remote.stderr
    assert remote.stdout == local.stdout
    assert [a["id"] for a in parse_jsonl(remote.stdout) if "error" in a] == [5, 6, 120, 399]
    refused = run_cli(task, path, "--url", server.base_url, env={"TOYSEQ_API_KEY": "wrong"})
    assert refused.returncode == 2 and b"401" in refused.stderr


@pytest.mark.slow
def test_remote_chunks_over_the_cost_budget_are_halved(tmp_path, gunicorn_server, models_copy, task, predictor):
    """A budget that a few dozen rows fill: the chunk of 400 is refused as over budget, sent again in halves."""
    server = gunicorn_server({"TOYSEQ_MAX_REQUEST_SECONDS": "0.003"})
    seqs = valid_sequences(predictor, 400, seed=8)
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl([{"inputs": s, "id": i} for i, s in enumerate(seqs)]))
    local = run_cli(task, path, "--models-dir", models_copy)
    remote = run_cli(task, path, "--url", server.base_url, "--concurrency", 2)
    assert remote.returncode == local.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout


@pytest.mark.slow
def test_client_retries_until_the_service_comes_up(tmp_path, task, models_copy, predictor):
    """Connection refused at first: the client backs off and succeeds once gunicorn listens."""
    seqs = valid_sequences(predictor, 3, seed=7)
    with Server(tmp_path / "gunicorn.log", models_dir=models_copy, wait_path=None) as server:
        client = Client(server.url, retries=12, backoff=0.25, max_backoff=2.0)
        assert client.predict(task, seqs)["outputs"] == expected(predictor, seqs)
    with pytest.raises(ServiceUnavailable):
        Client(server.url, retries=1, backoff=0.01).predict(task, seqs)


@pytest.mark.slow
def test_a_row_over_the_body_limit_is_an_error_row_not_the_end_of_the_job(
    tmp_path, gunicorn_server, models_copy, task, predictor
):
    """One row larger than TOYSEQ_MAX_BODY_BYTES alone: the chunks around it are halved down to it, then it is
    reported in place (413 in its error) and every other row is scored."""
    server = gunicorn_server({"TOYSEQ_MAX_BODY_BYTES": "1200"})
    seqs = valid_sequences(predictor, 60, seed=9)
    high = int(predictor.manifest["input"]["high"])
    seqs[17] = [high] * min(predictor.manifest["input"]["max_length"], 1000)  # ~3,000 bytes of JSON
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl([{"inputs": s, "id": i} for i, s in enumerate(seqs)]))
    remote = run_cli(task, path, "--url", server.base_url)
    assert remote.returncode == 1, remote.stderr
    answers = parse_jsonl(remote.stdout)
    assert [a["id"] for a in answers] == list(range(60))
    assert [a["id"] for a in answers if "error" in a] == [17]
    assert "too large for the service: HTTP 413" in answers[17]["error"] and "line 18" in answers[17]["error"]
    good = [s for i, s in enumerate(seqs) if i != 17]
    assert [a["output"] for a in answers if "error" not in a] == expected(predictor, good)
    allowed = run_cli(task, path, "--url", server.base_url, "--allow-errors")
    assert allowed.returncode == 0 and allowed.stdout == remote.stdout


def test_parquet_is_never_written_to_a_terminal(tmp_path, models_copy, task):
    """stdout on a pseudo-terminal: refused with exit 2 before any row is read."""
    import pty

    pytest.importorskip("pyarrow")
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "service.scoring",
                task,
                str(tmp_path / "rows.parquet"),
                "--models-dir",
                models_copy,
            ],
            stdout=follower,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            timeout=TIMEOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 2 and b"stdout is a terminal: give -o FILE" in done.stderr


def _ramp_rows() -> bytes:
    return b"[1, 5, 2]\n[0.5, 0.75, 1.0]\n[3, 2, 9, 4]\n[1, 2, 3]\n"


def test_the_summary_counts_rows_outside_the_domain(models_copy):
    """The answers are written as always; the summary says how many had no meaning (in_domain false)."""
    done = run_cli("ramp", "--models-dir", models_copy, stdin=_ramp_rows())
    assert done.returncode == 0, done.stderr
    assert len(parse_jsonl(done.stdout)) == 4 and b"in_domain" not in done.stdout  # the output format is unchanged
    assert b"4 rows, 0 errors in " in done.stderr and b"; 2 rows outside the task's domain" in done.stderr
    clean = run_cli("ramp", "--models-dir", models_copy, stdin=b"[1, 2, 3]\n")
    assert b"outside" not in clean.stderr


@pytest.mark.slow
def test_the_summary_counts_rows_outside_the_domain_against_a_service(tmp_path, models_copy):
    with Server(tmp_path / "gunicorn.log", None, models_copy) as server:
        done = run_cli("ramp", "--url", server.url, stdin=_ramp_rows())
    assert done.returncode == 0, done.stderr
    assert b"; 2 rows outside the task's domain" in done.stderr
