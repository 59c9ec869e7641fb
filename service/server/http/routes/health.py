"""GET /healthz (alive), /readyz (some task loaded and warmed; the unavailable ones named) and /metrics."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response

from ... import problems
from ...runtime import Runtime
from ..errors import problem


def blueprint(runtime: Runtime) -> Blueprint:
    bp = Blueprint("health", __name__)
    registry, metrics = runtime.registry, runtime.metrics

    @bp.get("/healthz")
    def healthz():
        return Response(b'{"status":"ok"}', mimetype="application/json")

    @bp.get("/readyz")
    def readyz():
        # Models load before a worker accepts its first request, so "not ready" means "cannot be served".
        # Ready while some task serves (Registry.ready); the broken ones are named either way. A task unloaded
        # on request (repository.py) is not a failure.
        snapshot = registry.current
        ready, failed = sorted(snapshot.predictors), dict(snapshot.failed)
        if not ready:
            reasons = "; ".join(f"{t}: {r}" for t, r in sorted(failed.items()))
            detail = f"not ready: unavailable tasks: {reasons}" if reasons else "not ready: no models found"
            return problem(problems.body(503, "not-ready", detail, ready=ready, unavailable=failed), 503)
        answer = {"status": "ready", "tasks": ready, "unavailable": failed}
        return Response(orjson.dumps(answer), mimetype="application/json")

    @bp.get("/metrics")
    def prometheus():
        return Response(metrics.render(), content_type=metrics.content_type)

    return bp
