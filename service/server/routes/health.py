"""GET /healthz (alive), /readyz (every model loaded and warmed) and /metrics (Prometheus)."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response

from .. import problems
from ..errors import problem


def blueprint(state) -> Blueprint:
    bp = Blueprint("health", __name__)
    registry, metrics = state.registry, state.metrics

    @bp.get("/healthz")
    def healthz():
        return Response(b'{"status":"ok"}', mimetype="application/json")

    @bp.get("/readyz")
    def readyz():
        # Models load before a worker accepts its first request, so "not ready" means "cannot be served".
        ready = sorted(registry.predictors)
        if registry.unavailable or not ready:
            reasons = "; ".join(f"{t}: {r}" for t, r in sorted(registry.unavailable.items()))
            detail = f"not ready: unavailable tasks: {reasons}" if reasons else "not ready: no models found"
            return problem(problems.body(503, "not-ready", detail, ready=ready, unavailable=registry.unavailable), 503)
        return Response(orjson.dumps({"status": "ready", "tasks": ready}), mimetype="application/json")

    @bp.get("/metrics")
    def prometheus():
        return Response(metrics.render(), content_type=metrics.content_type)

    return bp
