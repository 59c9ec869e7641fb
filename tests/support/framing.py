"""The differential framing harness: the real Front serving an app that echoes what it saw, gunicorn's own
parser as the reference, and the comparison of the two (tests/server/loop/test_framing.py, test_upgrade.py)."""

from __future__ import annotations

import asyncio
import base64
import logging
import threading

import orjson
import pytest
from gunicorn.config import Config as GunicornConfig
from gunicorn.http.parser import RequestParser

from benchmarks.harness.rawhttp import exchange
from service.server.loop.server import Front, Settings


def echo_app(environ, start_response):
    """What the app sees of a request, as JSON."""
    headers = {k[5:].replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if key in environ:
            headers[key.replace("_", "-")] = environ[key]
    seen = {
        "method": environ["REQUEST_METHOD"],
        "target": environ["RAW_URI"],
        "headers": headers,
        "body": base64.b64encode(environ["wsgi.input"].read()).decode(),
    }
    data = orjson.dumps(seen, option=orjson.OPT_SORT_KEYS)
    # in a header too, which a HEAD answer keeps
    start_response("200 OK", [("Content-Type", "application/json"), ("X-Seen", base64.b64encode(data).decode())])
    return [data]


@pytest.fixture(scope="module")
def front_port():
    """The real Front on its own uvloop loop in a thread, serving echo_app on 127.0.0.1."""
    import socket

    import uvloop

    loop = uvloop.new_event_loop()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    front = Front(loop, echo_app, Settings(max_body_bytes=1 << 20, read_timeout=2, keepalive=2), logging.getLogger("t"))
    ready = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        front.serve([listener])
        loop.call_soon(ready.set)
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    yield listener.getsockname()[1]
    loop.call_soon_threadsafe(front.stop)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def reference(data: bytes) -> tuple[bool, list[dict]]:
    """(accepted in full, the requests gunicorn's parser read before any error)."""
    seen = []
    try:
        for req in RequestParser(GunicornConfig(), iter([data]), ("127.0.0.1", 1)):
            headers: dict[str, str] = {}
            for name, value in req.headers:
                key = name.replace("_", "-")
                headers[key] = f"{headers[key]},{value}" if key in headers else value
            body = req.body.read()
            seen.append({"method": req.method, "target": req.uri, "headers": headers, "body": body})
    except Exception:  # noqa: BLE001 - any refusal of gunicorn's
        return False, seen
    return True, seen


def ours(port: int, data: bytes) -> tuple[bool, list[dict]]:
    """(accepted in full, the requests the app saw), from the answers the Front sent."""
    return _ours(port, data)[:2]


def _ours(port: int, data: bytes) -> tuple[bool, list[dict], str]:
    result = exchange(port, data, deadline=5.0)
    seen, refused, detail = [], False, ""
    for answer in result.answers:
        if answer.status != 200:
            refused, detail = True, answer.json()["detail"]
            break
        got = orjson.loads(base64.b64decode(answer.headers["x-seen"]))
        got["body"] = base64.b64decode(got["body"])
        seen.append(got)
    return not refused, seen, detail


def comparable(requests_: list[dict]) -> list[tuple]:
    return [
        (r["method"], r["target"], tuple(sorted((k.upper(), v) for k, v in r["headers"].items())), r["body"])
        for r in requests_
    ]


def assert_agree(port: int, data: bytes) -> None:
    ref_ok, ref_seen = reference(data)
    our_ok, our_seen = ours(port, data)
    assert our_ok == ref_ok, (data, "gunicorn accepts" if ref_ok else "gunicorn refuses", our_seen, ref_seen)
    if ref_ok:
        assert comparable(our_seen) == comparable(ref_seen), data
    else:
        # Both refuse: whatever came before the refusal is the same, and nothing after it ran.
        assert comparable(our_seen) == comparable(ref_seen)[: len(our_seen)], data
        assert len(our_seen) <= len(ref_seen), data
