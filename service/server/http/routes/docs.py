"""GET /openapi.json: the API description, rendered once per served snapshot of models (registry.py)."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response

from ..openapi import document


def blueprint(state) -> Blueprint:
    bp = Blueprint("docs", __name__)
    registry = state.registry

    def render(snapshot) -> bytes:
        return orjson.dumps(document(snapshot.names, state.limits, state.config.api_key != ""))

    @bp.get("/openapi.json")
    def openapi():
        return Response(registry.current.derived("openapi", render), mimetype="application/json")

    return bp
