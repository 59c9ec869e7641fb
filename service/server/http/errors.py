"""Every error the service answers, rendered by one handler as RFC 9457 application/problem+json.

Views raise a ServiceError; werkzeug's HTTP errors (404, 405, 413, ...) are mapped to the same shape;
anything else is logged and answered with a detail-free 500 (no input is meant to reach it).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from service.core.codec import Problem

from .. import problems
from ..problems import PROBLEM_TYPE

try:  # the body-reading errors of gunicorn's parser, raised from wsgi.input.read() inside a view
    from gunicorn.http.errors import NoMoreData, ParseException

    _BODY_ERRORS: tuple[type, ...] = (ParseException, NoMoreData)
except ImportError:  # served by another WSGI server
    _BODY_ERRORS = ()

__all__ = ["PROBLEM_TYPE", "ServiceError", "problem", "register"]
DRAIN_LIMIT = 64 * 1024 * 1024  # bytes of a refused body read and dropped so that its client sees the 413
log = logging.getLogger("toyseq.error")


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
        body = problems.body(self.status, self.slug, self.message)
        body["title"] = self.title
        if self.errors:
            body["errors"] = [{"pointer": p.pointer, "message": p.message} for p in self.errors]
            if self.total > len(self.errors):
                body["errors_total"] = self.total
        body.update(self.extra)
        return body


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


def problem(body: dict, status: int, headers: dict | None = None) -> Response:
    response = Response(problems.encode(body), status=status, mimetype=PROBLEM_TYPE)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def register(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def service_error(err: ServiceError):
        return problem(err.body(), err.status, err.headers)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        # werkzeug's own descriptions are generic text: no paths, no internals.
        status = err.code or 500
        detail = "no such resource; see /openapi.json" if status == 404 else err.description
        headers = {k: v for k, v in err.get_headers() if k.lower() == "allow"}
        if status == 413:
            drain(DRAIN_LIMIT)
            limit = app.config.get("MAX_CONTENT_LENGTH")
            if limit:
                detail = f"the body is larger than the limit of {limit} bytes (TOYSEQ_MAX_BODY_BYTES)"
        slug = err.name.lower().replace(" ", "-")
        return problem({**problems.body(status, slug, detail or err.name), "title": err.name}, status, headers)

    @app.errorhandler(Exception)
    def unexpected(err: Exception):
        if _BODY_ERRORS and isinstance(err, _BODY_ERRORS):
            # gunicorn met malformed chunking (or the client left mid-body) while the app read the body
            detail = f"the request body could not be read: {type(err).__name__} {str(err)[:120]}".strip()
            return problem(problems.body(400, "malformed-chunked-body", detail), 400, {"Connection": "close"})
        log.exception("unhandled error in request %s", request.environ.get("toyseq.request_id", "-"))
        detail = "internal error; quote the X-Request-ID header when reporting it"
        return problem(problems.body(500, "internal", detail), 500)


def drain(limit: int) -> None:
    """Read and drop the rest of a refused body, up to `limit`. A server that closes the connection while the
    client is still sending makes the kernel reset it: the client then sees a broken pipe, not the 413.
    A slow sender holds the worker no longer than any slow request: gunicorn's timeout still applies."""
    stream = request.environ.get("wsgi.input")
    try:
        while stream is not None and limit > 0:
            chunk = stream.read(min(1 << 16, limit))
            if not chunk:
                break
            limit -= len(chunk)
    except Exception:  # the client went away: nothing left to answer
        pass
