"""The request cost model and its budget: estimates grow with the work, the largest accepted request sits at the
budget, and the app refuses a request over it (422 naming TOYSEQ_MAX_REQUEST_SECONDS) before checking a value."""

from __future__ import annotations

import time

import orjson
import pytest

from service.core.cost import CostModel


def test_the_estimate_grows_with_every_dimension_of_the_work():
    small, big = CostModel(2_000), CostModel(100_000)
    base = small.seconds(10, 100)
    assert small.seconds(20, 200) > base and small.seconds(10, 200) > base and small.seconds(10, 100, 5) > base
    assert big.seconds(10, 100) > base  # a bigger model costs more per cell
    assert small.seconds(10, 100, 10) == pytest.approx(small.seconds(10, 100) * 10 - 9 * small.ns_per_request * 1e-9)


@pytest.mark.parametrize("length,steps", [(7, 1000), (1000, None), (20, None), (50, 200)])
def test_largest_is_the_most_that_fits_the_budget(length, steps):
    model = CostModel(85_000)
    rows = model.largest(1.0, length, steps)
    assert rows >= 1
    assert model.seconds(rows, rows * length, steps) <= 1.0 < model.seconds(rows + 1, (rows + 1) * length, steps)


def test_a_request_over_the_budget_is_refused_naming_the_limit(make_client):
    client = make_client(max_request_seconds=0.5)
    body = orjson.dumps({"inputs": [[1, 2, 3, 4, 5, 6, 7]] * 2000, "steps": 1000})
    r = client.post("/tasks/arith-next/predict", data=body, content_type="application/json")
    assert r.status_code == 422 and r.mimetype == "application/problem+json"
    problem = r.get_json()
    assert problem["type"].endswith(":over-budget") and "TOYSEQ_MAX_REQUEST_SECONDS" in problem["detail"]
    assert problem["limit_seconds"] == 0.5 and problem["estimated_seconds"] > 0.5
    assert "send at most" in problem["detail"] or "steps per request" in problem["detail"]


def test_the_budget_is_checked_before_the_values(make_client):
    """8 MB of bad values over the budget: refused on its shape, without explaining a value."""
    client = make_client(max_request_seconds=0.5)
    row = "[" + ",".join(["1000"] * 1000) + "]"
    body = ('{"inputs": [' + ",".join([row] * 1500) + "]}").encode()
    started = time.thread_time()  # CPU of this thread, where the test client runs the app: load-independent
    r = client.post("/tasks/echo/predict", data=body, content_type="application/json")
    assert r.status_code == 422 and r.get_json()["type"].endswith(":over-budget"), r.get_json()["detail"][:200]
    assert time.thread_time() - started < 1.0


def test_most_steps_fits_the_budget():
    model = CostModel(85_000)
    steps = model.most_steps(0.5, 7)
    assert steps >= 1 and model.seconds(1, 7, steps) <= 0.5 < model.seconds(1, 7, steps + 1)


def test_a_request_within_the_budget_is_answered(make_client):
    client = make_client(max_request_seconds=0.5)
    r = client.post(
        "/tasks/arith-next/predict",
        data=b'{"inputs": [[1, 2, 3, 4, 5, 6, 7]], "steps": 3}',
        content_type="application/json",
    )
    assert r.status_code == 200 and r.get_json()["outputs"] == [[8, 9, 10]]


def test_many_bad_values_within_the_budget_are_refused_quickly(make_client):
    """Regression: every bad value was explained (and a message built) before the 422."""
    client = make_client(max_request_seconds=100)
    body = ('{"inputs": [' + ",".join(["[" + ",".join(["1e9"] * 50) + "]"] * 10_000) + "]}").encode()
    started = time.thread_time()
    r = client.post("/tasks/ramp/predict", data=body, content_type="application/json")
    seconds = time.thread_time() - started
    problem = r.get_json()
    assert r.status_code == 422 and len(problem["errors"]) == 20 and problem["errors_total"] > 20
    assert seconds < 1.0, seconds
