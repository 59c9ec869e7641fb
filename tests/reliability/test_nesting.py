"""No JSON body is a 5xx, whatever its depth (issue 31): arrays and objects nested up to and past the parsers'
limit (orjson and the standard parser stop at 1,023 levels), at every field of the native and the v2 predict
bodies, on every task, answered on the event loop (inline) and on the pool (a body past 64 KiB goes there
before it is parsed). The native answer is a 422 located by a JSON pointer, or a 400 naming the nesting when
the parser refuses it; v2 answers {"error": ...} with a 400.

Before the fix, `{"inputs": [` + `[`x968 + `1` + `]`x968 + `]}` was a 500: the codec spelled the client's
value back with json.dumps, which recursed past Python's limit (service/core/codec.short_json now writes it
iteratively and only as far as it is shown). A longer fuzz (the issue's 5 minutes):

    TOYSEQ_NESTING_EXAMPLES=3000 .venv/bin/python -m pytest tests/reliability/test_nesting.py
"""

from __future__ import annotations

import json
import os

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.harness.paths import TASKS

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("TOYSEQ_NESTING_EXAMPLES", "") or 60)
POOL_PAD = 70 * 1024  # whitespace that takes a body past the 64 KiB the loop parses inline
DEPTHS = (2, 254, 256, 500, 967, 968, 990, 1000, 1022, 1023, 1024, 5000)
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_copy):
    from benchmarks.harness.server import Server

    srv = Server(tmp_path_factory.mktemp("nesting") / "gunicorn.log", {"TOYSEQ_WORKERS": "1"}, models_copy)
    yield srv
    srv.stop()


def nested(depth: int, leaf: str = "1", opener: str = "[", closer: str = "]") -> str:
    """JSON text nested `depth` deep, built as text (building it as a Python value and dumping it would recurse)."""
    return opener * depth + leaf + closer * depth


def native(field: str, value: str) -> str:
    if field == "inputs":
        return '{"inputs": ' + value + "}"
    return '{"inputs": [[1, 2, 3]], "' + field + '": ' + value + "}"


def v2(field: str, value: str) -> str:
    tensor = {"name": "input", "datatype": "INT64", "shape": [1, 3], "data": [1, 2, 3]}
    if field in tensor:
        return '{"inputs": [' + orjson.dumps(tensor).decode()[:-1] + ', "' + field + '": ' + value + "}]}"
    return '{"inputs": [' + orjson.dumps(tensor).decode() + '], "' + field + '": ' + value + "}"


NATIVE_FIELDS = ("inputs", "steps", "top_k", "other")
V2_FIELDS = ("data", "shape", "datatype", "name", "parameters", "outputs", "id", "inputs")


def post(session: requests.Session, url: str, body: str, pool: bool) -> requests.Response:
    data = body.encode() + (b" " * POOL_PAD if pool else b"")
    return session.post(url, data=data, headers=JSON, timeout=30)


def check(response: requests.Response, v2_path: bool) -> None:
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        if v2_path:
            assert "error" in response.json(), response.text[:300]
        else:
            problem = response.json()
            assert problem["status"] == response.status_code and problem["detail"], problem


@pytest.mark.parametrize("pool", [False, True], ids=["inline", "pool"])
@pytest.mark.parametrize("task", TASKS)
def test_deep_nesting_is_a_clear_4xx_on_every_task(server, task, pool):
    with requests.Session() as session:
        for depth in DEPTHS:
            body = '{"inputs": [' + nested(depth) + "]}"
            response = post(session, f"{server.url}/tasks/{task}/predict", body, pool)
            check(response, v2_path=False)
            assert response.status_code in (400, 422), (depth, response.text[:300])
            problem = response.json()
            if response.status_code == 422:  # read, then refused where the nesting starts
                assert problem["errors"][0]["pointer"].startswith("/inputs/0"), problem
            else:
                assert "nest" in problem["detail"] or "depth" in problem["detail"].lower(), problem
            for field in NATIVE_FIELDS[1:]:
                check(post(session, f"{server.url}/tasks/{task}/predict", native(field, nested(depth)), pool), False)
            for field in V2_FIELDS:
                response = post(session, f"{server.url}/v2/models/{task}/infer", v2(field, nested(depth)), pool)
                check(response, v2_path=True)
                assert response.status_code == 400, (field, depth, response.text[:300])


