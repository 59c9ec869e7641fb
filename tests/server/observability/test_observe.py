"""The request path's bookkeeping: the middleware records each request, and the flushing thread (or a scrape,
or another log line, or the process exit) turns records into access lines and metric counts. Nothing is lost
and the log keeps its order."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import orjson

from benchmarks.harness.paths import MODELS_DIR, ROOT

# a script's start: an app on argv[1]'s models, its test client, and the first task with its worked example
APP = textwrap.dedent("""
    import logging, os, sys, time
    from service import create_app
    app = create_app({"models_dir": sys.argv[1]})
    client = app.test_client()
    task = sorted(app.extensions["toyseq"].registry.predictors)[0]
    example = app.extensions["toyseq"].registry.predictors[task].manifest["example"]["input"]
""")

SCRIPT = APP + textwrap.dedent("""
    for i in range(3):
        client.post(f"/tasks/{task}/predict", json={"inputs": [example]}, headers={"X-Request-ID": f"r{i}"})
    mode = sys.argv[2]
    if mode == "error-line":  # another toyseq line writes the pending access lines first
        logging.getLogger("toyseq.runtime").error("after three requests")
        os._exit(0)
    if mode == "timer":  # the flushing thread writes them within 50 ms
        time.sleep(0.5)
        os._exit(0)
    if mode == "exit":  # a normal exit writes them (atexit)
        sys.exit(0)
""")


def run(mode: str) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(MODELS_DIR), mode],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return [orjson.loads(line) for line in result.stderr.splitlines() if line.startswith(b"{")]


def access_ids(lines: list[dict]) -> list[str]:
    return [line["request_id"] for line in lines if line["logger"] == "toyseq.access"]


def test_access_lines_are_written_by_the_flushing_thread():
    assert access_ids(run("timer")) == ["r0", "r1", "r2"]


def test_access_lines_are_written_at_exit():
    assert access_ids(run("exit")) == ["r0", "r1", "r2"]


def test_access_lines_come_before_a_later_log_line():
    lines = run("error-line")
    order = [
        line.get("request_id", line["msg"])
        for line in lines
        if line["logger"] != "toyseq.runtime" or line["msg"] == "after three requests"
    ]
    assert order == ["r0", "r1", "r2", "after three requests"]
    access = [line for line in lines if line["logger"] == "toyseq.access"]
    assert all(line["status"] == 200 and line["duration_ms"] > 0 and line["bytes"] > 0 for line in access)


def test_metrics_count_every_request_of_the_scraping_worker(make_client, app, tasks):
    client = make_client()
    task = tasks[0]
    example = app.extensions["toyseq"].registry.predictors[task].manifest["example"]["input"]
    for n in (1, 2, 5):
        for _ in range(n):
            client.post(f"/tasks/{task}/predict", json={"inputs": [example, example]})
        text = client.get("/metrics").get_data(as_text=True)
        total = {1: 1, 2: 3, 5: 8}[n]
        assert f'toyseq_requests_total{{endpoint="predict.predict",status="200",task="{task}"}} {total}.0' in text
        assert f'toyseq_sequences_predicted_total{{task="{task}"}} {2 * total}.0' in text
        assert f'toyseq_request_duration_seconds_count{{endpoint="predict.predict",task="{task}"}} {total}.0' in text
    # the scrapes count too, from the next scrape on
    assert 'toyseq_requests_total{endpoint="health.prometheus",status="200",task=""} 2.0' in text


MULTIPROCESS_SCRIPT = APP + textwrap.dedent("""
    for _ in range(7):
        client.post(f"/tasks/{task}/predict", json={"inputs": [example] * 3})
    print(task)
    sys.exit(0)  # no scrape, no wait: the counts reach the worker's files at exit
""")


def test_a_worker_writes_its_last_counts_to_the_shared_files_at_exit(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS_SCRIPT, str(MODELS_DIR)],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    task = result.stdout.decode().split()[-1]
    read = (
        "import sys; from prometheus_client import CollectorRegistry, generate_latest, multiprocess; "
        "r = CollectorRegistry(); multiprocess.MultiProcessCollector(r); sys.stdout.write(generate_latest(r).decode())"
    )
    text = subprocess.run(
        [sys.executable, "-c", read], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env, check=True
    ).stdout
    assert f'toyseq_requests_total{{endpoint="predict.predict",status="200",task="{task}"}} 7.0' in text
    assert f'toyseq_sequences_predicted_total{{task="{task}"}} 21.0' in text
    assert f'toyseq_request_duration_seconds_count{{endpoint="predict.predict",task="{task}"}} 7.0' in text
