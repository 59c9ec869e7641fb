"""The Open Inference Protocol v2 over HTTP (what tritonclient and KServe's clients speak), beside the native
API: GET /v2, /v2/health/live, /v2/health/ready, /v2/models (KServe's list), /v2/models/<task>[/versions/<v>],
.../config (Triton's model configuration),
.../ready and POST .../infer. The translation lives in openinference.py; the API key, body limit and
decompression (routes/common.py), request ids, metrics and access lines are the native path's. Errors are the
protocol's {"error": "..."}, never problem+json.
"""

from __future__ import annotations

from time import perf_counter

import orjson
from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException

from ...problems import ServiceError
from ...protocol import v2 as oip
from ...protocol.statistics import Timing
from ...runtime import Runtime
from ..compression import compressed
from ..errors import register_v2
from .common import PARSED, api_key_required, check_structure, read_body

JSON = "application/json"


def blueprint(runtime: Runtime) -> Blueprint:
    bp = Blueprint("v2", __name__)
    registry = runtime.registry
    max_body = runtime.config.max_body_bytes
    service = runtime.protocol
    server = orjson.dumps(service.server_metadata)

    def entry(name: str, version: str | None) -> tuple[oip.Model, bytes]:
        """The model and its rendered metadata from the snapshot served now: the request keeps this one."""
        if name in registry.current.predictors:
            request.environ["toyseq.task"] = name
        return service.entry(name, version)

    def model(name: str, version: str | None) -> oip.Model:
        return entry(name, version)[0]

    @bp.get("/v2")
    def server_metadata():
        return Response(server, content_type=JSON)

    @bp.get("/v2/health/live")
    def live():
        return Response(b'{"live":true}', content_type=JSON)

    @bp.get("/v2/health/ready")
    def ready():
        # Ready as /readyz (some task serves); /v2/models/<task>/ready says which do.
        ok = service.ready()
        return Response(b'{"ready":true}' if ok else b'{"ready":false}', status=200 if ok else 503, content_type=JSON)

    @bp.get("/v2/models")
    def model_list():
        # KServe's model list: every task served now or unavailable (its ready answer says which)
        listing = registry.current.derived("v2.listing", lambda snapshot: orjson.dumps({"models": snapshot.names}))
        return Response(listing, content_type=JSON)

    @bp.get("/v2/models/<name>")
    @bp.get("/v2/models/<name>/versions/<version>")
    def model_metadata(name: str, version: str | None = None):
        return Response(entry(name, version)[1], content_type=JSON)

    @bp.get("/v2/models/<name>/config")
    @bp.get("/v2/models/<name>/versions/<version>/config")
    def model_config(name: str, version: str | None = None):
        # Triton's model configuration extension (what perf_analyzer reads first)
        if name in registry.current.predictors:
            request.environ["toyseq.task"] = name
        return Response(service.config(name, version)[1], content_type=JSON)

    @bp.get("/v2/models/<name>/ready")
    @bp.get("/v2/models/<name>/versions/<version>/ready")
    def model_ready(name: str, version: str | None = None):
        if name in registry.current.unavailable:
            request.environ["toyseq.task"] = name
        if not service.model_ready(name, None):
            return Response(orjson.dumps({"name": name, "ready": False}), status=503, content_type=JSON)
        model(name, version)  # 404 for a version not served (gRPC's ModelReady answers ready=false, as Triton)
        return Response(orjson.dumps({"name": name, "ready": True}), content_type=JSON)

    @bp.post("/v2/models/<name>/infer")
    @bp.post("/v2/models/<name>/versions/<version>/infer")
    @api_key_required(runtime.config.api_key)
    def infer(name: str, version: str | None = None):
        environ = request.environ
        found = model(name, version)
        timing = environ["toyseq.inference"] = Timing(found.version)  # the statistics extension's durations
        loaded = environ.get(PARSED)  # set when the inline call parsed it and moved it to the pool
        if loaded is None:
            header_length = environ.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH")
            # all JSON: its arrays counted as it is read (and inflated); with binary tensor data, the JSON part only
            max_batch = runtime.limits.max_batch
            header, binary = oip.split_body(
                read_body(environ, max_body, None if header_length else max_batch), header_length
            )
            if header and header_length:
                check_structure(header, max_batch)
            loaded = environ[PARSED] = oip.load_infer(header, binary)
        checked = oip.check_loaded(found, loaded)
        started = environ.get("toyseq.started")
        oip.check_deadline(found, checked, perf_counter() - started if started else 0.0)
        timing.infer = perf_counter()
        result = service.run(found, checked)
        timing.output = perf_counter()
        # counted by the app's middleware, with those outside the domain
        environ["toyseq.sequences"] = len(checked.arrays)
        environ["toyseq.outside"] = result["in_domain"].count(False)
        body, data = oip.render(found, checked, result)
        if data is None:
            response = Response(body, content_type=JSON)
        else:
            response = Response(body + data, content_type="application/octet-stream")
            response.headers["Inference-Header-Content-Length"] = str(len(body))
        ignored = checked.ignored_header()
        if ignored:
            response.headers[oip.IGNORED_HEADER] = ignored
        return compressed(response, environ)  # when the client asks (tritonclient's response_compression_algorithm)

    @bp.route("/v2/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def unknown(rest: str):
        # Reached by any other /v2 path, or a v2 path with the wrong method: the protocol's error either way.
        adapter = current_app.url_map.bind("")
        allowed = []
        for method in ("GET", "POST"):
            try:
                endpoint, _ = adapter.match(request.path, method=method)
            except HTTPException:
                continue
            if endpoint != "v2.unknown":
                allowed.append(method)
        if allowed:
            raise ServiceError(
                f"{request.method} is not allowed on {request.path[:100]}; use {', '.join(allowed)}",
                status=405,
                headers={"Allow": ", ".join(allowed)},
            )
        raise ServiceError(f"no v2 endpoint {request.method} /v2/{rest[:100]}; see /openapi.json", status=404)

    register_v2(bp)
    return bp
