"""The app factory: settings (defaults <- TOYSEQ_ env <- `config` mapping), the model registry loaded in
this process, one blueprint per concern, and the WSGI middleware that tags, times, counts and logs every request.

    gunicorn -c python:service.server.gunicorn_conf 'service:create_app()'
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, Request
from flask.sessions import NullSession, SessionInterface
from werkzeug.routing import Map

from service.core.predictor import SessionConfig

from ..config import Config
from ..observability import flushing, logs
from ..observability.metrics import Metrics
from ..protocol import offload
from ..protocol.statistics import Statistics, Timing
from ..protocol.v2 import Service
from ..store.registry import Limits, Registry
from ..store.repository import Repository
from . import errors

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # echoed only when this tame
_tame = REQUEST_ID.fullmatch


@dataclass
class State:
    """What the views share; built once per worker."""

    config: Config
    registry: Registry
    metrics: Metrics
    limits: Limits
    statistics: Statistics
    repository: Repository
    protocol: Service  # the Open Inference Protocol's answers, for its HTTP routes and its gRPC service
    observe: Observe | None = None  # records requests served outside Flask (gRPC) into the same logs and metrics


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    settings = Config.load(config)
    logs.setup(settings.log_level)
    metrics = Metrics()
    statistics = Statistics(metrics)
    # Loaded here, i.e. in each gunicorn worker after fork (no preload_app): onnxruntime sessions are not
    # fork-safe, and each worker gets its own.
    registry = Registry.load(
        settings.models_dir,
        SessionConfig(intra_op_threads=settings.threads),
        strict=settings.strict,
        on_failure=lambda task: metrics.load_failures.labels(task).inc(),
    )
    logs.logging.getLogger("toyseq.runtime").info(
        "models loaded",
        extra={
            "fields": {
                "pid": os.getpid(),
                "tasks": sorted(registry.predictors),
                "unavailable": registry.unavailable,
                "seconds": round(registry.load_seconds, 3),
            }
        },
    )
    repository = Repository(registry, settings, on_failure=lambda task: metrics.load_failures.labels(task).inc())
    limits = Limits.of(settings)
    state = State(settings, registry, metrics, limits, statistics, repository, Service(registry, limits))
    repository.start()  # follows the loads and unloads other workers publish (control.py)

    app = _Flask(__name__)
    app.request_class = _Request
    app.session_interface = _NoSessions()
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes, DEBUG=False, PROPAGATE_EXCEPTIONS=False, TRAP_HTTP_EXCEPTIONS=False
    )
    app.extensions["toyseq"] = state
    errors.register(app)
    state.observe = Observe(app.wsgi_app, metrics, os.getpid(), statistics)
    app.wsgi_app = state.observe  # type: ignore[method-assign]

    from .routes import docs, health, playground, predict, tasks, v2, v2_extensions

    for module in (predict, tasks, health, docs, playground, v2_extensions, v2):
        app.register_blueprint(module.blueprint(state))
    return app


class _Map(Map):
    """No redirects from routing: werkzeug answers `/static//x` (merge_slashes) and a missing trailing slash
    (strict_slashes) with a 308 whose Location it builds from the request's Host header, which a client
    controls. Without them such paths simply match or get 404."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("merge_slashes", False)
        kwargs.setdefault("strict_slashes", False)
        super().__init__(*args, **kwargs)


class _Flask(Flask):
    url_map_class = _Map


class _NoSessions(SessionInterface):
    """The service keeps no sessions: one shared read-only null session (it refuses writes) instead of a
    new one per request, and nothing to save."""

    null = NullSession()

    def open_session(self, app, request):
        return self.null

    def save_session(self, app, session, response):
        pass


class _Request(Request):
    """Flask's request, left in the environ for Observe to read its matched rule and path once Flask is done
    (Flask clears environ["werkzeug.request"] when the request context pops)."""

    def __init__(self, environ: dict, *args, **kwargs):
        super().__init__(environ, *args, **kwargs)
        environ["toyseq.request"] = self


