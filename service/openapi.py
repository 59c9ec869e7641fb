"""The OpenAPI 3.1 description of the HTTP contract, built from the tasks a worker serves and its limits."""
from __future__ import annotations

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problem(description: str) -> dict:
    return {"description": description, "content": {"application/problem+json": {"schema": PROBLEM}}}


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def document(task_names: list[str], limits, api_key: bool) -> dict:
    task_param = {"name": "name", "in": "path", "required": True, "description": "task name, see GET /tasks",
                  "schema": {"type": "string", "examples": task_names[:1] or ["echo"]}}
    number = {"type": "number"}
    predict = {
        "summary": "Answer a batch of sequences",
        "operationId": "predict",
        "parameters": [task_param],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/PredictRequest"}}}},
        "responses": {
            "200": _json("one output per input, in order", {"$ref": "#/components/schemas/PredictResponse"}),
            "400": _problem("the body is not valid JSON (or is nested too deeply)"),
            "401": _problem("missing or wrong API key (only when the service has one)"),
            "404": _problem("unknown task; the body names the known ones"),
            "413": _problem("the body is larger than the limit"),
            "415": _problem("the body is not declared as JSON"),
            "422": _problem("the request is valid JSON but not a valid request; `errors` locates each problem"),
            "503": _problem("the task's model could not be loaded; `detail` gives the reason"),
        },
    }
    if api_key:
        predict["security"] = [{"bearer": []}, {"apiKey": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "toyseq", "version": "1.0.0",
                 "description": "Serves small LSTM sequence predictors (ONNX + onnxruntime)."},
        "paths": {
            "/tasks/{name}/predict": {"post": predict},
            "/tasks": {"get": {"summary": "Every task with its contract and evaluation results",
                               "operationId": "listTasks",
                               "responses": {"200": _json("the tasks", {"type": "object", "required": ["tasks"],
                                                                        "properties": {"tasks": {
                                                                            "type": "array",
                                                                            "items": {"$ref": "#/components/schemas/Task"}}}})}}},
            "/tasks/{name}": {"get": {"summary": "One task, with a ready-to-run example request",
                                      "operationId": "getTask", "parameters": [task_param],
                                      "responses": {"200": _json("the task", {"$ref": "#/components/schemas/Task"}),
                                                    "404": _problem("unknown task")}}},
            "/tasks/{name}/training.png": {"get": {
                "summary": "The task's training curve (training and validation loss per step)",
                "operationId": "getTrainingCurve", "parameters": [task_param],
                "responses": {"200": {"description": "PNG image",
                                      "content": {"image/png": {"schema": {"type": "string",
                                                                           "contentMediaType": "image/png"}}}},
                              "404": _problem("unknown task, or the task has no training curve")}}},
            "/": {"get": {"summary": "The playground: an HTML page to try every task in a browser",
                          "operationId": "playground",
                          "responses": {"200": {"description": "HTML page",
                                                "content": {"text/html": {"schema": {"type": "string"}}}}}}},
            "/healthz": {"get": {"summary": "The process is alive", "operationId": "healthz",
                                 "responses": {"200": _json("alive", {"type": "object"})}}},
            "/readyz": {"get": {"summary": "Every model is loaded and warmed", "operationId": "readyz",
                                "responses": {"200": _json("ready", {"type": "object"}),
                                              "503": _problem("not ready; names the tasks that cannot be served")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics summed over all workers", "operationId": "metrics",
                                 "responses": {"200": {"description": "Prometheus text format",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                      "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})}}},
        },
        "components": {
            "schemas": {
                "PredictRequest": {
                    "type": "object", "required": ["inputs"], "additionalProperties": False,
                    "properties": {
                        "inputs": {"type": "array", "minItems": 1, "maxItems": limits.max_batch,
                                   "items": {"type": "array", "items": number},
                                   "description": "sequences; each task's length and value range: GET /tasks/{name}"},
                        "steps": {"type": "integer", "minimum": 1, "maximum": limits.max_steps,
                                  "description": "next-value tasks only: roll out this many values per input"},
                        "top_k": {"type": "integer", "minimum": 1,
                                  "description": "single-class tasks only: the k most likely values"},
                    },
                    "examples": [{"inputs": [[3, 1, 4]]}],
                },
                "PredictResponse": {
                    "type": "object", "required": ["task", "model", "outputs"],
                    "properties": {
                        "task": {"type": "string"},
                        "model": {"type": "object", "required": ["sha256"],
                                  "properties": {"sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}},
                        "outputs": {"type": "array", "items": {"oneOf": [number, {"type": "array", "items": number}]}},
                        "top_k": {"type": "array", "items": {"type": "array", "items": {
                            "type": "object", "required": ["value", "p"],
                            "properties": {"value": {"type": "integer"},
                                           "p": {"type": "number", "minimum": 0, "maximum": 1}}}}},
                        "wrong_position": {
                            "type": "array", "items": {"type": ["integer", "null"], "minimum": 0},
                            "description": ("arith-next only: per input, the 0-based position of the value the "
                                            "model judged wrong (the answer is computed from the others), or "
                                            "null when it judged every value right; with steps, it describes "
                                            "the input window")},
                    },
                },
                "Task": {
                    "type": "object", "required": ["name", "available"],
                    "properties": {"name": {"type": "string"}, "available": {"type": "boolean"},
                                   "reason": {"type": "string"}, "description": {"type": "string"},
                                   "input": {"type": "object"}, "output": {"type": "object"},
                                   "rollout": {"type": "boolean"}, "top_k": {"type": "boolean"},
                                   "model": {"type": "object"}, "evaluation": {"type": "array"},
                                   "example": {"type": "object"}},
                },
                "Problem": {
                    "type": "object", "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string", "format": "uri-reference"},
                        "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"},
                        "errors": {"type": "array", "items": {
                            "type": "object", "required": ["pointer", "message"],
                            "properties": {"pointer": {"type": "string"}, "message": {"type": "string"}}}},
                    },
                },
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
