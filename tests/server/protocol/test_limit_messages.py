"""Every 422 over a configured limit names the setting behind it, and no message shows a Python repr
(operations.md: "a request over one gets a problem+json answer that names it")."""

from __future__ import annotations

import pytest

LIMITS = {"max_batch": 3, "max_steps": 5, "max_top_k": 2, "max_rollout_values": 8}


@pytest.fixture()
def small(make_client):
    return make_client(**LIMITS)


@pytest.mark.parametrize(
    ("task", "body", "setting"),
    [
        ("echo", {"inputs": [[1]] * 4}, "TOYSEQ_MAX_BATCH"),
        ("alternating", {"inputs": [[0, 1]], "steps": 6}, "TOYSEQ_MAX_STEPS"),
        ("last-value", {"inputs": [[1, 2]], "top_k": 3}, "TOYSEQ_MAX_TOP_K"),
        ("alternating", {"inputs": [[0, 1]] * 3, "steps": 5}, "TOYSEQ_MAX_ROLLOUT_VALUES"),
        ("arith-next", {"inputs": [[1, 2, 3, 4, 5, 6, 7]] * 3, "steps": 5}, "TOYSEQ_MAX_REQUEST_SECONDS"),
    ],
)
def test_a_limit_422_names_its_setting(make_client, task, body, setting):
    budget = {"max_request_seconds": 0.002} if setting == "TOYSEQ_MAX_REQUEST_SECONDS" else {}
    answer = make_client(**LIMITS, **budget).post(f"/tasks/{task}/predict", json=body)
    assert answer.status_code == 422 and setting in answer.get_json()["detail"], answer.get_json()


def test_v2_batch_limit_names_its_setting(small):
    body = {"inputs": [{"name": "input", "datatype": "INT64", "shape": [4, 1], "data": [1, 2, 3, 4]}]}
    answer = small.post("/v2/models/echo/infer", json=body)
    assert answer.status_code == 400 and "TOYSEQ_MAX_BATCH" in answer.get_json()["error"]


def test_a_top_k_over_the_class_count_names_no_setting(client):
    """last-value has 100 classes: 101 is over the task, not over a setting."""
    detail = client.post("/tasks/last-value/predict", json={"inputs": [[1]], "top_k": 101}).get_json()["detail"]
    assert "101 is outside 1..100" in detail and "TOYSEQ_" not in detail


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (None, "expected an integer, got null"),
        (True, "expected an integer, got a boolean (true)"),
        ("abc", 'expected an integer, got a string "abc"'),
        ({"a": 1}, 'expected an integer, got an object {"a": 1}'),
    ],
)
def test_messages_spell_values_as_json_not_python(client, value, said):
    detail = client.post("/tasks/echo/predict", json={"inputs": [[1, value]]}).get_json()["detail"]
    assert detail == f"/inputs/0/1: {said}"
    for python in ("None", "True", "'abc'", "{'a'"):
        assert python not in detail


def test_v2_messages_spell_values_as_json(client):
    body = {"inputs": [{"name": "input", "datatype": "INT64", "shape": None, "data": [1]}]}
    error = client.post("/v2/models/echo/infer", json=body).get_json()["error"]
    assert error.endswith("got null") and "None" not in error
    body["inputs"][0].update(shape=[1, 1], datatype="INT8")
    assert 'got "INT8"' in client.post("/v2/models/echo/infer", json=body).get_json()["error"]


def test_problems_beyond_those_listed_are_counted_in_the_total(client):
    """300 bad values: 20 listed, errors_total the real 300 (not 21, with the count itself cut off), and the
    detail says how many more; a body cut short by the check keeps saying so."""
    body = client.post("/tasks/echo/predict", json={"inputs": [[100] * 300]}).get_json()
    assert len(body["errors"]) == 20 and body["errors_total"] == 300
    assert body["detail"].endswith("(and 280 more)") and "more problems" not in str(body["errors"])
    stopped = client.post("/tasks/arith-next/predict", json={"inputs": [[1, 2, 3, 4, 5, 6, 10**9 + 1]] * 30})
    errors = stopped.get_json()["errors"]
    assert len(errors) == 20 and errors[-1]["message"].startswith("checking stopped after 20 problems")
    v2 = client.post(
        "/v2/models/echo/infer",
        json={"inputs": [{"name": "input", "datatype": "INT64", "shape": [1, 300], "data": [100] * 300}]},
    )
    assert v2.status_code == 400 and v2.get_json()["error"].endswith("(and 280 more)")


def test_one_is_singular(make_client):
    """ "1 sequence, 1,000 values", "5 steps x 1 sequence": never "1 sequences"."""
    over = make_client(max_request_seconds=0.0001).post("/tasks/echo/predict", json={"inputs": [[1] * 1000]})
    assert "(1 sequence, 1000 values on task echo)" in over.get_json()["detail"]
    rolled = make_client(max_rollout_values=3).post("/tasks/alternating/predict", json={"inputs": [[1, 0]], "steps": 5})
    assert "5 steps x 1 sequence exceed" in rolled.get_json()["detail"]
