"""The app factory: settings (defaults <- TOYSEQ_ env <- `config` mapping), the model registry loaded in
this process, one blueprint per concern, and the request hooks that tag, time, count and log every request.

    gunicorn -c python:service.gunicorn_conf 'service:create_app()'
"""
from __future__ import annotations

import itertools
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Mapping

from flask import Flask, g, request

from . import errors, logs
from .config import Config
from .metrics import Metrics
from .predictor import SessionConfig
from .runtime import Limits, Registry

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # echoed only when this tame


@dataclass
class State:
    """What the views share; built once per worker."""

    config: Config
    registry: Registry
    metrics: Metrics
    limits: Limits


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    settings = Config.load(config)
    logs.setup(settings.log_level)
    metrics = Metrics()
    # Loaded here, i.e. in each gunicorn worker after fork (no preload_app): onnxruntime sessions are not
    # fork-safe, and each worker gets its own.
    registry = Registry.load(settings.models_dir, SessionConfig(intra_op_threads=settings.threads),
                             strict=settings.strict,
                             on_failure=lambda task: metrics.load_failures.labels(task).inc())
    logs.logging.getLogger("toyseq.runtime").info(
        "models loaded", extra={"fields": {"pid": os.getpid(), "tasks": sorted(registry.predictors),
                                           "unavailable": registry.unavailable,
                                           "seconds": round(registry.load_seconds, 3)}})
    state = State(settings, registry, metrics, Limits.of(settings))

    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, DEBUG=False, PROPAGATE_EXCEPTIONS=False,
                      TRAP_HTTP_EXCEPTIONS=False)
    app.extensions["toyseq"] = state
    errors.register(app)
    _hooks(app, state)

    from .routes import docs, health, playground, predict, tasks

    for module in (predict, tasks, health, docs, playground):
        app.register_blueprint(module.blueprint(state))
    return app


def _hooks(app: Flask, state: State) -> None:
    metrics = state.metrics
    pid = os.getpid()  # this worker's, since the app is built after fork
    new_id = _request_ids()

    @app.before_request
    def tag():
        # The proxies `g` and `request` cost a context lookup per attribute: resolve each once.
        ctx = g._get_current_object()
        ctx.start = time.perf_counter()
        rid = request.environ.get("HTTP_X_REQUEST_ID")
        ctx.request_id = rid if rid and REQUEST_ID.fullmatch(rid) else new_id()
        ctx.task = ""  # set by views once the name is a known task: metric labels stay bounded

    @app.after_request
    def finish(response):
        ctx, req = g._get_current_object(), request._get_current_object()
        seconds = time.perf_counter() - getattr(ctx, "start", time.perf_counter())
        rid = getattr(ctx, "request_id", None) or new_id()
        response.headers["X-Request-ID"] = rid
        endpoint = req.endpoint or "unmatched"
        task = getattr(ctx, "task", "")
        status = response.status_code
        metrics.observe(endpoint, task, status, seconds)
        logs.access({"request_id": rid, "pid": pid, "method": req.method, "path": req.path[:200], "task": task,
                     "status": status, "duration_ms": round(seconds * 1000, 3),
                     "bytes": response.content_length, "remote": req.remote_addr})
        return response


def _request_ids():
    """Request ids, 32 hex digits like uuid4().hex but ~10x cheaper: a random per-app prefix (the app is built
    in each worker after fork) and a counter, so ids stay unique across workers and restarts."""
    prefix, counter = os.urandom(8).hex(), itertools.count()
    return lambda: f"{prefix}{next(counter):016x}"
