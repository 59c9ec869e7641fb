"""Fuzz: schemathesis generates requests from /openapi.json (valid and invalid) against the real app, and
hypothesis generates hostile predict bodies (wrong types, huge and tiny numbers, deep nesting, unicode,
empty and oversized batches). Zero 5xx; every error is problem+json with a status the document lists.

    TOYSEQ_FUZZ_EXAMPLES=500 .venv/bin/python -m pytest tests/reliability/test_fuzz.py   # a longer run
"""

from __future__ import annotations

import os
from collections import Counter

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.specs.openapi import checks as openapi_checks

from benchmarks.harness.load import ORACLES, PROBLEM
from service import create_app

EXAMPLES = int(os.environ.get("TOYSEQ_FUZZ_EXAMPLES", "") or 40)
MAX_BATCH = 20
MAX_BODY = 50_000
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


@pytest.fixture(scope="module")
def fuzz_app(models_copy):
    """Small limits, so generated batches and bodies can cross them."""
    return create_app(
        {
            "models_dir": str(models_copy),
            "max_batch": MAX_BATCH,
            "max_body_bytes": MAX_BODY,
            "max_steps": 50,
            "log_level": "warning",
        }
    )


@pytest.fixture(scope="module")
def openapi_schema(fuzz_app):
    return schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app)


def documented(document: dict, method: str, path: str) -> set[int]:
    operation = document["paths"][path][method.lower()]
    return {int(code) for code in operation["responses"]}


def operations(schema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


# schemathesis's pytest plugin does not run under pytest 9 yet: its strategies are driven with hypothesis here.
@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_openapi_fuzz_never_fails_the_contract(openapi_schema, mode):
    tried = []
    for operation in operations(openapi_schema):

        @given(case=operation.as_strategy(generation_mode=mode))
        @SETTINGS
        def check(case):
            # positive_data_acceptance is left out: the document gives one schema for every task, so a request
            # it allows can still break a task's own value range (a documented 422).
            response = case.call_and_validate(excluded_checks=[openapi_checks.positive_data_acceptance])
            assert response.status_code < 500, response.text[:300]
            if response.status_code >= 400:  # the v2 and KServe V1 protocols' errors are their own {"error": ...}
                expected = "application/json" if case.path.startswith(("/v2", "/v1")) else PROBLEM
                assert response.headers.get("content-type", [""])[0].startswith(expected), response.headers

        try:
            check()
        except Unsatisfiable:  # negative mode: no body and an unconstrained string name: nothing to get wrong
            assert mode is schemathesis.GenerationMode.NEGATIVE and operation.method.upper() == "GET", operation.label
            continue
        tried.append(operation.label)
    assert "POST /tasks/{name}/predict" in tried, tried


# --- hypothesis: hostile predict bodies through the Flask test client ----------------------------------

NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -0.0, 5e-324, 1e-308, 1.7976931348623157e308, 2**63, -(2**63) - 1, 0.5, 99, 100]),
)
SCALARS = st.one_of(NUMBERS, st.booleans(), st.none(), st.text(max_size=20))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=30,
)
SEQUENCE = st.one_of(st.lists(NUMBERS, max_size=60), JSON)
BODIES = st.one_of(
    st.builds(
        lambda extra, body: {**extra, **body},
        st.dictionaries(st.text(max_size=10), JSON, max_size=2),
        st.fixed_dictionaries(
            {"inputs": st.lists(SEQUENCE, max_size=MAX_BATCH + 5)}, optional={"steps": JSON, "top_k": JSON}
        ),
    ),
    st.fixed_dictionaries(
        {"inputs": st.just([]) | st.lists(st.just([1, 0]), min_size=MAX_BATCH + 1, max_size=MAX_BATCH + 3)}
    ),
    JSON,
)


def _nested(depth: int) -> bytes:
    return b'{"inputs": ' + b"[" * depth + b"1" + b"]" * depth + b"}"


