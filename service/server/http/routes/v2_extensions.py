"""The v2 protocol's statistics and model repository extensions over HTTP; thin: the logic is in
statistics.py and repository.py (gRPC serves the same calls).

    GET  /v2/models/stats, /v2/models/<m>/stats, /v2/models/<m>/versions/<v>/stats
    POST /v2/repository/index                     body optional: {"ready": true}
    POST /v2/repository/models/<m>/load           TOYSEQ_MODEL_CONTROL=explicit, and the API key when set;
                                                  body optional: {"parameters": {"config": "<ModelConfig JSON>"}}
    POST /v2/repository/models/<m>/unload         likewise

Errors are the protocol's {"error": "..."} (the status as the native API's: 403 control off, 400 a refused
model, 404 unknown, 503 unavailable).
"""

from __future__ import annotations

import logging

import orjson
from flask import Blueprint, Response, request

from ...problems import BadRequest
from ...protocol import offload
from ...runtime import Runtime
from ..errors import register_v2
from .common import api_key_required, read_body

JSON = "application/json"
MAX_CONTROL_BODY = 64 * 1024  # index, load and unload bodies are a few parameters at most
log = logging.getLogger("toyseq.error")


def blueprint(runtime: Runtime) -> Blueprint:
    bp = Blueprint("v2_extensions", __name__)
    registry, statistics, repository = runtime.registry, runtime.statistics, runtime.repository

    def who() -> dict:
        """Who asked, for the log lines."""
        environ = request.environ
        return {"request_id": environ.get("toyseq.request_id"), "remote": environ.get("REMOTE_ADDR")}

    def refused() -> None:
        log.warning("model control without a valid API key", extra={"fields": who()})

    privileged = api_key_required(runtime.config.api_key, on_refused=refused)  # 401 without the key, when set

    @bp.get("/v2/models/stats")
    @bp.get("/v2/models/<name>/stats")
    @bp.get("/v2/models/<name>/versions/<version>/stats")
    def stats(name: str | None = None, version: str | None = None):
        if name is not None:
            _name_task(name)
        return _json(statistics.model_stats(registry.current, name, version))

    @bp.post("/v2/repository/index")
    def index():
        body = _body()
        _check_parameters(body, (), "index")  # found by the schema fuzz: {"parameters": true} was a 200
        ready = body.get("ready", False)
        if not isinstance(ready, bool):
            raise BadRequest(f"'ready' must be true or false, got {orjson.dumps(ready).decode()[:40]}")
        return Response(orjson.dumps(repository.index(ready_only=ready)), content_type=JSON)

    @bp.post("/v2/repository/models/<name>/load")
    @privileged
    def load(name: str):
        offload.off_the_loop()  # it waits for every worker to load the model
        _name_task(name)
        body = _body()
        _check_parameters(body, (), "load")
        config = body.get("parameters", {}).get("config")  # Triton's override, a ModelConfig as a JSON string
        if config is not None and not isinstance(config, str):
            config = orjson.dumps(config).decode()  # the same given as an object
        return _json(repository.load(name, who(), config))

    @bp.post("/v2/repository/models/<name>/unload")
    @privileged
    def unload(name: str):
        offload.off_the_loop()
        _name_task(name)
        _check_parameters(_body(), (), "unload")
        return _json(repository.unload(name, who()))

    def _name_task(name: str) -> None:
        # Only a known task names the access line and metric labels (bounded label values).
        if name in registry.current.names:
            request.environ["toyseq.task"] = name

    register_v2(bp)
    return bp


def _body() -> dict:
    """The optional JSON object body of a control call ({} when empty)."""
    data = read_body(request.environ, MAX_CONTROL_BODY)
    if not data.strip():
        return {}
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise BadRequest(f"the body is not valid JSON: {err}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _check_parameters(body: dict, unsupported: tuple[str, ...], action: str) -> None:
    """Triton's load can carry files: toyseq reads models only from their folder, so those are refused rather
    than silently ignored (a `config` is checked by the repository). Other parameters (unload_dependents) change
    nothing here."""
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise BadRequest("'parameters' must be a JSON object")
    refused = [k for k in parameters if k in unsupported or k.startswith("file:")]
    if refused:
        raise BadRequest(
            f"{action} parameter {refused[0]!r} is not supported: toyseq loads a model only from its folder "
            "(replace the folder, then load)"
        )


def _json(body: dict) -> Response:
    return Response(orjson.dumps(body), content_type=JSON)
