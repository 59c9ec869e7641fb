"""The OpenAPI 3.1 description of the HTTP contract, built from the tasks a worker serves and its limits.

The request fields, parameters, tensor names, datatypes, encodings and limits come from the constants the
checks themselves use (parsing.py, openinference.py, routes/common.py, capabilities.py, the limits), so the
document cannot say other than what the service does: tests/server/http/test_contract.py checks it both ways.
"""

from __future__ import annotations

from typing import Any

from service.core import domain
from service.core.capabilities import OPTIONS

from ..protocol import v2 as oip
from ..protocol.checks import REQUEST_FIELDS
from .routes.common import ACCEPTED_CODINGS

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problem(description: str) -> dict:
    return {"description": description, "content": {"application/problem+json": {"schema": PROBLEM}}}


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _options(limits) -> dict[str, dict]:
    """steps and top_k, as both the native body and the v2 request parameters take them."""
    top_k: dict[str, Any] = {"type": "integer", "minimum": 1}
    if limits.max_top_k:
        top_k["maximum"] = limits.max_top_k
    described = {
        "steps": (
            {"type": "integer", "minimum": 1, "maximum": limits.max_steps},
            "next-value tasks only: roll out this many values per input, each fed back as input (at most "
            f"{limits.max_rollout_values} rollout values per request, TOYSEQ_MAX_ROLLOUT_VALUES)",
        ),
        "top_k": (top_k, "single-class tasks only: the k most likely values with their probabilities"),
    }
    return {option: {**described[option][0], "description": described[option][1]} for option in OPTIONS}


