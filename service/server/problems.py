"""The one renderer of RFC 9457 problem details: the app's errors (errors.py), the health routes and the
worker's own answers (malformed HTTP, limits, timeouts) all build their bodies here, so every problem the
service sends has the same fields and the same `type` convention: `urn:toyseq:problem:<slug>`.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import orjson

PROBLEM_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:toyseq:problem:"


# RFC 9110's reason phrases where Python's http module still has the older ones.
PHRASES = {413: "Content Too Large", 414: "URI Too Long", 422: "Unprocessable Content"}


def title(status: int) -> str:
    if status in PHRASES:
        return PHRASES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def body(status: int, slug: str, detail: str, **extra: Any) -> dict:
    return {"type": TYPE_PREFIX + slug, "title": title(status), "status": status, "detail": detail, **extra}


def encode(problem: dict) -> bytes:
    try:
        return orjson.dumps(problem)
    except TypeError:  # text orjson cannot write (a lone surrogate echoed from the request): escape it instead
        return json.dumps(problem, default=str).encode()


def http_answer(status: int, slug: str, detail: str, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A whole HTTP/1.1 answer carrying one problem, for the worker to write when no app is involved (the
    request could not be parsed, or was refused before the app); the connection closes after it."""
    data = encode(body(status, slug, detail))
    head = [f"HTTP/1.1 {status} {title(status)}", "Connection: close", f"Content-Type: {PROBLEM_TYPE}"]
    head += [f"{name}: {value}" for name, value in headers]
    head.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data
