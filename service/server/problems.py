"""The problems the service answers, and their one renderer (RFC 9457 problem details).

The error classes (ServiceError and its kinds) are raised by every layer, free of any web framework: the
Flask handlers (http/errors.py), the v2 error bodies and the gRPC status codes all render the same object.
The health routes and the loop worker's own answers (malformed HTTP, limits, timeouts) build their bodies
here too, so every problem the service sends has the same fields and the same `type` convention:
`urn:toyseq:problem:<slug>`.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import orjson

from service.core.codec import Problem

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


class ServiceError(Exception):
    status = 500
    title = "Internal Server Error"
    slug = "internal"

    def __init__(
        self,
        message: str,
        status: int | None = None,
        errors: list[Problem] | None = None,
        total: int | None = None,
        headers: dict | None = None,
        extra: dict | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status or self.status
        self.errors = errors or []
        self.total = len(self.errors) if total is None else total
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict:
        problem = body(self.status, self.slug, self.message)
        problem["title"] = self.title
        if self.errors:
            problem["errors"] = [{"pointer": p.pointer, "message": p.message} for p in self.errors]
            if self.total > len(self.errors):
                problem["errors_total"] = self.total
        problem.update(self.extra)
        return problem


class BadRequest(ServiceError):
    status, title, slug = 400, "Bad Request", "malformed-json"


class Unauthorized(ServiceError):
    status, title, slug = 401, "Unauthorized", "unauthorized"


class NotFound(ServiceError):
    status, title, slug = 404, "Not Found", "unknown-task"


class UnsupportedMediaType(ServiceError):
    status, title, slug = 415, "Unsupported Media Type", "not-json"


class InvalidRequest(ServiceError):
    status, title, slug = 422, "Unprocessable Content", "invalid-request"


class OverBudget(InvalidRequest):
    slug = "over-budget"


class TaskUnavailable(ServiceError):
    status, title, slug = 503, "Service Unavailable", "task-unavailable"
