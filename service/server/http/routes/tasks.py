"""GET /tasks and GET /tasks/<name>: what each task does, its contract, evaluation results and an example."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, request

from ...runtime import Runtime
from ...store.registry import Snapshot, lookup


def blueprint(runtime: Runtime) -> Blueprint:
    bp = Blueprint("tasks", __name__)
    registry = runtime.registry

    # Manifests change only when a load publishes a new snapshot: every answer is rendered once per snapshot.
    def listing(snapshot: Snapshot) -> bytes:
        return orjson.dumps({"tasks": [describe(name, runtime, snapshot) for name in snapshot.names]})

    def details(snapshot: Snapshot) -> dict[str, bytes]:
        return {name: orjson.dumps(describe(name, runtime, snapshot, detail=True)) for name in snapshot.names}

    @bp.get("/tasks")
    def list_tasks():
        return Response(registry.current.derived("tasks.listing", listing), mimetype="application/json")

    @bp.get("/tasks/<name>")
    def show_task(name: str):
        snapshot = registry.current
        rendered = snapshot.derived("tasks.details", details)
        if name not in rendered:
            lookup(snapshot, name)  # raises the 404 naming the known tasks
        request.environ["toyseq.task"] = name
        return Response(rendered[name], mimetype="application/json")

    return bp


def describe(name: str, runtime: Runtime, snapshot: Snapshot | None = None, detail: bool = False) -> dict:
    snapshot = snapshot or runtime.registry.current
    predictor = snapshot.predictors.get(name)
    if predictor is None:
        return {"name": name, "available": False, "reason": snapshot.unavailable[name]}
    m = predictor.manifest
    limit = runtime.limits
    capabilities = limit.capabilities(predictor)
    info = {
        "name": name,
        "available": True,
        "description": m["description"],
        "input": m["input"],
        "output": m["output"],
        # which accepted inputs are of the task's kind: answers say in_domain per input
        "domain": {**m["domain"], "description": predictor.domain.description()},
        "rollout": predictor.rollout,
        "max_steps": capabilities.max_steps or None,
        "top_k": bool(capabilities.max_top_k),
        "max_top_k": capabilities.max_top_k or None,
        "model": {"sha256": predictor.sha256, "opset": m["onnx"]["opset"]},
        "evaluation": m["gates"],
        "predict": f"/tasks/{name}/predict",
    }
    if detail:
        body = {"inputs": [m["example"]["input"]]}
        info["example"] = {
            "request": {
                "method": "POST",
                "path": f"/tasks/{name}/predict",
                "headers": {"Content-Type": "application/json"},
                "body": body,
            },
            "expected_outputs": [m["example"]["output"]],
            "curl": (
                f"curl -s -X POST http://HOST/tasks/{name}/predict -H 'Content-Type: application/json' "
                f"-d '{orjson.dumps(body).decode()}'"
            ),
        }
        info["limits"] = {
            "max_batch": limit.max_batch,
            "max_body_bytes": runtime.config.max_body_bytes,
            "max_rollout_values": limit.max_rollout_values,
        }
    return info
