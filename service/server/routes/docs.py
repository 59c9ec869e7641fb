"""GET /openapi.json: the API description, rendered once per worker."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response

from ..openapi import document


def blueprint(state) -> Blueprint:
    bp = Blueprint("docs", __name__)
    body = orjson.dumps(document(state.registry.names, state.limits, state.config.api_key != ""))

    @bp.get("/openapi.json")
    def openapi():
        return Response(body, mimetype="application/json")

    return bp
