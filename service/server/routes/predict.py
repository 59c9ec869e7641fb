"""POST /tasks/<name>/predict: the request path. Kept lean: orjson in and out, Codec.check, one Predictor call."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, request

from ..parsing import parse_predict
from .common import api_key_required, read_json

JSON = "application/json"  # as the content_type argument: werkzeug adds no charset and parses nothing


def blueprint(state) -> Blueprint:
    bp = Blueprint("predict", __name__)
    registry, limits = state.registry, state.limits
    max_body = state.config.max_body_bytes
    predictors, unavailable = registry.predictors, registry.unavailable
    models = {name: {"sha256": p.sha256} for name, p in predictors.items()}

    @bp.post("/tasks/<name>/predict")
    @api_key_required(state.config.api_key)
    def predict(name: str):
        environ = request.environ  # one context lookup, then plain dict reads
        predictor = predictors.get(name)
        if predictor is None:
            if name in unavailable:
                environ["toyseq.task"] = name
            registry.get(name)  # raises: 404 unknown, 503 unavailable
        environ["toyseq.task"] = name
        arrays, steps, top_k = parse_predict(predictor, read_json(environ, max_body), limits)
        result = predictor.predict(arrays, steps=steps, top_k=top_k)
        environ["toyseq.sequences"] = len(arrays)  # counted by the app's middleware
        return Response(orjson.dumps({"task": name, "model": models[name], **result}), content_type=JSON)

    return bp