def document(task_names: list[str], limits, api_key: bool) -> dict:
    task_param = {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "task name, see GET /tasks",
        "schema": {"type": "string", "examples": task_names[:1] or ["echo"]},
    }
    number = {"type": "number"}
    predict = {
        "summary": "Answer a batch of sequences",
        "operationId": "predict",
        "parameters": [task_param, _content_encoding()],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
        },
        "responses": {
            "200": _json("one output per input, in order", {"$ref": "#/components/schemas/PredictResponse"}),
            "400": _problem(
                "the body is not valid JSON (or is nested too deeply, starts with a byte order mark, "
                "holds a lone surrogate escape), or its chunked encoding is malformed"
            ),
            "401": _problem("missing or wrong API key (only when the service has one)"),
            "404": _problem("unknown task; the body names the known ones"),
            "413": _problem("the body, as sent or as inflated, is larger than the limit (TOYSEQ_MAX_BODY_BYTES)"),
            "415": _problem(
                "the body is not declared as JSON, is not UTF-8, or has a Content-Encoding other than "
                f"{ACCEPTED_CODINGS}"
            ),
            "422": _problem(
                "the request is valid JSON but not a valid request; `errors` locates each problem. "
                "Type `urn:toyseq:problem:over-budget`: the request's estimated CPU time is over "
                f"{limits.max_request_seconds:g} s (TOYSEQ_MAX_REQUEST_SECONDS); `estimated_seconds` "
                "and `limit_seconds` say by how much, `detail` how much would fit"
            ),
            "503": _problem("the task's model could not be loaded; `detail` gives the reason"),
        },
    }
    if api_key:
        predict["security"] = [{"bearer": []}, {"apiKey": []}]
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "toyseq",
            "version": "1.0.0",
            "description": "Serves small LSTM sequence predictors (ONNX + onnxruntime).",
        },
        "paths": {
            "/tasks/{name}/predict": {"post": predict},
            "/tasks": {
                "get": {
                    "summary": "Every task with its contract and evaluation results",
                    "operationId": "listTasks",
                    "responses": {
                        "200": _json(
                            "the tasks",
                            {
                                "type": "object",
                                "required": ["tasks"],
                                "properties": {
                                    "tasks": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}}
                                },
                            },
                        )
                    },
                }
            },
            "/tasks/{name}": {
                "get": {
                    "summary": "One task, with a ready-to-run example request",
                    "operationId": "getTask",
                    "parameters": [task_param],
                    "responses": {
                        "200": _json("the task", {"$ref": "#/components/schemas/Task"}),
                        "404": _problem("unknown task"),
                    },
                }
            },
            "/tasks/{name}/training.png": {
                "get": {
                    "summary": "The task's training curve (training and validation loss per step)",
                    "operationId": "getTrainingCurve",
                    "parameters": [task_param],
                    "responses": {
                        "200": {
                            "description": "PNG image",
                            "content": {"image/png": {"schema": {"type": "string", "contentMediaType": "image/png"}}},
                        },
                        "404": _problem("unknown task, or the task has no training curve"),
                    },
                }
            },
            "/": {
                "get": {
                    "summary": "The playground: an HTML page to try every task in a browser",
                    "operationId": "playground",
                    "responses": {
                        "200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "The process is alive",
                    "operationId": "healthz",
                    "responses": {"200": _json("alive", {"type": "object"})},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Some task serves (models loaded and warmed); names any task that cannot",
                    "operationId": "readyz",
                    "responses": {
                        "200": _json(
                            "ready: tasks served, and unavailable tasks with their reasons", {"type": "object"}
                        ),
                        "503": _problem("not ready: no task can be served; names each with its reason"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics summed over all workers",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})},
                }
            },
        },
        "components": {
            "schemas": {
                "PredictRequest": {
                    "type": "object",
                    "required": ["inputs"],
                    "additionalProperties": False,
                    "properties": {
                        field: (
                            {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": limits.max_batch,
                                "items": {"type": "array", "items": number},
                                "description": "sequences; each task's length and value range: GET /tasks/{name}",
                            }
                            if field == "inputs"
                            else _options(limits)[field]
                        )
                        for field in REQUEST_FIELDS
                    },
                    "examples": [{"inputs": [[3, 1, 4]]}],
                },
                "PredictResponse": {
                    "type": "object",
                    "required": ["task", "model", "outputs", "in_domain"],
                    "properties": {
                        "task": {"type": "string"},
                        "model": {
                            "type": "object",
                            "required": ["sha256"],
                            "properties": {"sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
                        },
                        "outputs": {"type": "array", "items": {"oneOf": [number, {"type": "array", "items": number}]}},
                        "top_k": {
                            "type": "array",
                            "items": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["value", "p"],
                                    "properties": {
                                        "value": {"type": "integer"},
                                        "p": {"type": "number", "minimum": 0, "maximum": 1},
                                    },
                                },
                            },
                        },
                        "wrong_position": {
                            "type": "array",
                            "items": {"type": ["integer", "null"], "minimum": 0},
                            "description": (
                                "arith-next only: per input, the 0-based position of the value the "
                                "model judged wrong (the answer is computed from the others), or "
                                "null when it judged every value right; with steps, it describes "
                                "the input window"
                            ),
                        },
                        "in_domain": {
                            "type": "array",
                            "items": {"type": "boolean"},
                            "description": (
                                "per input, whether it is of the task's kind (GET /tasks/{name} `domain`): ramp "
                                "evenly spaced, arith-next a progression with at most one wrong value among the "
                                "first six, alternating alternating; always true where the contract is the "
                                "domain. When false the output is still the model's answer, but it has no meaning"
                            ),
                        },
                    },
                },
                "Task": {
                    "type": "object",
                    "required": ["name", "available"],
                    "properties": {
                        "name": {"type": "string"},
                        "available": {"type": "boolean"},
                        "reason": {"type": "string"},
                        "description": {"type": "string"},
                        "input": {"type": "object"},
                        "output": {"type": "object"},
                        "domain": {
                            "type": "object",
                            "required": ["rule", "description"],
                            "properties": {
                                "rule": {"enum": list(domain.RULES)},
                                "description": {"type": "string"},
                            },
                            "description": "which accepted inputs are of the task's kind (answers' in_domain)",
                        },
                        "rollout": {"type": "boolean"},
                        "top_k": {"type": "boolean"},
                        "model": {"type": "object"},
                        "evaluation": {"type": "array"},
                        "example": {"type": "object"},
                    },
                },
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string", "format": "uri-reference"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["pointer", "message"],
                                "properties": {"pointer": {"type": "string"}, "message": {"type": "string"}},
                            },
                        },
                    },
                },
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
    _add_v2(doc, task_names, limits, api_key)
    _add_v2_extensions(doc, task_names, api_key)
    _add_v1(doc, task_names, limits, api_key)
    return doc


