"""The HTTP fuzz strategy (hypothesis): raw HTTP/1.1 requests, each part well-formed or broken (request lines,
headers, Content-Length and chunked framing, bodies). tests/reliability/test_http.py sends them to a real
server; tests/server/loop/test_framing.py to the loop worker's parser and to gunicorn's."""

from __future__ import annotations

from hypothesis import strategies as st

PREDICT = "/tasks/echo/predict"
TOKEN = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"), min_size=1, max_size=12
)
ANY_BYTES = st.binary(max_size=40)
PATHS = st.one_of(
    st.sampled_from(
        [
            "/healthz",
            "/tasks",
            "/tasks/echo",
            PREDICT,
            "/metrics",
            "/static//x",
            "//",
            "/tasks/%2e%2e/predict",
            "*",
            "http://evil.example/healthz",
            "/%ff%fe",
        ]
    ),
    st.text(max_size=30).map(lambda s: "/" + s),
    ANY_BYTES.map(lambda b: "/" + b.decode("latin-1")),
)
METHODS = st.one_of(
    st.sampled_from(["GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "CONNECT", "TRACE", "get", "PRI"]),
    TOKEN,
)
VERSIONS = st.sampled_from(
    ["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "http/1.1", "HTTP/1.1 x", "", "HTTP/11"]
)
HEADER_NAMES = st.one_of(
    st.sampled_from(
        [
            "Host",
            "Content-Type",
            "Content-Length",
            "Transfer-Encoding",
            "Content-Encoding",
            "Expect",
            "Connection",
            "X-Request-ID",
            "Authorization",
            "X-Forwarded-For",
            "Upgrade",
            "Trailer",
        ]
    ),
    TOKEN,
    ANY_BYTES.map(lambda b: b.decode("latin-1")),
)
HEADER_VALUES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "chunked",
            "gzip",
            "identity",
            "0",
            "-1",
            "10",
            "99999999999999999999",
            "100-continue",
            "close",
            "keep-alive",
            "chunked, gzip",
            "gzip, chunked",
            "h2c",
            "application/json; charset=utf-16",
        ]
    ),
    st.text(max_size=30),
    ANY_BYTES.map(lambda b: b.decode("latin-1")),
)
BODIES = st.one_of(
    st.just(b""),
    st.sampled_from([b'{"inputs": [[1, 2]]}', b'{"inputs": [[1]], "\\ud800": 1}', b"[[[", b'{"inputs": [[1e999]]}']),
    ANY_BYTES,
)


@st.composite
def chunked_body(draw) -> bytes:
    """A chunked body: well-formed chunks, or sizes, extensions and terminators that are not."""
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        data = draw(st.binary(max_size=20))
        size = draw(
            st.one_of(
                st.just(b"%x" % len(data)),
                st.sampled_from([b"zz", b"-1", b"", b" 5", b"0x5", b"fffffffffffffffffff", b"%X" % len(data)]),
            )
        )
        ext = draw(st.sampled_from([b"", b";a=b", b";", b';a="b"', b";\x00"]))
        end = draw(st.sampled_from([b"\r\n", b"\n", b"", b"\r\r\n"]))
        parts.append(size + ext + b"\r\n" + data + end)
    parts.append(draw(st.sampled_from([b"0\r\n\r\n", b"0\r\n", b"", b"0\r\nX-Trailer: 1\r\n\r\n", b"1\r\n"])))
    return b"".join(parts)


@st.composite
def raw_request(draw) -> bytes:
    """One request: a request line, headers and a body, each either well-formed or broken."""
    line = f"{draw(METHODS)} {draw(PATHS)} {draw(VERSIONS)}"
    headers = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=6))
    if draw(st.booleans()):
        headers.insert(0, ("Host", "127.0.0.1"))
    eol = draw(st.sampled_from(["\r\n", "\r\n", "\r\n", "\n"]))
    head = line + eol + "".join(f"{name}: {value}{eol}" for name, value in headers) + eol
    if draw(st.booleans()):
        body = draw(chunked_body())
        head = head[: -len(eol)] + f"Transfer-Encoding: chunked{eol}{eol}"
    else:
        body = draw(BODIES)
        if draw(st.booleans()):
            head = head[: -len(eol)] + f"Content-Length: {len(body)}{eol}{eol}"
    return head.encode("latin-1", "replace") + body
