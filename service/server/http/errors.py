"""Flask's error handlers: every error the app answers, rendered as RFC 9457 application/problem+json.

Views and the layers below raise a ServiceError (service/server/problems.py, free of Flask); werkzeug's HTTP
errors (404, 405, 413, ...) are mapped to the same shape; anything else is logged and answered with a
detail-free 500 (no input is meant to reach it).
"""

from __future__ import annotations

import logging

import orjson
from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException

from .. import problems
from ..problems import PROBLEM_TYPE, ServiceError

try:  # the body-reading errors of gunicorn's parser, raised from wsgi.input.read() inside a view
    from gunicorn.http.errors import NoMoreData, ParseException

    _BODY_ERRORS: tuple[type, ...] = (ParseException, NoMoreData)
except ImportError:  # served by another WSGI server
    _BODY_ERRORS = ()

__all__ = ["problem", "register", "register_v2", "v2_error", "drain", "DRAIN_LIMIT"]
DRAIN_LIMIT = 64 * 1024 * 1024  # bytes of a refused body read and dropped so that its client sees the 413
log = logging.getLogger("toyseq.error")


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


def v2_error(message: str, status: int, headers: dict | None = None) -> Response:
    """The Open Inference Protocol's error answer: {"error": "..."}, never problem+json."""
    response = Response(orjson.dumps({"error": message}), status=status, content_type="application/json")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def register_v2(bp: Blueprint) -> None:
    """The v2 and V1 blueprints' error handlers (routes/v2.py, v2_extensions.py, v1.py): the same errors as the native
    API's, rendered as the protocol's {"error": ...}; a native 422 (invalid request) is the protocol's 400."""

    @bp.errorhandler(ServiceError)
    def service_error(err: ServiceError):
        status = 400 if err.status == 422 else err.status
        return v2_error(err.message, status, err.headers)

    @bp.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        if err.code == 413:
            drain(DRAIN_LIMIT)
        headers = {k: v for k, v in err.get_headers() if k.lower() == "allow"}
        return v2_error(f"{err.name}: {err.description}", err.code or 500, headers)

    @bp.errorhandler(Exception)
    def unexpected(err: Exception):
        log.exception("unhandled error in request %s", request.environ.get("toyseq.request_id", "-"))
        return v2_error("internal error; quote the X-Request-ID header when reporting it", 500)


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