# --- the Open Inference Protocol v2 (routes/v2.py, openinference.py) -------------------------------------

V2_ERROR = {"$ref": "#/components/schemas/V2Error"}


def _v2_error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": V2_ERROR}}}


def _content_encoding() -> dict:
    return {
        "name": "Content-Encoding",
        "in": "header",
        "required": False,
        "description": "the body's compression; its inflated size is held to the body limit",
        "schema": {"enum": [c.strip() for c in ACCEPTED_CODINGS.split(",")]},
    }


def _request_parameters(limits) -> dict[str, dict]:
    """The infer request parameters toyseq reads (any other is accepted, ignored and named in the answer's
    X-Ignored-Parameters header)."""
    options = _options(limits)
    for option, outputs in oip.PARAMETER_OUTPUTS.items():
        options[option]["description"] += f" (adds outputs {', '.join(outputs)})"
    described = {
        **options,
        "binary_data_output": {
            "type": "boolean",
            "description": "every output as binary data unless it says otherwise",
        },
        oip.TIMEOUT: {
            "type": "integer",
            "minimum": 0,
            "description": "Triton's request timeout in microseconds (0: none): a request that cannot start its "
            "model work, or whose estimated model work would not end, within it is refused with 503",
        },
    }
    return {name: described[name] for name in oip.READ_PARAMETERS}


