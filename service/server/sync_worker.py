"""gunicorn workers whose own error answers are application/problem+json, like the app's.

gunicorn answers some requests itself, before or after the app: a request line or headers it cannot parse
(400), a request line over `limit_request_line` (414), too many or too large header fields (431), a
malformed chunked body met while the app reads it (400), and a request stopped by the worker timeout. Its
stock answer is a small HTML page. `ProblemErrors.handle_error` replaces only the rendering: the same
statuses (the timeout's 500 becomes a 503, see below), a problem+json body naming the limit or the part of
the request that is wrong, `Connection: close`, and the request counted in /metrics and the access log
like any other.

The mixin goes in front of any gunicorn worker class that calls `handle_error(req, client, addr, exc)`
(gunicorn's sync worker does); gunicorn_conf.py applies it when TOYSEQ_WORKER_CLASS=sync:

    worker_class = worker_errors.problem_worker(worker_class)   # "sync" -> "service.server.sync_worker.SyncWorker"
"""

from __future__ import annotations

import logging
import time

from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.workers.sync import SyncWorker as _SyncWorker

from . import problems

log = logging.getLogger("toyseq.http")

DETAIL_CHARS = 120  # of gunicorn's own message (it may quote the client's bytes): enough to locate the fault


def _classes(*names: str) -> tuple[type, ...]:
    """The gunicorn error classes of these names that this gunicorn version has."""
    return tuple(getattr(http_errors, name) for name in names if hasattr(http_errors, name))


# (classes, status, problem slug, what to tell the client); the first match wins.
_CLIENT_ERRORS = (
    (
        _classes("LimitRequestLine"),
        414,
        "request-line-too-long",
        "the request line is longer than {limit_request_line} bytes (TOYSEQ_LIMIT_REQUEST_LINE)",
    ),
    (
        _classes("LimitRequestHeaders"),
        431,
        "headers-too-large",
        "the request has more than {limit_request_fields} header fields (TOYSEQ_LIMIT_REQUEST_FIELDS) or a header "
        "field longer than {limit_request_field_size} bytes",
    ),
    (
        _classes("InvalidChunkSize", "ChunkMissingTerminator", "InvalidChunkExtension"),
        400,
        "malformed-chunked-body",
        "the chunked request body is malformed",
    ),
    (
        _classes("UnsupportedTransferCoding"),
        501,
        "unsupported-transfer-coding",
        "the Transfer-Encoding is not supported; send the body with Content-Length or as chunked",
    ),
    (_classes("ExpectationFailed"), 417, "expectation-failed", "only 'Expect: 100-continue' is supported"),
    (_classes("ForbiddenProxyRequest"), 403, "forbidden-proxy", "proxy requests are not accepted from this address"),
    (
        _classes("InvalidRequestLine", "InvalidRequestMethod", "InvalidHTTPVersion"),
        400,
        "malformed-request-line",
        "the request line is not 'METHOD /path HTTP/1.1'",
    ),
    (
        _classes("InvalidHeader", "InvalidHeaderName", "ObsoleteFolding", "InvalidSchemeHeaders"),
        400,
        "malformed-header",
        "a header field is malformed",
    ),
    (
        _classes("InvalidProxyLine", "InvalidH2CPreface", "ParseException"),
        400,
        "malformed-http",
        "the request is not valid HTTP/1.1",
    ),
)


def classify(exc: BaseException, cfg) -> tuple[int, str, str]:
    """(status, problem slug, detail) of an error gunicorn met while serving a request."""
    for classes, status, slug, detail in _CLIENT_ERRORS:
        if classes and isinstance(exc, classes):
            detail = detail.format(
                limit_request_line=cfg.limit_request_line,
                limit_request_fields=cfg.limit_request_fields,
                limit_request_field_size=cfg.limit_request_field_size,
            )
            said = str(exc)[:DETAIL_CHARS]
            return status, slug, f"{detail}: {said}" if said and status == 400 else detail
    if isinstance(exc, SystemExit):
        # The arbiter stops a worker silent for `timeout` seconds with SIGABRT (exit code 1); SIGQUIT is a
        # fast shutdown (code 0). Either way this request was cut off and the client may retry it: 503.
        if exc.code == 0:
            return 503, "shutting-down", "the server is shutting down; retry the request"
        return (
            503,
            "worker-timeout",
            (f"the request ran longer than the worker timeout of {cfg.timeout} s (TOYSEQ_TIMEOUT) and was stopped"),
        )
    return 500, "internal", "internal error"


def render(status: int, slug: str, detail: str) -> bytes:
    return problems.http_answer(status, slug, detail)


class ProblemErrors:
    """Mixin for a gunicorn worker: its error answers as problem+json, counted like the app's."""

    def handle_error(self, req, client, addr, exc):
        started = time.perf_counter()
        status, slug, detail = classify(exc, self.cfg)
        addr = addr or ("", -1)
        if isinstance(exc, SystemExit):
            log.warning("request cut off (%s): answered %s", slug, status)
        elif status >= 500:
            log.error("error handling a request", exc_info=exc)
        else:
            log.info("refused a request from %s: %s (%s)", addr[0], slug, str(exc)[:DETAIL_CHARS])
        if not isinstance(exc, SystemExit):  # a request cut off inside the app was counted there (app.Observe)
            self._count(req, addr, status, time.perf_counter() - started)
        try:
            util.write_nonblock(client, render(status, slug, detail))
        except Exception:  # the client is gone: nothing left to answer
            log.debug("could not send the %s answer", status)

    def _count(self, req, addr, status: int, seconds: float) -> None:
        observe = getattr(
            getattr(getattr(self, "wsgi", None), "wsgi_app", None), "record", None
        )  # app.Observe, when the app is toyseq's
        if observe is None:
            return
        try:
            observe(status, getattr(req, "method", None), getattr(req, "path", None) or "", addr[0], seconds)
        except Exception:  # counting must never stop the answer
            log.exception("could not count a refused request")


class SyncWorker(ProblemErrors, _SyncWorker):
    pass


_BY_NAME = {"sync": SyncWorker}
_BY_CLASS = {"gunicorn.workers.sync.SyncWorker": SyncWorker}


def problem_worker(worker_class):
    """The problem+json subclass of a gunicorn worker class given as gunicorn accepts it ("sync", a
    dotted path, "egg:gunicorn#sync"); any other class is returned unchanged (its errors stay gunicorn's HTML)."""
    name = worker_class if isinstance(worker_class, str) else f"{worker_class.__module__}.{worker_class.__qualname__}"
    name = name.split("#", 1)[-1]
    chosen = _BY_NAME.get(name) or _BY_CLASS.get(name)
    if chosen is None:
        return worker_class
    return f"{chosen.__module__}.{chosen.__qualname__}"
