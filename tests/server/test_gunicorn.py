"""End to end on a real gunicorn (2 workers, 127.0.0.1): answers, metrics summed over workers, structured
access logs, graceful SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import requests

from benchmarks.harness.paths import TASKS
from service.core import manifest as manifest_mod

pytestmark = pytest.mark.slow


def manifest(models, task):
    return manifest_mod.load(models / task, check_hash=False)


def access_lines(server) -> list[dict]:
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "toyseq.access"]


def counter(metrics_text: str, name: str, **labels) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture()
def server(gunicorn_server, tasks):
    return gunicorn_server()


def test_predict_rollout_top_k_and_readiness(server, models_copy):
    url = server.base_url
    ready = requests.get(url + "/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["tasks"] == sorted(TASKS)
    for task in TASKS:
        m = manifest(models_copy, task)
        body = {"inputs": [m["example"]["input"]]}
        if m["output"]["rollout"]:
            body["steps"] = 3
        if m["output"]["classes"] and m["output"]["kind"] != "echo":
            body["top_k"] = 2
        r = requests.post(f"{url}/tasks/{task}/predict", json=body, headers={"X-Request-ID": f"e2e-{task}"}, timeout=10)
        assert r.status_code == 200 and r.headers["X-Request-ID"] == f"e2e-{task}"
        answer = r.json()
        assert answer["model"]["sha256"] == m["onnx"]["sha256"]
        first = answer["outputs"][0]
        if "steps" in body:
            assert len(first) == 3
            first = first[0]
        if "top_k" in body:
            assert len(answer["top_k"][0]) == 2 and answer["top_k"][0][0]["value"] == first
        assert first == m["example"]["output"] or m["output"]["dtype"] == "float"
    bad = requests.post(
        f"{url}/tasks/{TASKS[0]}/predict",
        data=b'{"inputs": [[',
        timeout=10,
        headers={"Content-Type": "application/json"},
    )
    assert bad.status_code == 400 and bad.headers["Content-Type"] == "application/problem+json"
    time.sleep(0.2)
    logged = {line["request_id"]: line for line in access_lines(server)}
    for task in TASKS:
        line = logged[f"e2e-{task}"]
        assert line["task"] == task and line["status"] == 200 and line["duration_ms"] > 0


def test_metrics_are_summed_over_both_workers(server, models_copy):
    task = TASKS[0]
    example = manifest(models_copy, task)["example"]["input"]
    n, batch = 120, 3
    body = orjson.dumps({"inputs": [example] * batch})

    # /readyz answered once one worker was up; a worker can take every connection before the other
    # has loaded its models, so both must be up before the load.
    deadline = time.monotonic() + 60
    while server.log().count('"models loaded"') < 2 and time.monotonic() < deadline:
        time.sleep(0.05)

    def one(_):
        with requests.post(
            f"{server.base_url}/tasks/{task}/predict",
            data=body,
            timeout=10,
            headers={"Content-Type": "application/json"},
        ) as r:
            return r.status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, range(n)))
    assert statuses == [200] * n
    time.sleep(0.2)
    served_by = {line["pid"] for line in access_lines(server) if line["path"] == f"/tasks/{task}/predict"}
    assert len(served_by) == 2, "both workers should have answered"
    text = requests.get(server.base_url + "/metrics", timeout=10).text
    assert counter(text, "toyseq_requests_total", endpoint="predict.predict", task=task, status="200") == n
    assert counter(text, "toyseq_sequences_predicted_total", task=task) == n * batch
    assert counter(text, "toyseq_request_duration_seconds_count", endpoint="predict.predict", task=task) == n


def test_sigterm_lets_the_request_in_flight_finish(server, models_copy):
    task = TASKS[0]
    example = manifest(models_copy, task)["example"]["input"]
    body = orjson.dumps({"inputs": [example] * 20})
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        head = (
            f"POST /tasks/{task}/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Request-ID: in-flight\r\n\r\n"
        ).encode()
        sock.sendall(head + body[:5])  # a worker is now reading this request's body
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert server.proc.poll() is None, "gunicorn must wait for the request in flight"
        sock.sendall(body[5:])
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    status, _, payload = response.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200"), response[:300]
    assert len(orjson.loads(payload)["outputs"]) == 20
    assert server.proc.wait(30) == 0
    # Every line on stderr is one JSON object, gunicorn's own included (here: its shutdown lines).
    lines = server.log().splitlines()
    assert [line for line in lines if not line.startswith("{")] == []
    own = [json.loads(line) for line in lines if '"logger":"gunicorn.error"' in line]
    assert any("Handling signal" in line["msg"] for line in own), own