def _add_v2(doc: dict, task_names: list[str], limits, api_key: bool) -> None:
    """The v2 paths (with and without /versions/{version}) and their schemas, added to the document."""
    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "the model: a task name, see GET /tasks",
        "schema": {"type": "string", "examples": task_names[:1] or ["echo"]},
    }
    version = {
        "name": "version",
        "in": "path",
        "required": True,
        "description": "the model version, numbered as Triton numbers them: 1 for the model served at start-up, "
        "the next number for each model loaded since (GET /v2/models/{name} lists the one served)",
        "schema": {"type": "string", "examples": ["1"]},
    }
    tags = ["Open Inference Protocol v2"]
    missing = _v2_error("unknown model, or a version the model does not have")
    unavailable = _v2_error("the model could not be loaded")
    metadata: dict[str, Any] = {
        "summary": "Model metadata: the input, the outputs a request without parameters gets (-1: a variable "
        "dimension), and in `parameters` each request parameter's largest value and the outputs it adds",
        "tags": tags,
        "responses": {
            "200": _json("the model", {"$ref": "#/components/schemas/V2ModelMetadata"}),
            "404": missing,
            "503": unavailable,
        },
    }
    config: dict[str, Any] = {
        "summary": "Model configuration (Triton's extension, its ModelConfig in JSON): the metadata's tensors with "
        "their dims past the batch dimension, max_batch_size, and toyseq's parameters and limits as strings",
        "tags": tags,
        "responses": {
            "200": _json("the configuration", {"$ref": "#/components/schemas/V2ModelConfig"}),
            "404": missing,
            "503": unavailable,
        },
    }
    ready: dict[str, Any] = {
        "summary": "Whether the model is loaded and warmed (404 for a version not served)",
        "tags": tags,
        "responses": {
            "200": _json("ready", {"$ref": "#/components/schemas/V2ModelReady"}),
            "404": missing,
            "503": _json("not ready", {"$ref": "#/components/schemas/V2ModelReady"}),
        },
    }
    infer: dict[str, Any] = {
        "summary": "Inference on a [batch, length] tensor; toyseq's options are request parameters",
        "tags": tags,
        "description": (
            f"The input tensor `{oip.INPUT}` holds `batch` sequences of one `length`, of the datatype "
            "GET /v2/models/{name} gives ("
            + "; or ".join(f"{a}, {b} accepted" for a, b in oip.ACCEPTED.values())
            + "). Request parameters: "
            + ", ".join(f"`{p}`" for p in oip.READ_PARAMETERS)
            + "; any other is accepted and named in the X-Ignored-Parameters header. Without `outputs` every "
            "output the request's parameters produce is returned, except `in_domain` (BOOL, whether each input is of "
            "the task's kind), returned only when named. Triton's binary tensor data extension is "
            "supported: send the JSON followed by the tensor bytes (little-endian, row-major) with the "
            f"Inference-Header-Content-Length header and the input parameter `{oip.BINARY_SIZE}`; ask for "
            f"binary outputs with the output parameter `{oip.BINARY_OUTPUT}`. The body may be compressed "
            f"({ACCEPTED_CODINGS}). The same checks and limits as POST /tasks/{{name}}/predict apply, and the "
            "answers are the same."
        ),
        "parameters": [
            _content_encoding(),
            {
                "name": "Inference-Header-Content-Length",
                "in": "header",
                "required": False,
                "description": "binary tensor data extension: the byte length of the JSON part "
                "(0: the body is one raw sequence)",
                "schema": {"type": "integer", "minimum": 0},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/V2InferRequest"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "responses": {
            "200": {
                "description": "the outputs; with binary outputs the JSON is followed by their bytes "
                "(Inference-Header-Content-Length gives the JSON's length)",
                "headers": {
                    oip.IGNORED_HEADER: {
                        "description": "the request parameters toyseq accepted but does not use, percent-encoded",
                        "schema": {"type": "string"},
                    }
                },
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/V2InferResponse"}},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            "400": _v2_error("not a valid inference request for this model (the message says why)"),
            "401": _v2_error("missing or wrong API key (only when the service has one)"),
            "404": missing,
            "413": _v2_error("the body, as sent or as inflated, is larger than the limit"),
            "415": _v2_error(f"a Content-Encoding other than {ACCEPTED_CODINGS}"),
            "503": _v2_error("the model could not be loaded, or the request's timeout expired"),
        },
    }
    if api_key:
        infer["security"] = [{"bearer": []}, {"apiKey": []}]
    paths = doc["paths"]
    paths["/v2"] = {
        "get": {
            "summary": "Server metadata",
            "tags": tags,
            "operationId": "v2ServerMetadata",
            "responses": {"200": _json("the server", {"$ref": "#/components/schemas/V2ServerMetadata"})},
        }
    }
    paths["/v2/models"] = {
        "get": {
            "summary": "The models (KServe's list): every task, served or not (GET .../ready says which)",
            "tags": tags,
            "operationId": "v2ModelList",
            "responses": {
                "200": _json(
                    "the model names",
                    {
                        "type": "object",
                        "required": ["models"],
                        "properties": {"models": {"type": "array", "items": {"type": "string"}}},
                    },
                )
            },
        }
    }
    paths["/v2/health/live"] = {
        "get": {
            "summary": "The server is alive",
            "tags": tags,
            "operationId": "v2Live",
            "responses": {
                "200": _json(
                    "alive", {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}}
                )
            },
        }
    }
    paths["/v2/health/ready"] = {
        "get": {
            "summary": "Some model serves (as /readyz); /v2/models/{name}/ready says which",
            "tags": tags,
            "operationId": "v2Ready",
            "responses": {
                code: _json(
                    what, {"type": "object", "required": ["ready"], "properties": {"ready": {"type": "boolean"}}}
                )
                for code, what in (("200", "ready"), ("503", "not ready"))
            },
        }
    }
    for prefix, params, suffix in (
        ("/v2/models/{name}", [name], ""),
        ("/v2/models/{name}/versions/{version}", [name, version], "Version"),
    ):
        paths[prefix] = {"get": {**metadata, "operationId": f"v2ModelMetadata{suffix}", "parameters": params}}
        paths[prefix + "/config"] = {"get": {**config, "operationId": f"v2ModelConfig{suffix}", "parameters": params}}
        paths[prefix + "/ready"] = {"get": {**ready, "operationId": f"v2ModelReady{suffix}", "parameters": params}}
        paths[prefix + "/infer"] = {
            "post": {**infer, "operationId": f"v2Infer{suffix}", "parameters": params + infer["parameters"]}
        }
    parameter = {"type": ["string", "number", "boolean"]}
    tensor: dict[str, Any] = {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
        },
    }
    request_fields: dict[str, Any] = {
        "id": {"type": "string", "description": "echoed in the response"},
        "parameters": {
            "type": "object",
            "additionalProperties": parameter,
            "properties": _request_parameters(limits),
        },
        "inputs": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "datatype", "shape"],
                "properties": {
                    "name": {"const": oip.INPUT},
                    "datatype": {"enum": list(oip.DATATYPES)},
                    "shape": {
                        "type": "array",
                        "minItems": 2,
                        "maxItems": 2,
                        "prefixItems": [
                            {"type": "integer", "minimum": 0, "maximum": limits.max_batch},
                            {"type": "integer", "minimum": 0},
                        ],
                    },
                    "parameters": {
                        "type": "object",
                        "additionalProperties": parameter,
                        "properties": {oip.BINARY_SIZE: {"type": "integer", "minimum": 0}},
                    },
                    "data": {
                        "type": "array",
                        "items": {"oneOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}}]},
                        "description": "row-major, flat or nested as [batch][length]",
                    },
                },
            },
        },
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"enum": list(oip.OUTPUT_NAMES)},
                    "parameters": {
                        "type": "object",
                        "additionalProperties": parameter,
                        "properties": {oip.BINARY_OUTPUT: {"type": "boolean"}},
                    },
                },
            },
            "description": "each at most once; without it, every output the request's parameters produce "
            f"(not {', '.join(oip.ON_REQUEST)}, returned only when named)",
        },
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
    }
    doc["components"]["schemas"].update(
        {
            "V2Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "V2ServerMetadata": {
                "type": "object",
                "required": ["name", "version", "extensions"],
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                    "extensions": {"type": "array", "items": {"enum": oip.EXTENSIONS}},
                },
            },
            "V2ModelReady": {
                "type": "object",
                "required": ["name", "ready"],
                "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
            },
            "V2ModelMetadata": {
                "type": "object",
                "required": ["name", "platform", "inputs", "outputs"],
                "properties": {
                    "name": {"type": "string"},
                    "versions": {"type": "array", "items": {"type": "string"}},
                    "platform": {"type": "string"},
                    "inputs": {"type": "array", "items": tensor},
                    "outputs": {"type": "array", "items": tensor},
                    "parameters": {
                        "type": "object",
                        "additionalProperties": parameter,
                        "description": "for each request parameter the task takes: `<name>_max`, its largest "
                        "value, and `<name>_outputs`, the outputs it adds (comma-separated); `sha256`: the model "
                        "file's",
                    },
                },
            },
            "V2ModelConfig": _MODEL_CONFIG,
            "V2InferRequest": {
                "type": "object",
                "required": ["inputs"],
                "properties": {field: request_fields[field] for field in oip.REQUEST_FIELDS},
                "additionalProperties": False,
                "examples": [
                    {
                        "id": "1",
                        "inputs": [{"name": oip.INPUT, "datatype": "INT64", "shape": [1, 3], "data": [3, 1, 4]}],
                    }
                ],
            },
            "V2InferResponse": {
                "type": "object",
                "required": ["model_name", "outputs"],
                "properties": {
                    "model_name": {"type": "string"},
                    "model_version": {"type": "string"},
                    "id": {"type": "string"},
                    "parameters": {
                        "type": "object",
                        "properties": {oip.SHA256: {"type": "string", "description": "the model file's sha256"}},
                    },
                    "outputs": {
                        "type": "array",
                        "items": {
                            **tensor,
                            "properties": {
                                **tensor["properties"],
                                "data": {"type": "array", "items": {"type": ["number", "boolean"]}},
                                "parameters": {"type": "object"},
                            },
                        },
                    },
                },
            },
        }
    )


