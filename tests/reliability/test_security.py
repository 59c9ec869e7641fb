"""Security: the optional API key on predict, no debug mode, no stack traces or paths in any error, and task
names that cannot reach the filesystem (in the app and through gunicorn's own URL decoding). The container's
non-root user is checked in test_container.py."""

from __future__ import annotations

import random

import orjson
import pytest

from benchmarks.harness.load import ORACLES, Call, Client
from benchmarks.harness.paths import ROOT
from service import create_app

KEY = "s3cret-Key_0123456789~!"
LEAKS = ("Traceback", 'File "', "/work", "/home", "/tmp", "site-packages", str(ROOT))
TRAVERSALS = [
    "/tasks/..%2F..%2Fetc%2Fpasswd/predict",
    "/tasks/%2e%2e/predict",
    "/tasks/%2e%2e%2f%2e%2e%2fetc%2fpasswd/predict",
    "/tasks/../../etc/passwd/predict",
    "/tasks/..%5C..%5Cetc%5Cpasswd/predict",
    "/tasks/%2Fetc%2Fpasswd/predict",
    "/tasks/alternating%00/predict",
    "/tasks/~root/predict",
    "/tasks/..%2Fmodels/training.png",
    "/tasks/%2e%2e/training.png",
    "/tasks/..%2F..%2Fetc%2Fpasswd",
    "/static/..%2F..%2Fruntime.py",
    "/static/../../etc/passwd",
]


def _body(task: str) -> bytes:
    return orjson.dumps({"inputs": [ORACLES[task].make(random.Random(0))]})


def _assert_problem(response, status: int):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {KEY[:-1]}"},  # a prefix of the key
        {"Authorization": f"Bearer {KEY}x"},  # the key plus one character
        {"Authorization": f"Basic {KEY}"},  # not a bearer token
        {"X-API-Key": "wrong"},
        {"X-API-Key": KEY.upper()},
    ],
)
def test_predict_requires_the_api_key(make_client, tasks, headers):
    client = make_client(api_key=KEY)
    r = client.post(
        f"/tasks/{tasks[0]}/predict", data=_body(tasks[0]), content_type="application/json", headers=headers
    )
    body = _assert_problem(r, 401)
    assert r.headers["WWW-Authenticate"].startswith("Bearer") and KEY not in r.get_data(as_text=True)
    assert "API key" in body["detail"]


def test_the_right_api_key_is_accepted_either_way(make_client, tasks):
    client = make_client(api_key=KEY)
    for headers in ({"Authorization": f"Bearer {KEY}"}, {"Authorization": f"bearer  {KEY}"}, {"X-API-Key": KEY}):
        r = client.post(
            f"/tasks/{tasks[0]}/predict", data=_body(tasks[0]), content_type="application/json", headers=headers
        )
        assert r.status_code == 200, headers
    # The key guards predict only: discovery, health and metrics stay open (documented in the threat model).
    for path in ("/tasks", "/healthz", "/readyz", "/openapi.json", "/metrics"):
        assert client.get(path).status_code == 200, path


def test_an_unknown_task_is_checked_after_the_key(make_client):
    """Without the key nobody learns which task names exist."""
    client = make_client(api_key=KEY)
    r = client.post("/tasks/no-such-task/predict", data=b'{"inputs": [[1]]}', content_type="application/json")
    _assert_problem(r, 401)


def test_no_debug_mode_even_when_flask_debug_is_set(monkeypatch, models_copy):
    monkeypatch.setenv("FLASK_DEBUG", "1")
    app = create_app({"models_dir": str(models_copy)})
    assert app.debug is False and app.config["PROPAGATE_EXCEPTIONS"] is False
    client = app.test_client()
    for path in ("/console", "/?__debugger__=yes&cmd=resource&f=style.css"):
        assert client.get(path).status_code in (200, 404)  # the playground at /, never the debugger
        assert b"__debugger__" not in client.get(path).data and b"Werkzeug Debugger" not in client.get(path).data