class Observe:
    """WSGI middleware around Flask's wsgi_app: tags, times, counts and logs every request in one place, with
    no Flask hooks (a before/after_request pair costs context lookups and proxies on every request).

    The request id (the client's X-Request-ID when tame, else a new one) is put in the environ as
    `toyseq.request_id` and added to the answer's headers; views name the task in `toyseq.task` (only once
    the name is a known task, so metric labels stay bounded). Time runs from the middleware's entry to the
    answer being built (the body itself is sent by gunicorn after)."""

    MAX_PENDING = 2000  # requests recorded before the request thread drains them itself

    def __init__(self, wsgi_app, metrics: Metrics, pid: int, statistics: Statistics | None = None):
        self.wsgi_app = wsgi_app
        self.metrics = metrics
        self.statistics = statistics
        if statistics is not None:
            statistics.pending = self.drain  # a statistics answer first counts what this worker answered
        self.pid = pid  # this worker's, since the app is built after fork
        self.new_id = _request_ids()
        self._pending: list[tuple] = []
        self._lock = threading.Lock()  # guards the swap of _pending
        self._drain_lock = threading.RLock()  # one drain at a time; re-entered if the log handler drains
        metrics.pending = self.drain  # a scrape first counts the requests this worker answered
        flushing.register(self.drain)

    def __call__(self, environ: dict, start_response):
        started = time.perf_counter()
        rid = environ.get("HTTP_X_REQUEST_ID")
        if not rid or not _tame(rid):
            rid = self.new_id()
        environ["toyseq.request_id"] = rid
        # a request's own deadline (v2 `timeout`) runs from its arrival, kept when the worker re-runs it on its pool
        environ.setdefault("toyseq.started", started)
        answer: list[Any] = []

        def start(status: str, headers: list, exc_info=None):
            headers.append(("X-Request-ID", rid))
            answer[:] = status, headers
            return start_response(status, headers, exc_info)

        try:
            body = self.wsgi_app(environ, start)
        except offload.MoveToPool:
            raise  # not answered here: the worker runs it again on its pool, where it is counted
        except BaseException as exc:
            # Cut off inside the app: the worker timeout's SystemExit (gunicorn then answers 503, see
            # worker_errors.py) or an error from the server itself. Counted here, since the request never returns;
            # the worker's exit hook flushes the count.
            answer[:] = ("503" if isinstance(exc, SystemExit) else "500"), []
            self._record(environ, started, rid, answer)
            raise
        self._record(environ, started, rid, answer)
        return body

    def _record(self, environ: dict, started: float, rid: str, answer: list) -> None:
        if environ.get("toyseq.abandoned"):
            return  # the worker already answered (and counted) it: cut off by the worker timeout
        seconds = time.perf_counter() - started
        req = environ.pop("toyseq.request", None)  # Flask's request object (see _Request); drops the cycle
        record = (
            time.time(),
            seconds,
            rid,
            answer,
            req.url_rule if req is not None else None,
            req.path if req is not None else environ.get("PATH_INFO", ""),
            environ.get("REQUEST_METHOD"),
            environ.get("REMOTE_ADDR"),
            environ.get("toyseq.task", ""),
            environ.get("toyseq.sequences", 0),
            started,
            environ.get("toyseq.inference"),  # statistics.Timing, set by the predict and infer routes
            environ.get("toyseq.outside", 0),  # of those sequences, how many were outside the task's domain
        )
        with self._lock:
            pending = self._pending
            pending.append(record)
        if len(pending) >= self.MAX_PENDING:
            self.drain()

    def record(self, status: int, method: str | None, path: str, remote: str | None, seconds: float) -> None:
        """Count and log a request the server answered without the app (worker_errors.py: malformed HTTP)."""
        record = (
            time.time(),
            seconds,
            self.new_id(),
            (f"{status} ", [("Content-Length", "0")]),
            None,
            path or "",
            method,
            remote,
            "",
            0,
            0.0,
            None,
            0,
        )
        with self._lock:
            self._pending.append(record)

    def record_call(
        self,
        rid: str,
        endpoint: str,
        path: str,
        status: int,
        seconds: float,
        remote: str | None,
        task: str,
        sequences: int,
        started: float,
        timing: Timing | None,
        outside: int = 0,
    ) -> None:
        """Count and log a call answered outside Flask (gRPC, method "gRPC"; `rid` from new_id()), with the status
        its HTTP twin would have had, under its own endpoint label; an inference call's `timing` goes to the
        statistics extension as an HTTP infer's does."""
        record = (
            time.time(),
            seconds,
            rid,
            (f"{status} ", ()),
            _Endpoint(endpoint),
            path,
            "gRPC",
            remote,
            task,
            sequences,
            started,
            timing,
            outside,
        )
        with self._lock:
            self._pending.append(record)

    def drain(self) -> None:
        """Count and log the requests recorded since the last drain (the flushing thread calls this every
        50 ms, a /metrics scrape before it renders)."""
        with self._drain_lock:
            with self._lock:
                records, self._pending = self._pending, []
            if not records:
                return
            observe, count = self.metrics.observe, self.metrics.count_sequences
            statistics = self.statistics
            log = logs.access_enabled()
            pid = self.pid
            for now, seconds, rid, answer, rule, path, method, remote, task, sequences, started, timing, out in records:
                status, headers = answer or ("500", ())
                status = int(status[:3])
                observe(rule.endpoint if rule is not None else "unmatched", task, status, seconds)
                if sequences:
                    count(task, sequences, out)
                if timing is not None and statistics is not None:
                    statistics.record(task, timing, status, started, seconds, sequences, now)
                if log:
                    size = None
                    for name, value in headers:
                        if name == "Content-Length":
                            size = int(value)
                            break
                    logs.access(
                        {
                            "request_id": rid,
                            "pid": pid,
                            "method": method,
                            "path": path[:200],
                            "task": task,
                            "status": status,
                            "duration_ms": round(seconds * 1000, 3),
                            "bytes": size,
                            "remote": remote,
                        },
                        now,
                    )
            logs.flush_access()
            if statistics is not None:
                statistics.flush()
            self.metrics.flush()  # under gunicorn: into this worker's files, where other workers' scrapes read


@dataclass(frozen=True)
class _Endpoint:
    """Stands in for a matched Flask rule in a recorded call: drain() reads only its endpoint."""

    endpoint: str


def _request_ids():
    """Request ids, 32 hex digits like uuid4().hex but without a system call per id: a random per-app prefix (the app is built
    in each worker after fork) and a counter, so ids stay unique across workers and restarts."""
    prefix, counter = os.urandom(8).hex(), itertools.count()
    return lambda: f"{prefix}{next(counter):016x}"
