"""Raw HTTP/1.1 over a socket to 127.0.0.1, for requests no HTTP client library would send (malformed request
lines, broken chunking, pipelining): send bytes, read every answer until the server closes, parse them."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import orjson


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; the last of repeated ones
    body: bytes
    raw_head: bytes = field(repr=False, default=b"")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()

    def json(self):
        return orjson.loads(self.body)


@dataclass
class Exchange:
    answers: list[Answer]
    closed: bool  # the server closed the connection before the deadline
    seconds: float
    rest: bytes  # bytes after the last complete answer (a truncated one)


def exchange(port: int, data: bytes, deadline: float = 10.0, half_close: bool = True) -> Exchange:
    """Send `data`, optionally shut the write side (so a server waiting for more body sees EOF), and read until
    the server closes or `deadline` seconds pass."""
    started = time.monotonic()
    buf = b""
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=deadline) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed while we were still sending: read what it said
            pass
        while time.monotonic() - started < deadline:
            sock.settimeout(max(0.05, deadline - (time.monotonic() - started)))
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError:
                break
            except OSError:  # reset after the answer: what was read stands
                closed = True
                break
            if not chunk:
                closed = True
                break
            buf += chunk
    answers, rest = parse(buf)
    return Exchange(answers, closed, time.monotonic() - started, rest)


def parse(buf: bytes) -> tuple[list[Answer], bytes]:
    """Every complete answer in `buf` (each framed by Content-Length; a server error body always has one)."""
    answers = []
    while b"\r\n\r\n" in buf:
        head, _, after = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            break
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        length = int(headers.get("content-length", "0") or 0)
        if len(after) < length:
            break
        answers.append(Answer(int(parts[1]), headers, after[:length], head))
        buf = after[length:]
    return answers, buf


def request(
    method: str = "GET",
    path: str = "/healthz",
    headers: dict | None = None,
    body: bytes = b"",
    chunked: list[bytes] | None = None,
) -> bytes:
    """A well-formed request's bytes (Content-Length, or chunked when `chunked` holds the chunks)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if chunked is not None:
        lines.append("Transfer-Encoding: chunked")
        payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunked if c) + b"0\r\n\r\n"
    else:
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload
