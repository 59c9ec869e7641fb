"""Differential test of the loop worker's HTTP framing (service/server/loop/connection.py, llhttp) against a
reference parser: gunicorn's own pure-Python parser, the one its sync worker uses.

The same raw bytes go to both: the real Front (worker.Front on a uvloop loop, over a real socket on
127.0.0.1) with an app that echoes what it was given, and gunicorn's RequestParser. For every input both
must refuse, or both must accept the same requests (method, target, headers, body), in the same order.
A request smuggled behind another (the classic CL.TE / TE.CL tricks) would show up as a request one side
sees and the other does not. (h11, tried too, is laxer than both: it accepts CL+TE, obs-fold and bare LF.)
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.framing import _ours, assert_agree, comparable, ours, reference
from tests.support.http_strategies import raw_request

H = b"Host: x\r\n"
CASES = {
    "plain": b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello",
    "cl+te": b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te+cl": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "duplicate cl, same": b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    "duplicate cl, differing": b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "signed cl +": b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello",
    "signed cl -": b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: -5\r\n\r\nhello",
    "cl 5_0": b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 5_0\r\n\r\nhello",
    "cl list": b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello",
    "cl with space inside": b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 5 5\r\n\r\nhello",
    "cl leading zeros": b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 005\r\n\r\nhello",
    "obs-fold": b"GET /a HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n",
    "bare LF": b"GET /a HTTP/1.1\nHost: x\n\n",
    "bare LF in headers": b"GET /a HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
    "bare CR": b"GET /a HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",
    "chunk size 0x5": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    "chunk size ' 5'": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n",
    "chunk size '5 '": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
    "chunk size overflow": b"POST /a HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff5\r\nhello\r\n0\r\n\r\n",
    "chunk extension": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n",
    "chunk extension NUL": b"POST /a HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\n\r\n5;a\x00\r\nhello\r\n0\r\n\r\n",
    "chunk without CRLF": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX0\r\n\r\n",
    "chunks with bare LF": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
    "chunked with trailer": b"POST /a HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    "te chunked, identity": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "te identity, chunked": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
    "te xchunked": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "te Chunked": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
    "te vertical tab": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n",
    "te twice": b"POST /a HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    # Transfer-Encoding lists (issue 31): llhttp took ",chunked" as chunked, gunicorn refuses it; both refuse now
    "te ,chunked": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n",
    "te , chunked": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: , chunked\r\n\r\n0\r\n\r\n",
    "te chunked,": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked,\r\n\r\n0\r\n\r\n",
    "te chunked, chunked": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    "te leading space": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding:  chunked\r\n\r\n0\r\n\r\n",
    "te identity": b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n",
    "two hosts": b"GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "HTTP/1.0 without host": b"GET /a HTTP/1.0\r\n\r\n",
    "te in HTTP/1.0": b"POST /a HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "space before colon": b"POST /a HTTP/1.1\r\n" + H + b"Content-Length : 5\r\n\r\nhello",
    "no colon": b"GET /a HTTP/1.1\r\n" + H + b"NoColon\r\n\r\n",
    "NUL in value": b"GET /a HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n",
    "NUL in name": b"GET /a HTTP/1.1\r\n" + H + b"X\x00: ab\r\n\r\n",
    "NUL in target": b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n",
    "pipelined after CL 0": b"POST /a HTTP/1.1\r\n"
    + H
    + b"Content-Length: 0\r\n\r\nGET /admin HTTP/1.1\r\n"
    + H
    + b"\r\n",
    "smuggled in a chunked body": b"POST /a HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n"
    + H
    + b"\r\n",
    "lower-case method": b"get /a HTTP/1.1\r\n" + H + b"\r\n",
    "HTTP/0.9": b"GET /a\r\n\r\n",
    "HTTP/2.0": b"GET /a HTTP/2.0\r\n" + H + b"\r\n",
    "leading CRLF": b"\r\nGET /a HTTP/1.1\r\n" + H + b"\r\n",
    "tab in value": b"GET /a HTTP/1.1\r\n" + H + b"X: a\tb\r\n\r\n",
    "high byte in value": b"GET /a HTTP/1.1\r\n" + H + b"X: a\xffb\r\n\r\n",
    "underscore in name": b"GET /a HTTP/1.1\r\n" + H + b"X_Y: 1\r\n\r\n",
    "GET with a body": b"GET /a HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc",
    "absolute form": b"GET http://h/a?q=1 HTTP/1.1\r\n" + H + b"\r\n",
    "query and escapes": b"GET /a%20b/%2e%2e?x=%20&y HTTP/1.1\r\n" + H + b"\r\n",
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_front_frames_requests_as_gunicorns_parser_does(front_port, name):
    assert_agree(front_port, CASES[name])


def test_http11_without_host_is_refused_where_gunicorn_serves_it(front_port):
    """The one listed case where the two differ on purpose: RFC 9112 3.2 says a server MUST answer 400 to an
    HTTP/1.1 request without Host (nginx does); gunicorn's parser does not check. The requests before it run."""
    alone = b"GET /a HTTP/1.1\r\n\r\n"
    assert reference(alone)[0]
    ok, seen, detail = _ours(front_port, alone)
    assert not ok and not seen and "must have a Host" in detail
    pipelined = b"GET /first HTTP/1.1\r\n" + H + b"\r\n" + alone
    assert [r["target"] for r in reference(pipelined)[1]] == ["/first", "/a"]
    assert [r["target"] for r in ours(front_port, pipelined)[1]] == ["/first"]


def test_nothing_smuggled_reaches_the_app(front_port):
    for name in ("cl+te", "te+cl", "duplicate cl, differing", "te twice", "te chunked, identity", "obs-fold"):
        data = CASES[name] + b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        _, seen = ours(front_port, data)
        assert all(r["target"] != "/smuggled" for r in seen), name


@settings(max_examples=150, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(requests_=st.lists(raw_request(), min_size=1, max_size=3))
def test_fuzzed_requests_are_framed_as_gunicorns_parser_does(front_port, requests_):
    data = b"".join(requests_)
    ref_ok, ref_seen = reference(data)
    our_ok, our_seen, detail = _ours(front_port, data)
    if ref_ok and not our_ok:
        # The known differences, where the Front refuses and gunicorn's parser does not (refusing is the safe
        # side; the requests before it must still agree): llhttp knows the registered methods only, gunicorn
        # takes any token ("9GN", or PRI, which llhttp reads as HTTP/2's preface); an HTTP/1.1 request without
        # Host is a 400 (RFC 9112 3.2: a server MUST refuse it; gunicorn's parser does not check).
        assert "method" in detail.lower() or "must have a host" in detail.lower(), (data, detail)
        assert comparable(our_seen) == comparable(ref_seen)[: len(our_seen)], data
        return
    assert our_ok == ref_ok, (data, detail, our_seen, ref_seen)
    if ref_ok:
        assert comparable(our_seen) == comparable(ref_seen), data
    else:
        assert comparable(our_seen) == comparable(ref_seen)[: len(our_seen)], data


def test_an_endless_header_field_is_refused_not_buffered(front_port):
    """llhttp holds a header field until it ends: the connection counts the head's bytes and answers 431 once
    they pass what the limits allow, while the client is still sending."""
    import socket

    with socket.create_connection(("127.0.0.1", front_port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nX: ")
        answer = b""
        for _ in range(64):  # 4 MiB at most, well past the ~0.8 MB limit
            try:
                sock.sendall(b"a" * 65536)
            except OSError:
                break
        sock.settimeout(5)
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
