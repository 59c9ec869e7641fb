"""`Upgrade` never loses a request (issue 31): the Front never switches protocols, so it ignores an Upgrade
header field (RFC 9110 7.8 lets a server do so; nginx does unless it proxies a WebSocket) and serves the
request as HTTP/1.1, then reads what follows it as the next request. llhttp stops at such a request as if
the rest of the stream were another protocol: a request pipelined behind it was never answered, and a body
sent with it was skipped (a POST with `Upgrade: h2c` got 400). Each case is checked against gunicorn's own
parser, which reads the stream as plain HTTP/1.1 (test_framing.py's differential)."""

from __future__ import annotations

import pytest

from benchmarks.harness.rawhttp import exchange
from tests.support.framing import _ours, assert_agree, reference

H = b"Host: x\r\n"
H2C = b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n"
WEBSOCKET = b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
BODY = b'{"inputs": [[1, 2, 3]]}'  # 23 bytes, the issue's
NEXT = b"GET /next HTTP/1.1\r\n" + H + b"\r\n"
CASES = {
    "get h2c, then a get": b"GET /healthz HTTP/1.1\r\n" + H + H2C + b"\r\n" + NEXT,
    "get websocket, then a get": b"GET /ws HTTP/1.1\r\n" + H + WEBSOCKET + b"\r\n" + NEXT,
    "post h2c with a body, then a get": b"POST /p HTTP/1.1\r\n" + H + H2C + b"Content-Length: 23\r\n\r\n" + BODY + NEXT,
    "post h2c chunked, then a get": b"POST /p HTTP/1.1\r\n"
    + H
    + H2C
    + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    + NEXT,
    "two upgrades in a row": b"GET /a HTTP/1.1\r\n"
    + H
    + H2C
    + b"\r\n"
    + b"GET /b HTTP/1.1\r\n"
    + H
    + H2C
    + b"\r\n"
    + NEXT,
    "upgrade then post": b"GET /a HTTP/1.1\r\n"
    + H
    + H2C
    + b"\r\nPOST /b HTTP/1.1\r\n"
    + H
    + b"Content-Length: 3\r\n\r\nabc",
    "upgrade, bad chunks": b"POST /p HTTP/1.1\r\n" + H + H2C + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
}


@pytest.mark.parametrize("name", list(CASES))
def test_upgrade_is_ignored_as_gunicorns_parser_ignores_it(front_port, name):  # noqa: F811
    assert_agree(front_port, CASES[name])


def test_the_pipeline_behind_an_upgrade_is_answered_and_the_connection_kept(front_port):  # noqa: F811
    result = exchange(front_port, CASES["get h2c, then a get"] + NEXT, half_close=False, deadline=1.0)
    assert [a.status for a in result.answers] == [200, 200, 200]
    assert all(a.headers["connection"] == "keep-alive" for a in result.answers)
    assert not result.closed  # kept alive: the client may send more


def test_a_post_with_upgrade_gets_its_body(front_port):  # noqa: F811
    ok, seen, _ = _ours(front_port, CASES["post h2c with a body, then a get"])
    assert ok and [(r["target"], r["body"]) for r in seen] == [("/p", BODY), ("/next", b"")]


def test_the_body_of_an_upgrade_request_is_still_framed(front_port):  # noqa: F811
    """A body larger than declared: the rest is the next request, as without Upgrade (no smuggling either way)."""
    data = b"POST /p HTTP/1.1\r\n" + H + H2C + b"Content-Length: 3\r\n\r\nabcGET /smuggled HTTP/1.1\r\n" + H + b"\r\n"
    ok, seen, _ = _ours(front_port, data)
    assert ok and [(r["target"], r["body"]) for r in seen] == [("/p", b"abc"), ("/smuggled", b"")]
    assert [(r["target"], r["body"]) for r in reference(data)[1]] == [("/p", b"abc"), ("/smuggled", b"")]


def test_connect_is_answered_then_closed(front_port):  # noqa: F811
    """CONNECT asks for a tunnel: what follows would be the tunnel's bytes, never read as HTTP."""
    result = exchange(front_port, b"CONNECT x:443 HTTP/1.1\r\n" + H + b"\r\n" + NEXT, deadline=2.0)
    assert len(result.answers) == 1 and result.closed