_CONFIG_TENSOR = {
    "type": "object",
    "required": ["name", "data_type", "dims"],
    "properties": {
        "name": {"type": "string"},
        "data_type": {"enum": sorted(set(oip.CONFIG_TYPES.values()))},
        "dims": {"type": "array", "items": {"type": "integer"}, "description": "past the batch dimension; -1 varies"},
        "reshape": {"type": "object"},
    },
}
_MODEL_CONFIG = {
    "type": "object",
    "required": ["name", "platform", "backend", "max_batch_size", "input", "output", "version_policy"],
    "properties": {
        "name": {"type": "string"},
        "platform": {"const": oip.PLATFORM},
        "backend": {"const": oip.BACKEND},
        "max_batch_size": {"type": "integer", "description": "TOYSEQ_MAX_BATCH"},
        "version_policy": {"type": "object"},
        "input": {"type": "array", "items": _CONFIG_TENSOR},
        "output": {"type": "array", "items": _CONFIG_TENSOR},
        "parameters": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["string_value"],
                "properties": {"string_value": {"type": "string"}},
            },
        },
    },
}

# --- the v2 statistics and model repository extensions (routes/v2_extensions.py) --------------------------

_COUNT_NS = {
    "type": "object",
    "required": ["count", "ns"],
    "properties": {"count": {"type": "integer", "minimum": 0}, "ns": {"type": "integer", "minimum": 0}},
}
_STAT_PARTS = (
    "success",
    "fail",
    "queue",
    "compute_input",
    "compute_infer",
    "compute_output",
    "cache_hit",
    "cache_miss",
)
_MODEL_STATS = {
    "type": "object",
    "required": ["model_stats"],
    "properties": {
        "model_stats": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "name",
                    "version",
                    "last_inference",
                    "inference_count",
                    "execution_count",
                    "inference_stats",
                ],
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                    "last_inference": {"type": "integer", "description": "ms since the epoch; 0: never"},
                    "inference_count": {"type": "integer", "description": "sequences answered"},
                    "execution_count": {"type": "integer", "description": "predictor calls"},
                    "inference_stats": {
                        "type": "object",
                        "required": list(_STAT_PARTS),
                        "properties": {part: _COUNT_NS for part in _STAT_PARTS},
                    },
                    "batch_stats": {"type": "array"},
                    "memory_usage": {"type": "array"},
                },
            },
        }
    },
}
_INDEX_ENTRY = {
    "type": "object",
    "required": ["name", "version", "state", "reason"],
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "state": {"enum": ["READY", "UNAVAILABLE"]},
        "reason": {"type": "string"},
    },
}
_CONTROL_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"parameters": {"type": "object"}, "ready": {"type": "boolean"}}}
        }
    },
}


