"""POST /tasks/<name>/predict: the request path. Kept lean: orjson in and out, Codec.check, one Predictor call."""
from __future__ import annotations

import hmac
import json

import orjson
from flask import Blueprint, Response, request
from werkzeug.exceptions import ClientDisconnected

from ..errors import BadRequest, Unauthorized, UnsupportedMediaType
from ..parsing import parse_predict

JSON = "application/json"  # as the content_type argument: werkzeug adds no charset and parses nothing


def blueprint(state) -> Blueprint:
    bp = Blueprint("predict", __name__)
    registry, limits = state.registry, state.limits
    api_key = state.config.api_key.encode() if state.config.api_key else b""
    max_body = state.config.max_body_bytes
    predictors, unavailable = registry.predictors, registry.unavailable
    models = {name: {"sha256": p.sha256} for name, p in predictors.items()}

    @bp.post("/tasks/<name>/predict")
    def predict(name: str):
        environ = request.environ  # one context lookup, then plain dict reads
        if api_key and not _authorized(api_key):
            raise Unauthorized("a valid API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key'",
                               headers={"WWW-Authenticate": 'Bearer realm="toyseq"'})
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


def read_json(environ: dict, max_body: int):
    """The body as JSON, or 415 (not declared JSON) / 400 (malformed, NaN, too deeply nested) / 413 (too big)."""
    # The usual header, exactly "application/json", needs no parsing (request.mimetype parses options).
    mimetype = "application/json" if environ.get("CONTENT_TYPE") == "application/json" else request.mimetype
    if not (mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
        raise UnsupportedMediaType(f"the body must be JSON (Content-Type: application/json), "
                                   f"got {mimetype or 'no content type'!r}"[:200])
    data = _read_body(environ, max_body)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        return _lenient(data, err)


def _read_body(environ: dict, max_body: int) -> bytes:
    """The body. The usual request, a plain Content-Length within the limit, is read straight from the WSGI
    input (the server stops it at Content-Length); anything else goes through werkzeug, which answers 413
    past MAX_CONTENT_LENGTH and bounds bodies without a length."""
    length = environ.get("CONTENT_LENGTH")
    if length and length.isdigit() and length.isascii():
        size = int(length)
        if size <= max_body:
            data = environ["wsgi.input"].read(size)
            if len(data) != size:
                raise ClientDisconnected()
            return data
    return request.get_data(cache=False)  # werkzeug enforces MAX_CONTENT_LENGTH here (413)


def _lenient(data: bytes, err: Exception):
    """orjson refuses NaN, Infinity and numbers beyond float range, which are well-formed enough to locate:
    read them with the standard parser (it turns them into floats) so validation answers 422 at their
    pointer. Anything else orjson refused, including nesting past its depth limit, stays a 400."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise BadRequest(f"the body is not valid JSON: {err}") from None


def _authorized(key: bytes) -> bool:
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("X-API-Key", "")
    return hmac.compare_digest(given.encode("utf-8", "replace"), key)
