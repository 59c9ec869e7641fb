"""KServe's V1 protocol over HTTP (GET /v1/models, GET /v1/models/<m>, POST /v1/models/<m>:predict): thin, the
logic is in protocol/v1.py. The API key, body limit and decompression (routes/common.py), request ids, metrics,
access lines and the statistics extension's counts are the native path's; errors are KServe's {"error": ...}."""

from __future__ import annotations

from time import perf_counter

import orjson
from flask import Blueprint, Response, request

from ...problems import ServiceError
from ...protocol import v1
from ...protocol.statistics import Timing
from ...runtime import Runtime
from ..compression import compressed
from ..errors import register_v2
from .common import api_key_required, read_json

JSON = "application/json"


def blueprint(runtime: Runtime) -> Blueprint:
    bp = Blueprint("v1", __name__)
    registry, limits = runtime.registry, runtime.limits
    max_body = runtime.config.max_body_bytes

    @bp.get("/v1/models")
    def models():
        return _json(v1.listing(registry.current))

    @bp.get("/v1/models/<name>")
    def model_ready(name: str):
        snapshot = registry.current
        _name_task(snapshot, name)
        return _json(v1.ready(snapshot, name))

    @bp.post("/v1/models/<name>:predict")
    @api_key_required(runtime.config.api_key)
    def predict(name: str):
        environ = request.environ
        snapshot = registry.current  # this request's model, start to end
        _name_task(snapshot, name)
        predictor = v1.model(snapshot, name)
        timing = environ["toyseq.inference"] = Timing(snapshot.version(name))  # the statistics extension's
        task_limits = snapshot.limits.get(name, limits)  # a load's config may override max_batch_size
        arrays, steps, top_k, _ = v1.check(predictor, read_json(environ, max_body), task_limits)
        timing.infer = perf_counter()
        result = predictor.predict(arrays, steps=steps, top_k=top_k)
        timing.output = perf_counter()
        environ["toyseq.sequences"] = len(arrays)
        return compressed(_json(v1.answer(result)), environ)  # when the client asks

    @bp.route("/v1/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def unknown(rest: str):
        # Any other /v1 path or method, KServe's error shape: 405 naming the method a V1 path takes, else 404
        # (":explain" included: toyseq has no explainer).
        model = rest[len("models/") :] if rest.startswith("models/") else None
        allowed = None
        if rest == "models" or (model and "/" not in model and ":" not in model):
            allowed = "GET"
        elif model and "/" not in model and model.endswith(":predict"):
            allowed = "POST"
        if allowed:
            raise ServiceError(
                f"{request.method} is not allowed on {request.path[:100]}; use {allowed}",
                status=405,
                headers={"Allow": allowed},
            )
        raise ServiceError(f"no V1 endpoint {request.method} /v1/{rest[:100]}; see /openapi.json", status=404)

    register_v2(bp)  # the same {"error": ...} rendering as the v2 paths (a native 422 is a 400)
    return bp


def _name_task(snapshot, name: str) -> None:
    # Only a known task names the access line and metric labels (bounded label values).
    if name in snapshot.names:
        request.environ["toyseq.task"] = name


def _json(body: dict) -> Response:
    return Response(orjson.dumps(body), content_type=JSON)