def _add_v2_extensions(doc: dict, task_names: list[str], api_key: bool) -> None:
    tags = ["Open Inference Protocol v2 extensions"]
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "examples": task_names[:1]}}
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    stats = {
        "200": _json("per model version, summed over workers", _MODEL_STATS),
        "404": _v2_error("unknown model, or a version not served"),
        "503": _v2_error("the model is unavailable"),
    }
    paths = doc["paths"]
    paths["/v2/models/stats"] = {
        "get": {"summary": "Statistics of every served model", "tags": tags, "responses": stats}
    }
    paths["/v2/models/{name}/stats"] = {
        "get": {"summary": "Statistics of one model", "tags": tags, "parameters": [name], "responses": stats}
    }
    paths["/v2/models/{name}/versions/{version}/stats"] = {
        "get": {
            "summary": "Statistics of one model version",
            "tags": tags,
            "parameters": [name, version],
            "responses": stats,
        }
    }
    paths["/v2/repository/index"] = {
        "post": {
            "summary": "Every task folder with its version and state",
            "tags": tags,
            "requestBody": _CONTROL_BODY,
            "responses": {
                "200": _json("the tasks", {"type": "array", "items": _INDEX_ENTRY}),
                "400": _v2_error("a body that is not a JSON object"),
            },
        }
    }
    for action, summary in (
        ("load", "Check the task's folder and serve it in every worker (TOYSEQ_MODEL_CONTROL=explicit)"),
        ("unload", "Stop serving the task in every worker (TOYSEQ_MODEL_CONTROL=explicit)"),
    ):
        operation: dict[str, Any] = {
            "summary": summary,
            "tags": tags,
            "parameters": [name],
            "requestBody": _CONTROL_BODY,
            "responses": {
                "200": _json("applied in every worker", {"type": "object"}),
                "400": _v2_error("the model was refused (the message says why; the old one keeps serving)"),
                "401": _v2_error("missing or wrong API key (only when the service has one)"),
                "403": _v2_error("model control is off (TOYSEQ_MODEL_CONTROL=none)"),
                "404": _v2_error("no such task folder"),
                "409": _v2_error("a worker found other files in the folder"),
                "503": _v2_error("some workers had not applied it within TOYSEQ_MODEL_CONTROL_TIMEOUT"),
            },
        }
        if api_key:
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
        paths[f"/v2/repository/models/{{name}}/{action}"] = {"post": operation}