def test_the_issue_body_is_a_located_422(server):
    body = '{"inputs": [' + nested(968) + "]}"
    response = requests.post(f"{server.url}/tasks/echo-lag/predict", data=body, headers=JSON, timeout=30)
    assert response.status_code == 422, response.text[:300]
    errors = response.json()["errors"]
    assert {"pointer": "/inputs/0/0", "message": "expected an integer, got an array " + "[" * 37 + "..."} in errors


LEAVES = st.sampled_from(["1", "-0", "1e308", "1e999", "null", "true", '"x"', '""', "{}", "[]", '"\\ud800"', "2.5"])
WRAPPERS = st.sampled_from([("[", "]"), ('{"a": ', "}"), ("[1, ", "]"), ('{"": [', "]}"), ("[[], ", "]")])


@st.composite
def odd_json(draw) -> str:
    """A JSON value: a chain of wrappers of any depth around a leaf, or a small odd value hypothesis builds."""
    if draw(st.booleans()):
        leaf = draw(LEAVES)
        depth = draw(st.one_of(st.integers(0, 40), st.integers(900, 1100), st.integers(1100, 20_000)))
        opener, closer = draw(WRAPPERS)
        return opener * depth + leaf + closer * depth
    value = draw(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
            lambda children: (
                st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=3)
            ),
            max_leaves=20,
        )
    )
    return json.dumps(value)  # integers past 64 bits too (orjson writes none)


@settings(
    max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(
    value=odd_json(),
    task=st.sampled_from(TASKS or ["echo-lag"]),
    where=st.sampled_from([("native", f) for f in NATIVE_FIELDS] + [("v2", f) for f in V2_FIELDS]),
    pool=st.booleans(),
)
def _fuzz(url: str, value: str, task: str, where: tuple[str, str], pool: bool) -> None:
    path, field = where
    if path == "native":
        response = requests.post(f"{url}/tasks/{task}/predict", data=_padded(native(field, value), pool), headers=JSON)
    else:
        response = requests.post(f"{url}/v2/models/{task}/infer", data=_padded(v2(field, value), pool), headers=JSON)
    check(response, v2_path=path == "v2")


def _padded(body: str, pool: bool) -> bytes:
    return body.encode() + (b" " * POOL_PAD if pool else b"")


def test_fuzz_nested_and_odd_json_on_both_paths(server):
    _fuzz(server.url)


def test_a_body_of_more_arrays_than_a_request_can_use_is_refused_unparsed(server):
    """`[1],` x 1.95 million parses for ~1 s holding the GIL (issue 31): refused by counting, gzipped or not;
    a full batch (TOYSEQ_MAX_BATCH sequences, 10,000 by default) still passes the count."""
    import gzip

    broad = b'{"inputs": [' + b"[1]," * 1_950_000 + b"[1]]}"
    for data, extra in ((broad, {}), (gzip.compress(broad), {"Content-Encoding": "gzip"})):
        response = requests.post(
            f"{server.url}/tasks/echo-lag/predict", data=data, headers={**JSON, **extra}, timeout=30
        )
        assert response.status_code == 400, response.text[:300]
        assert response.json()["type"].endswith("body-too-complex") and "TOYSEQ_MAX_BATCH" in response.json()["detail"]
    full = orjson.dumps({"inputs": [[1, 2, 3]] * 10_000})
    response = requests.post(
        f"{server.url}/tasks/echo-lag/predict",
        data=gzip.compress(full),
        headers={**JSON, "Content-Encoding": "gzip"},
        timeout=60,
    )
    assert response.status_code == 200, response.text[:300]
    v2_full = orjson.dumps(
        {"inputs": [{"name": "input", "datatype": "INT64", "shape": [10_000, 3], "data": [[1, 2, 3]] * 10_000}]}
    )
    assert (
        requests.post(f"{server.url}/v2/models/echo-lag/infer", data=v2_full, headers=JSON, timeout=60).status_code
        == 200
    )
    v2_broad = (
        b'{"inputs": [{"name": "input", "datatype": "INT64", "shape": [1, 3], "data": [' + b"[1]," * 100_000 + b"1]}]}"
    )
    response = requests.post(f"{server.url}/v2/models/echo-lag/infer", data=v2_broad, headers=JSON, timeout=30)
    assert response.status_code == 400 and "arrays and objects" in response.json()["error"], response.text[:300]
