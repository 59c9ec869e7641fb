"""POST /tasks/<name>/predict: the request path. Kept lean: orjson in and out, Codec.check, one Predictor call."""

from __future__ import annotations

from time import perf_counter

import orjson
from flask import Blueprint, Response, request

from ...protocol.checks import parse_predict
from ...protocol.statistics import Timing
from ...runtime import Runtime
from ...store.registry import lookup
from ..compression import compressed
from .common import api_key_required, read_json

JSON = "application/json"  # as the content_type argument: werkzeug adds no charset and parses nothing


def blueprint(runtime: Runtime) -> Blueprint:
    bp = Blueprint("predict", __name__)
    registry, limits = runtime.registry, runtime.limits
    max_body = runtime.config.max_body_bytes

    @bp.post("/tasks/<name>/predict")
    @api_key_required(runtime.config.api_key)
    def predict(name: str):
        environ = request.environ  # one context lookup, then plain dict reads
        snapshot = registry.current  # this request's models, start to end, whatever a load swaps meanwhile
        predictor = snapshot.predictors.get(name)
        if predictor is None:
            if name in snapshot.unavailable:
                environ["toyseq.task"] = name
            predictor = lookup(snapshot, name)  # raises: 404 unknown, 503 unavailable
        environ["toyseq.task"] = name
        timing = environ["toyseq.inference"] = Timing(snapshot.version(name))  # the statistics extension's durations
        task_limits = snapshot.limits.get(name, limits)  # a load's config may override max_batch_size
        # the body's arrays are counted as it is read against the service's batch limit (read_json)
        arrays, steps, top_k = parse_predict(predictor, read_json(environ, max_body, limits.max_batch), task_limits)
        timing.infer = perf_counter()
        result = predictor.predict(arrays, steps=steps, top_k=top_k, arrays=True)  # numpy answers, written by orjson
        timing.output = perf_counter()
        environ["toyseq.sequences"] = len(arrays)  # counted by the app's middleware, with those outside the domain
        environ["toyseq.outside"] = result["in_domain"].count(False)
        answer = orjson.dumps(
            {"task": name, "model": {"sha256": predictor.sha256}, **result}, option=orjson.OPT_SERIALIZE_NUMPY
        )
        return compressed(Response(answer, content_type=JSON), environ)  # when the client asks

    return bp