# --- KServe's V1 protocol (routes/v1.py, protocol/v1.py) ----------------------------------------------------


def _add_v1(doc: dict, task_names: list[str], limits, api_key: bool) -> None:
    tags = ["KServe V1"]
    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "the model: a task name",
        "schema": {"type": "string", "examples": task_names[:1] or ["echo"]},
    }
    sequences = {
        "type": "array",
        "maxItems": limits.max_batch,
        "items": {
            "oneOf": [
                {"type": "array", "items": {"type": "number"}},
                {"type": "object", "required": [oip.INPUT], "properties": {oip.INPUT: {"type": "array"}}},
            ]
        },
        "description": 'one sequence per instance (or {"input": [...]}, TF Serving\'s row format)',
    }
    options = {
        "steps": {"type": "integer", "minimum": 1, "description": "roll a next-value task forward"},
        "top_k": {"type": "integer", "minimum": 1, "description": "the k most likely values of a class task"},
    }
    body = {
        "type": "object",
        "oneOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
        "properties": {"instances": sequences, "inputs": sequences, **options},
        "additionalProperties": False,
        "examples": [{"instances": [[3, 1, 4]]}],
    }
    predictions = {
        "type": "object",
        "required": ["predictions"],
        "properties": {
            "predictions": {"type": "array", "description": "one per instance, in order (the native outputs)"},
            "wrong_position": {"type": "array"},
            "top_k": {"type": "array"},
        },
    }
    predict: dict[str, Any] = {
        "summary": 'KServe V1 predict: {"instances": [...]} -> {"predictions": [...]}, the native checks and answers',
        "tags": tags,
        "operationId": "v1Predict",
        "parameters": [name, _content_encoding()],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "200": _json("one prediction per instance", predictions),
            "400": _v2_error("not a valid request for this model (the message locates each problem)"),
            "401": _v2_error("missing or wrong API key (only when the service has one)"),
            "404": _v2_error("unknown model (KServe: Model with name ... does not exist.)"),
            "413": _v2_error("the body, as sent or as inflated, is larger than the limit"),
            "415": _v2_error("not JSON, or a Content-Encoding other than " + ACCEPTED_CODINGS),
            "503": _v2_error("the model could not be loaded (KServe: Model with name ... is not ready.)"),
        },
    }
    if api_key:
        predict["security"] = [{"bearer": []}, {"apiKey": []}]
    paths = doc["paths"]
    paths["/v1/models"] = {
        "get": {
            "summary": "KServe V1: the models",
            "tags": tags,
            "operationId": "v1Models",
            "responses": {
                "200": _json(
                    "every task",
                    {
                        "type": "object",
                        "required": ["models"],
                        "properties": {"models": {"type": "array", "items": {"type": "string"}}},
                    },
                )
            },
        }
    }
    paths["/v1/models/{name}"] = {
        "get": {
            "summary": "KServe V1: whether the model is ready",
            "tags": tags,
            "operationId": "v1ModelReady",
            "parameters": [name],
            "responses": {
                "200": _json("ready", {"$ref": "#/components/schemas/V2ModelReady"}),
                "404": _v2_error("unknown model"),
                "503": _v2_error("the model could not be loaded"),
            },
        }
    }
    paths["/v1/models/{name}:predict"] = {"post": predict}
