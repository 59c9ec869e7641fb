"""Protocol translation, the one place where gRPC messages meet numpy: a ModelInferRequest becomes the same
decoded request (and binary tensor data) that the REST path checks with openinference.check_infer, and the
checked answer's arrays become a ModelInferResponse. Typed `contents` answer in typed contents and
`raw_input_contents` in `raw_output_contents` (all outputs one way: the protocol allows no mixing)."""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import json_format

from ..problems import BadRequest
from ..protocol import v2 as oip
from .generated import grpc_service_pb2 as pb
from .generated import model_config_pb2

# The typed field of InferTensorContents that holds each datatype (the protocol's table).
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def parameters(message) -> dict[str, Any]:
    """A protobuf map<string, InferParameter> as the plain values the REST path reads from JSON."""
    values = {}
    for key, param in message.items():
        choice = param.WhichOneof("parameter_choice")
        if choice is None:
            raise BadRequest(f"parameter {key[:60]!r} has no value")
        values[key] = getattr(param, choice)
    return values


def infer_request(request: pb.ModelInferRequest) -> tuple[dict, bytes, bool]:
    """(the request as the REST path's decoded JSON, the binary tensor data, whether the client sent raw)."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(
            f"raw_input_contents has {len(raw)} entries; the request has {len(request.inputs)} inputs (one each)"
        )
    inputs = []
    for index, tensor in enumerate(request.inputs):
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        params = parameters(tensor.parameters)
        if raw:
            if tensor.HasField("contents"):
                raise BadRequest(f"input {tensor.name[:60]!r} has both contents and raw_input_contents")
            params["binary_data_size"] = len(raw[index])
        else:
            field = CONTENTS.get(tensor.datatype)
            entry["data"] = list(getattr(tensor.contents, field)) if field else []
        if params:
            entry["parameters"] = params
        inputs.append(entry)
    body: dict[str, Any] = {"inputs": inputs}
    if request.id:
        body["id"] = request.id
    params = parameters(request.parameters)
    if params:
        body["parameters"] = params
    if request.outputs:
        outputs = []
        for output in request.outputs:
            item: dict[str, Any] = {"name": output.name}
            out_params = parameters(output.parameters)
            if out_params:
                item["parameters"] = out_params
            outputs.append(item)
        body["outputs"] = outputs
    return body, b"".join(raw), bool(raw)


def infer_response(model: oip.Model, checked: oip.InferRequest, result: dict, raw: bool) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name=model.name, model_version=model.version, id=checked.id or "")
    response.parameters[oip.SHA256].string_param = model.predictor.sha256
    for name, datatype, array, _ in oip.tensors(model, checked, result):
        tensor = response.outputs.add(name=name, datatype=datatype, shape=array.shape)
        if raw:
            response.raw_output_contents.append(np.ascontiguousarray(array, dtype=oip.NUMPY[datatype]).tobytes())
        else:
            getattr(tensor.contents, CONTENTS[datatype]).extend(array.reshape(-1).tolist())
    return response


def model_metadata(model: oip.Model) -> pb.ModelMetadataResponse:
    meta = model.metadata()
    return pb.ModelMetadataResponse(
        name=meta["name"],
        versions=meta["versions"],
        platform=meta["platform"],
        inputs=[_tensor_metadata(t) for t in meta["inputs"]],
        outputs=[_tensor_metadata(t) for t in meta["outputs"]],
    )


def model_config(config: bytes) -> pb.ModelConfigResponse:
    """The model configuration (v2.Model.config, Triton's JSON shape, rendered once per served model) as the
    ModelConfig message: the one description behind both transports."""
    message = json_format.Parse(config, model_config_pb2.ModelConfig())
    return pb.ModelConfigResponse(config=message)


def server_metadata(meta: dict) -> pb.ServerMetadataResponse:
    return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"], extensions=meta["extensions"])


def _tensor_metadata(tensor: dict) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"]
    )


def statistics(body: dict) -> pb.ModelStatisticsResponse:
    """The statistics extension's answer (statistics.py, Triton's JSON shape) as its protobuf message."""
    return json_format.ParseDict(body, pb.ModelStatisticsResponse(), ignore_unknown_fields=True)


def index(models: list[dict]) -> pb.RepositoryIndexResponse:
    """The repository index (repository.py) as its protobuf message: name, version, state, reason per model."""
    fields = ("name", "version", "state", "reason")
    return pb.RepositoryIndexResponse(
        models=[pb.RepositoryIndexResponse.ModelIndex(**{k: m.get(k) or "" for k in fields}) for m in models]
    )


def check_load_parameters(parameters) -> str | None:
    """As the REST load: toyseq loads a model only from its folder, so Triton's `file:` parameters are refused
    rather than ignored; returns the `config` override (a ModelConfig in JSON) for the repository to check."""
    refused = [key for key in parameters if key.startswith("file:")]
    if refused:
        raise BadRequest(
            f"load parameter {refused[0][:60]!r} is not supported: toyseq loads a model only from its folder "
            "(replace the folder, then load)"
        )
    config = parameters.get("config")
    return (
        config.string_param if config is not None and config.WhichOneof("parameter_choice") == "string_param" else None
    )


def estimated_seconds(model: oip.Model, request: pb.ModelInferRequest) -> float:
    """The request's estimated CPU time (service/core/cost.py) from its declared input shape and `steps`, before
    any value is read; 0 when the shape is not [batch, length] (the check then says what is wrong)."""
    if len(request.inputs) != 1 or len(request.inputs[0].shape) != 2:
        return 0.0
    rows, length = request.inputs[0].shape
    if rows <= 0 or length <= 0:
        return 0.0
    param = request.parameters.get("steps")
    steps = param.int64_param if param is not None and param.WhichOneof("parameter_choice") == "int64_param" else None
    return model.predictor.cost.seconds(rows, rows * length, steps if steps and steps > 0 else None)