SEEN: Counter = Counter()  # statuses answered to the hostile bodies, printed for the report


def _check_answer(response, task_statuses: set[int], what):
    SEEN[response.status_code] += 1
    assert response.status_code < 500, (what, response.get_data(as_text=True)[:300])
    assert response.status_code in task_statuses, (what, response.status_code)
    if response.status_code >= 400:
        assert response.mimetype == PROBLEM, what
        body = response.get_json()
        assert body["status"] == response.status_code and body["title"] and isinstance(body["detail"], str)
        for error in body.get("errors", []):
            assert error["pointer"] == "" or error["pointer"].startswith("/"), error
    else:
        assert response.mimetype == "application/json" and "outputs" in response.get_json()


@pytest.fixture(scope="module")
def statuses(fuzz_app) -> set[int]:
    return documented(orjson.loads(fuzz_app.test_client().get("/openapi.json").data), "POST", "/tasks/{name}/predict")


def test_hostile_bodies_get_documented_answers(fuzz_app, statuses, tasks):
    client = fuzz_app.test_client()

    @given(
        task=st.sampled_from(tasks),
        body=BODIES,
        shape=st.sampled_from(("hostile", "valid", "one bad value")),
        rng=st.randoms(use_true_random=False),
        bad=NUMBERS | SCALARS,
    )
    @SETTINGS
    def check(task, body, shape, rng, bad):
        if shape != "hostile":  # valid sequences, or valid but for one hostile value: 200 or a located 422
            body = {"inputs": [ORACLES[task].make(rng) for _ in range(rng.randint(1, 4))]}
            if shape == "one bad value":
                row = rng.choice(body["inputs"])
                row[rng.randrange(len(row))] = bad
        data = orjson.dumps(body) if not _has_special(body) else _dumps(body)
        r = client.post(f"/tasks/{task}/predict", data=data, content_type="application/json")
        _check_answer(r, statuses, body)

    SEEN.clear()
    check()
    print(f"\nhostile bodies: {sum(SEEN.values())} requests, statuses {dict(SEEN)}")
    assert {200, 422} <= set(SEEN), SEEN  # the generator reaches both valid and invalid requests


def test_raw_bytes_deep_nesting_and_unicode_get_documented_answers(fuzz_app, statuses, tasks):
    client = fuzz_app.test_client()
    fixed = [_nested(d) for d in (1, 2, 3, 50, 254, 255, 256, 1000, 100_000)]
    fixed += [
        b"",
        b"null",
        b"\xff\xfe",
        '{"inputs": [["\u202e\U0001f600"]]}'.encode(),
        b"\x00" * 10,
        b'{"inputs": [[1]], "inputs": [[2]]}',
        b'{"inputs": [[1' + b"0" * 5000 + b"]]}",
        b"1" * 60_000,
    ]

    @given(
        task=st.sampled_from(tasks),
        data=st.one_of(st.binary(max_size=200), st.sampled_from(fixed), st.text(max_size=100).map(str.encode)),
    )
    @SETTINGS
    def check(task, data):
        r = client.post(f"/tasks/{task}/predict", data=data, content_type="application/json")
        _check_answer(r, statuses, data[:100])

    SEEN.clear()
    check()
    print(f"\nraw bodies: {sum(SEEN.values())} requests, statuses {dict(SEEN)}")


def _has_special(value) -> bool:
    """NaN, infinities and integers past 64 bits, which orjson will not write."""
    if isinstance(value, float):
        return value != value or value in (float("inf"), float("-inf"))
    if isinstance(value, int) and not isinstance(value, bool):
        return not -(2**63) <= value < 2**64
    if isinstance(value, list):
        return any(map(_has_special, value))
    if isinstance(value, dict):
        return any(map(_has_special, value.values()))
    return False


def _dumps(value) -> bytes:
    import json

    return json.dumps(value).encode()  # writes NaN / Infinity / big integers as a client might
