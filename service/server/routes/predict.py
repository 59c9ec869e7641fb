"""POST /tasks/<name>/predict: the request path. Kept lean: orjson in and out, Codec.check, one Predictor call."""

from __future__ import annotations

import json
from time import perf_counter

import orjson
from flask import Blueprint, Response, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from ..auth import MESSAGE as KEY_REQUIRED
from ..auth import key_matches
from ..errors import BadRequest, Unauthorized, UnsupportedMediaType
from ..parsing import parse_predict
from ..registry import lookup
from ..statistics import Timing

JSON = "application/json"  # as the content_type argument: werkzeug adds no charset and parses nothing


def blueprint(state) -> Blueprint:
    bp = Blueprint("predict", __name__)
    registry, limits = state.registry, state.limits
    api_key = state.config.api_key.encode() if state.config.api_key else b""
    max_body = state.config.max_body_bytes

    @bp.post("/tasks/<name>/predict")
    def predict(name: str):
        environ = request.environ  # one context lookup, then plain dict reads
        if api_key and not _authorized(api_key):
            raise Unauthorized(
                KEY_REQUIRED,
                headers={"WWW-Authenticate": 'Bearer realm="toyseq"'},
            )
        snapshot = registry.current  # this request's models, start to end, whatever a load swaps meanwhile
        predictor = snapshot.predictors.get(name)
        if predictor is None:
            if name in snapshot.unavailable:
                environ["toyseq.task"] = name
            lookup(snapshot, name)  # raises: 404 unknown, 503 unavailable
        environ["toyseq.task"] = name
        timing = environ["toyseq.inference"] = Timing(predictor)  # the statistics extension's durations
        arrays, steps, top_k = parse_predict(predictor, read_json(environ, max_body), limits)
        timing.infer = perf_counter()
        result = predictor.predict(arrays, steps=steps, top_k=top_k)
        timing.output = perf_counter()
        environ["toyseq.sequences"] = len(arrays)  # counted by the app's middleware
        return Response(
            orjson.dumps({"task": name, "model": {"sha256": predictor.sha256}, **result}), content_type=JSON
        )

    return bp


def read_json(environ: dict, max_body: int):
    """The body as JSON, or 415 (not declared JSON, not UTF-8, compressed) / 400 (malformed, NaN, too deeply
    nested, lone surrogates, malformed chunking) / 413 (too big, with or without Content-Length)."""
    # The usual header, exactly "application/json", needs no parsing (request.mimetype parses options).
    content_type = environ.get("CONTENT_TYPE")
    if content_type == "application/json":
        mimetype = content_type
    else:
        mimetype = request.mimetype
        if not (mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
            raise UnsupportedMediaType(
                f"the body must be JSON (Content-Type: application/json), got {mimetype or 'no content type'!r}"[:200]
            )
        charset = request.mimetype_params.get("charset", "utf-8").strip().lower()
        if charset not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(
                f"the body must be UTF-8 JSON (RFC 8259), got charset={charset!r}"[:200],
                extra={"charset": charset[:40]},
            )
    coding = environ.get("HTTP_CONTENT_ENCODING")
    if coding and coding.strip().lower() != "identity":
        raise UnsupportedMediaType(
            f"Content-Encoding {coding.strip()!r} is not supported; send the JSON uncompressed (identity)"[:200],
            headers={"Accept-Encoding": "identity"},
        )
    data = _read_body(environ, max_body)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        return _lenient(data, err)


def _read_body(environ: dict, max_body: int) -> bytes:
    """The body, at most `max_body` bytes (413 past it). A plain Content-Length is read in one call (the server
    stops it there); a body without one (chunked) is read in blocks up to the limit, since werkzeug would
    silently cut it at MAX_CONTENT_LENGTH. gunicorn's errors for malformed chunking become 400 (errors.py)."""
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    if length:
        if not (length.isdigit() and length.isascii()):
            raise BadRequest(f"Content-Length {length[:40]!r} is not a number of bytes")
        size = int(length)
        if size > max_body:
            raise RequestEntityTooLarge()
        data = stream.read(size)
        if len(data) != size:
            raise ClientDisconnected()
        return data
    if not environ.get("wsgi.input_terminated"):
        return b""  # neither a length nor a terminated stream (chunked): HTTP says there is no body
    blocks: list[bytes] = []
    size = 0
    while True:
        block = stream.read(min(1 << 16, max_body + 1 - size))
        if not block:
            return b"".join(blocks)
        blocks.append(block)
        size += len(block)
        if size > max_body:
            raise RequestEntityTooLarge()


def _lenient(data: bytes, err: Exception):
    """orjson refuses NaN, Infinity and numbers beyond float range, which are well-formed enough to locate:
    read them with the standard parser (it turns them into floats) so validation answers 422 at their
    pointer. Anything else orjson refused, including nesting past its depth limit, stays a 400. Bodies that
    are not UTF-8 are refused first (the standard parser would guess UTF-16 or UTF-32 from bytes), and so are
    lone surrogate escapes ("\\ud800"), which no valid Unicode text holds and orjson cannot write back."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4]:  # a BOM or a NUL among the first four
        raise UnsupportedMediaType("the body looks like UTF-16 or UTF-32; JSON on the wire is UTF-8 (RFC 8259)")
    if data[:3] == b"\xef\xbb\xbf":
        raise BadRequest("the body starts with a UTF-8 byte order mark; JSON on the wire has none (RFC 8259)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as bad:
        raise UnsupportedMediaType(
            f"the body is not UTF-8: byte {bad.start} is invalid; JSON on the wire is UTF-8 (RFC 8259)",
            extra={"position": bad.start},
        ) from None
    if "surrogate" in str(err):
        raise BadRequest(f"the body is not valid JSON: {err} (a lone \\uD800-\\uDFFF escape is not a character)")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequest(f"the body is not valid JSON: {err}") from None


def _authorized(key: bytes) -> bool:
    return key_matches(key, request.headers.get("Authorization"), request.headers.get("X-API-Key"))
