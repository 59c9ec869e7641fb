"""GET /openapi.json: the API description, rendered once per served snapshot of models (registry.py)."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response

from ...runtime import Runtime
from ..openapi import document


def blueprint(runtime: Runtime) -> Blueprint:
    bp = Blueprint("docs", __name__)
    registry = runtime.registry

    def render(snapshot) -> bytes:
        return orjson.dumps(document(snapshot.names, runtime.limits, runtime.config.api_key != ""))

    @bp.get("/openapi.json")
    def openapi():
        return Response(registry.current.derived("openapi", render), mimetype="application/json")

    return bp
