"""KServe's V1 protocol (TensorFlow Serving's predict API, which KServe's model server answers by default and its
InferenceRESTClient speaks unless told otherwise) in toyseq's terms, without Flask:

    GET  /v1/models                  {"models": [names]}
    GET  /v1/models/<m>              {"name": m, "ready": true}; 503 {"error": ...} when it cannot serve
    POST /v1/models/<m>:predict      {"instances": [[...], ...]} -> {"predictions": [...]}

A predict body is KServe's: "instances" (TF Serving's row format) or "inputs" (its columnar key, which for one
input of sequences is the same list); an instance is a sequence, or an object naming it by the v2 input name
({"input": [...]}), as the row format allows. toyseq's own options ride beside them as in the native body
("steps", "top_k"). Every instance goes through the native path's one check (checks.parse_predict: values,
lengths, batch, steps, the cost budget), and the answer is the native answer's outputs as "predictions", with
the outputs a task adds (wrong_position, top_k) beside them under their native names, one per instance.

Errors are KServe's {"error": "..."}: 400 for bad input (KServe's InvalidInput), its words for an unknown model
("Model with name x does not exist.", 404) and one that cannot serve ("... is not ready.", 503).
"""

from __future__ import annotations

from typing import Any

from service.core.codec import Problem
from service.core.predictor import Predictor

from ..problems import BadRequest, InvalidRequest, NotFound, TaskUnavailable
from ..store.registry import Limits, Snapshot
from .checks import parse_predict
from .v2 import INPUT

INSTANCE_KEYS = ("instances", "inputs")  # KServe accepts either (kserve.model.Model.validate)
OPTION_KEYS = ("steps", "top_k")
SHOWN = 20  # problems named in one message at most (the native path lists as many)


def model(snapshot: Snapshot, name: str) -> Predictor:
    """The task's predictor, or KServe's errors: ModelNotFound (404) and ModelNotReady (503, with the reason)."""
    predictor = snapshot.predictors.get(name)
    if predictor is not None:
        return predictor
    shown = name if len(name) <= 60 else name[:57] + "..."
    if name in snapshot.unavailable:
        raise TaskUnavailable(f"Model with name {shown} is not ready. {snapshot.unavailable[name]}")
    raise NotFound(f"Model with name {shown} does not exist. Known models: {', '.join(snapshot.names) or 'none'}")


def ready(snapshot: Snapshot, name: str) -> dict:
    model(snapshot, name)
    return {"name": name, "ready": True}


def listing(snapshot: Snapshot) -> dict:
    """KServe lists the models its registry holds: every task, served or not (GET /v1/models/<m> says which)."""
    return {"models": snapshot.names}


def check(predictor: Predictor, body: Any, limits: Limits) -> tuple[Any, int | None, int | None, str]:
    """(checked arrays, steps, top_k, the instances key used) of a V1 predict body, or BadRequest naming every
    problem by its place in the body (/instances/0/2)."""
    if type(body) is not dict:
        raise BadRequest('the body must be a JSON object like {"instances": [[...], ...]}')
    keys = [key for key in INSTANCE_KEYS if key in body]
    if len(keys) != 1:
        raise BadRequest('the body must have exactly one of "instances" or "inputs", a list of sequences')
    key = keys[0]
    unknown = [k for k in body if k not in (key, *OPTION_KEYS)]
    if unknown:
        raise BadRequest(f"unknown field {unknown[0][:60]!r}; allowed: {key}, {', '.join(OPTION_KEYS)}")
    instances = body[key]
    if type(instances) is not list:
        raise BadRequest(f'Expected "{key}" to be a list')  # KServe's words
    native = {"inputs": [_sequence(item) for item in instances], **{k: body[k] for k in OPTION_KEYS if k in body}}
    try:
        arrays, steps, top_k = parse_predict(predictor, native, limits)
    except InvalidRequest as err:
        raise BadRequest(_worded(err, key)) from None
    return arrays, steps, top_k, key


def answer(result: dict) -> dict:
    """The native result as V1 predictions: one per instance, in order; a task's extra outputs beside them."""
    return {"predictions": result["outputs"], **{k: v for k, v in result.items() if k != "outputs"}}


def _sequence(item: Any) -> Any:
    # TF Serving's row format may name each instance's input: {"input": [...]} is that sequence.
    if type(item) is dict and len(item) == 1 and INPUT in item:
        return item[INPUT]
    return item


def _worded(err: InvalidRequest, key: str) -> str:
    """The native problems, located in the V1 body: /inputs/... is /<key>/..."""
    problems = [_located(p, key) for p in err.errors[:SHOWN]]
    more = f" (and {err.total - len(problems)} more)" if err.total > len(problems) else ""
    return "invalid input: " + "; ".join(problems) + more if problems else err.message


def _located(problem: Problem, key: str) -> str:
    pointer = problem.pointer
    if pointer == "/inputs" or pointer.startswith("/inputs/"):
        pointer = f"/{key}" + pointer[len("/inputs") :]
    return f"{pointer or '/'}: {problem.message}"