def _error_requests(task: str) -> list[tuple[str, str, bytes | None, str | None, int]]:
    deep = b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    return [
        ("POST", f"/tasks/{task}/predict", b"{not json", "application/json", 400),
        ("POST", f"/tasks/{task}/predict", deep, "application/json", 400),
        ("POST", f"/tasks/{task}/predict", b'{"inputs": [[1]]}', "text/plain", 415),
        ("POST", f"/tasks/{task}/predict", b'{"inputs": [["x", null, {}]]}', "application/json", 422),
        ("POST", f"/tasks/{task}/predict", b'{"inputs": [[1e999, NaN]]}', "application/json", 422),
        ("POST", f"/tasks/{task}/predict", b'{"inputs": [[1]], "\\u0000/../x": 1}', "application/json", 422),
        ("POST", f"/tasks/{task}/predict", b"[" * 100 + b"]" * 100, "application/json", 422),
        ("POST", f"/tasks/{task}/predict", b"x" * 30_000, "application/json", 413),
        ("GET", f"/tasks/{task}/predict", None, None, 405),
        ("DELETE", "/tasks", None, None, 405),
        ("POST", "/tasks/%2Fetc%2Fpasswd/predict", b'{"inputs": [[1]]}', "application/json", 404),
        ("GET", "/nowhere", None, None, 404),
    ]


def test_no_error_shows_a_stack_trace_or_a_path(make_client, tasks, models_copy):
    client = make_client(max_body_bytes=20_000)
    for method, path, data, content_type, status in _error_requests(tasks[0]):
        r = client.open(path, method=method, data=data, content_type=content_type)
        _assert_problem(r, status)
        text = r.get_data(as_text=True)
        for leak in (*LEAKS, str(models_copy)):
            assert leak not in text, (method, path, leak, text[:300])


@pytest.mark.parametrize("path", TRAVERSALS)
def test_task_names_cannot_reach_the_filesystem(client, path):
    method = "POST" if path.endswith("/predict") else "GET"
    r = client.open(path, method=method, data=b'{"inputs": [[1]]}', content_type="application/json")
    _assert_problem(r, 404)
    assert b"root:" not in r.data and b"import" not in r.data


@pytest.mark.slow
def test_over_real_http_traversals_get_404_and_errors_leak_nothing(gunicorn_server, tasks):
    """gunicorn decodes %2F itself, before Flask routes: check the raw paths end to end."""
    server = gunicorn_server({"TOYSEQ_API_KEY": KEY, "TOYSEQ_MAX_BODY_BYTES": 20_000})
    client = Client(server.base_url)
    auth = {"Authorization": f"Bearer {KEY}"}
    try:
        for path in TRAVERSALS:
            method = "POST" if path.endswith("/predict") else "GET"
            outcome = client.send(
                Call("traversal", method, path, b'{"inputs": [[1]]}' if method == "POST" else None, 404, headers=auth)
            )
            assert outcome.result == "ok", (path, outcome.result, outcome.status, outcome.detail)
        for method, path, data, content_type, status in _error_requests(tasks[0]):
            headers = dict(auth, **({"Content-Type": content_type} if content_type else {}))
            outcome = client.send(
                Call(
                    "error",
                    method,
                    path,
                    data,
                    status,
                    check=lambda a: next((f"leaks {x}" for x in LEAKS if x in str(a)), None),
                    headers=headers,
                )
            )
            assert outcome.result == "ok", (method, path, outcome.result, outcome.status, outcome.detail)
        unauthorized = client.send(Call("401", "POST", f"/tasks/{tasks[0]}/predict", _body(tasks[0]), 401))
        assert unauthorized.result == "ok", unauthorized.detail
        allowed = client.send(Call("200", "POST", f"/tasks/{tasks[0]}/predict", _body(tasks[0]), 200, headers=auth))
        assert allowed.result == "ok", allowed.detail
    finally:
        client.close()
    assert "Traceback" not in server.log()
