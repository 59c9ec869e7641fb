"""The Open Inference Protocol v2 (KServe "v2", Triton's HTTP/REST API) in toyseq's terms: model metadata,
the check of an infer request into the same (arrays, steps, top_k) the native predict path takes, and the
infer response, in JSON or with Triton's binary tensor data extension. No Flask here: routes/v2.py is the
HTTP side.

A task is one model with one input and up to four outputs:
    input         [batch, length]  INT64 (integer tasks; INT32 accepted) or FP64 (number tasks; FP32 accepted)
    output        [batch] (one value per sequence) or [batch, length - skip] (echo tasks)
    rollout       [batch, steps]   next-value tasks, with the request parameter `steps`
    top_k_values  [batch, k] INT64 and top_k_p [batch, k] FP64: single-class tasks, with the parameter `top_k`
Every check the native path makes (value ranges, lengths, batch, steps and rollout limits) is made here by
the same parse_predict, on the same lists, so both paths accept and answer exactly the same sequences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import numpy as np
import orjson

from ..core.predictor import Predictor
from .errors import BadRequest, InvalidRequest, NotFound, OverBudget
from .parsing import parse_predict
from .registry import Limits, Registry, Snapshot, lookup

INPUT = "input"
OUTPUT, ROLLOUT, TOP_K_VALUES, TOP_K_P = "output", "rollout", "top_k_values", "top_k_p"
PLATFORM = "onnx_onnxv1"
EXTENSIONS = ["binary_tensor_data", "statistics", "model_repository"]
# toyseq's own request parameters, and the extension's standard one.
REQUEST_PARAMETERS = ("steps", "top_k", "binary_data_output")
REQUEST_FIELDS = ("id", "parameters", "inputs", "outputs", "model_name", "model_version")
VERSION_LENGTH = 12  # hex digits of the model file's sha256

# numpy little-endian dtypes of the datatypes toyseq reads and writes (the extension is little-endian).
NUMPY: dict[str, np.dtype[Any]] = {
    "INT64": np.dtype("<i8"),
    "INT32": np.dtype("<i4"),
    "FP64": np.dtype("<f8"),
    "FP32": np.dtype("<f4"),
}
ACCEPTED = {"int": ("INT64", "INT32"), "float": ("FP64", "FP32")}


def version_of(predictor: Predictor) -> str:
    """The model version: the first hex digits of the ONNX file's sha256, so a retrained model is a new
    version and the same file is the same version on every replica."""
    return predictor.sha256[:VERSION_LENGTH]


@dataclass
class Model:
    """One task as a v2 model: its metadata, rendered once."""

    predictor: Predictor
    limits: Limits
    name: str = field(init=False)
    version: str = field(init=False)
    input_dtypes: tuple[str, ...] = field(init=False)
    output_dtype: str = field(init=False)
    echo_skip: int | None = field(init=False)  # echo tasks: outputs per sequence = length - skip
    top_k: int = field(init=False)  # the largest top_k allowed, 0 when the task has none

    def __post_init__(self):
        p = self.predictor
        m = p.manifest
        self.name = p.task
        self.version = version_of(p)
        self.input_dtypes = ACCEPTED[m["input"]["dtype"]]
        self.output_dtype = "INT64" if m["output"]["dtype"] == "int" else "FP64"
        self.echo_skip = int(m["decoder"].get("skip", 0)) if m["output"]["kind"] == "echo" else None
        self.top_k = self.limits.capabilities(p).max_top_k

    @property
    def length(self) -> int:
        spec = self.predictor.codec.input
        return spec.max_length if spec.min_length == spec.max_length else -1

    def outputs(self) -> list[dict]:
        """The output tensors' metadata; -1 marks a variable dimension."""
        if self.echo_skip is None:
            tensors = [_tensor(OUTPUT, self.output_dtype, [-1])]
        else:
            width = self.length - self.echo_skip if self.length != -1 else -1
            tensors = [_tensor(OUTPUT, self.output_dtype, [-1, width])]
        if self.predictor.rollout:
            tensors.append(_tensor(ROLLOUT, self.output_dtype, [-1, -1]))
        if self.top_k:
            tensors += [_tensor(TOP_K_VALUES, "INT64", [-1, -1]), _tensor(TOP_K_P, "FP64", [-1, -1])]
        return tensors

    def metadata(self) -> dict:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": PLATFORM,
            "inputs": [_tensor(INPUT, self.input_dtypes[0], [-1, self.length])],
            "outputs": self.outputs(),
        }

    def check_version(self, version: str | None) -> None:
        if version is not None and version != self.version:
            raise NotFound(f"model {self.name} has no version {_quote(version)}; its version is {self.version}")


class Service:
    """The protocol's answers in toyseq's terms, Flask-free: what routes/v2.py (HTTP) and oip_grpc (gRPC) both
    call, so the two transports share every lookup, check and answer. Models are read from the registry's
    current snapshot (a load swaps it: a request keeps the model it looked up)."""

    def __init__(self, registry: Registry, limits: Limits):
        self.registry = registry
        self.limits = limits
        self.server_metadata = {"name": "toyseq", "version": _server_version(), "extensions": EXTENSIONS}

    def _served(self, snapshot: Snapshot) -> dict[str, tuple[Model, bytes]]:
        # Built once per snapshot of the served models (registry.py): a load swaps the whole snapshot.
        models = {name: Model(p, self.limits) for name, p in snapshot.predictors.items()}
        return {name: (m, orjson.dumps(m.metadata())) for name, m in models.items()}

    def entry(self, name: str, version: str | None) -> tuple[Model, bytes]:
        """The model and its rendered metadata from the snapshot served now, or NotFound (unknown name or
        version) / TaskUnavailable (it failed to load, or was unloaded)."""
        snapshot = self.registry.current
        found = snapshot.derived("v2.models", self._served).get(name)
        if found is None:
            lookup(snapshot, name)  # raises: NotFound unknown, TaskUnavailable unavailable
            raise AssertionError("unreachable: the registry raised")
        found[0].check_version(version)
        return found

    def model(self, name: str, version: str | None) -> Model:
        return self.entry(name, version)[0]

    def ready(self) -> bool:
        """Ready as /readyz: some task serves (registry.Registry.ready)."""
        return self.registry.ready

    def model_ready(self, name: str, version: str | None) -> bool:
        """False for a model that failed to load or was unloaded; NotFound for an unknown name or version."""
        snapshot = self.registry.current
        if name in snapshot.unavailable and name not in snapshot.predictors:
            return False
        self.model(name, version)
        return True

    def is_task(self, name: str) -> bool:
        """A name that may label metrics and access lines (known now, so label values stay bounded)."""
        return name in self.registry.current.names

    @staticmethod
    def run(model: Model, checked: InferRequest) -> dict:
        """The predictor's result for a checked request (parse_infer, check_infer)."""
        return model.predictor.predict(checked.arrays, steps=checked.steps, top_k=checked.top_k)


@dataclass
class InferRequest:
    id: str | None
    arrays: list
    steps: int | None
    top_k: int | None
    outputs: list[tuple[str, bool]]  # (name, as binary data), in the order to answer them


def split_body(body: bytes, header_length: str | None) -> tuple[bytes | None, bytes]:
    """(JSON part, binary part) of an infer body. Without Inference-Header-Content-Length it is all JSON;
    with it, that many bytes are JSON and the rest binary tensor data; 0 means a raw binary request (no
    JSON at all, returned as None)."""
    if header_length is None:
        return body, b""
    text = header_length.strip()
    if not (text.isascii() and text.isdigit()):
        raise BadRequest(f"Inference-Header-Content-Length must be a byte count, got {_quote(header_length)}")
    size = int(text)
    if size > len(body):
        raise BadRequest(f"Inference-Header-Content-Length {size} exceeds the body's {len(body)} bytes")
    return (body[:size] if size else None), body[size:]


def parse_infer(model: Model, header: bytes | None, binary: bytes) -> InferRequest:
    """Check an infer request (its JSON part and the binary data after it) and turn it into the checked
    arrays and options of the native predict path; raise BadRequest saying what is wrong."""
    if header is None:  # raw binary: one sequence of the model's datatype, every output as binary data
        return _raw(model, binary)
    try:
        body = orjson.loads(header)
    except orjson.JSONDecodeError as err:
        raise BadRequest(f"the inference request is not valid JSON: {err}") from None
    return check_infer(model, body, binary)


def check_infer(model: Model, body, binary: bytes) -> InferRequest:
    """Check a decoded infer request (the JSON object, or the same built from a gRPC message) and the binary
    tensor data it refers to: the one check behind both the REST and the gRPC path."""
    if type(body) is not dict:
        raise BadRequest('the inference request must be a JSON object with an "inputs" list')
    unknown = [key for key in body if key not in REQUEST_FIELDS]
    if unknown:
        raise BadRequest(f"unknown field {_quote(unknown[0])}; allowed: {', '.join(REQUEST_FIELDS)}")
    rid = body.get("id")
    if rid is not None and type(rid) is not str:
        raise BadRequest('"id" must be a string')
    parameters = _parameters(body.get("parameters"), "the request")
    for key in parameters:
        if key not in REQUEST_PARAMETERS:
            raise BadRequest(f"unknown request parameter {_quote(key)}; toyseq reads: {', '.join(REQUEST_PARAMETERS)}")
    inputs = body.get("inputs")
    if type(inputs) is not list or len(inputs) != 1:
        raise BadRequest(
            f'"inputs" must be a list of exactly one tensor, named {INPUT!r} '
            f"(shape [batch, length], datatype {' or '.join(model.input_dtypes)})"
        )
    sequences = _input(model, inputs[0], binary)
    steps, top_k = parameters.get("steps"), parameters.get("top_k")
    native = {"inputs": sequences}
    if steps is not None:
        native["steps"] = steps
    if top_k is not None:
        native["top_k"] = top_k
    arrays, steps, top_k = _native(model, native)
    default_binary = parameters.get("binary_data_output", False)
    if type(default_binary) is not bool:
        raise BadRequest("parameter binary_data_output must be a boolean")
    return InferRequest(rid, arrays, steps, top_k, _outputs(model, body.get("outputs"), steps, top_k, default_binary))


def _raw(model: Model, binary: bytes) -> InferRequest:
    dtype = NUMPY[model.input_dtypes[0]]
    if not binary or len(binary) % dtype.itemsize:
        raise BadRequest(
            f"a raw binary request (Inference-Header-Content-Length: 0) must hold one sequence of "
            f"{model.input_dtypes[0]} values: a non-zero multiple of {dtype.itemsize} bytes, "
            f"got {len(binary)}"
        )
    arrays, _, _ = _native(model, {"inputs": [np.frombuffer(binary, dtype).tolist()]})
    return InferRequest(None, arrays, None, None, [(OUTPUT, True)])


def _native(model: Model, body: dict) -> tuple[list, int | None, int | None]:
    """The native path's own check; its pointers (/inputs/i/j, /steps) are reworded for a v2 client."""
    try:
        return parse_predict(model.predictor, body, model.limits)
    except InvalidRequest as err:
        problems = [_reword(str(p)) for p in err.errors]
        more = f" (and {err.total - len(problems)} more)" if err.total > len(problems) else ""
        kind = InferOverBudget if isinstance(err, OverBudget) else BadRequest
        raise kind("invalid input: " + "; ".join(problems) + more) from None


class InferOverBudget(BadRequest):
    """Over the cost budget: a 400 like any bad input on REST, RESOURCE_EXHAUSTED on gRPC."""

    slug = "over-budget"


def _reword(problem: str) -> str:
    pointer, _, message = problem.partition(": ")
    parts = pointer.split("/")[1:]
    if parts[:1] == ["inputs"]:
        where = f"input {INPUT!r}"
        if len(parts) > 1:
            where += f" row {parts[1]}"
        if len(parts) > 2:
            where += f" column {parts[2]}"
        return f"{where}: {message}"
    if parts[:1] in (["steps"], ["top_k"]):
        return f"parameter {parts[0]}: {message}"
    return problem


def _input(model: Model, tensor, binary: bytes) -> list[list]:
    """The input tensor as a list of sequences (Python numbers), after its name, datatype and shape agree."""
    if type(tensor) is not dict:
        raise BadRequest("each input must be an object with name, shape, datatype and data")
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if name != INPUT:
        raise BadRequest(f"unknown input {_quote(name)}; model {model.name} has one input, {INPUT!r}")
    if datatype not in model.input_dtypes:
        raise BadRequest(
            f"input {INPUT!r} of model {model.name} takes datatype {' or '.join(model.input_dtypes)}, "
            f"got {_quote(datatype)}"
        )
    if type(shape) is not list or len(shape) != 2 or any(type(d) is not int or d < 0 for d in shape):
        raise BadRequest(
            f"input {INPUT!r} must have shape [batch, length] (two non-negative integers), got {_quote(shape)}"
        )
    batch, length = shape
    if batch > model.limits.max_batch:
        raise BadRequest(
            f"invalid input: {batch} sequences exceed the limit of {model.limits.max_batch} per request (TOYSEQ_MAX_BATCH)"
        )
    parameters = _parameters(tensor.get("parameters"), f"input {INPUT!r}")
    size = parameters.get("binary_data_size")
    if size is not None:
        return _binary_input(datatype, shape, size, binary, "data" in tensor)
    if binary:
        raise BadRequest("the body has binary data after the JSON but input 'input' has no binary_data_size")
    if "data" not in tensor:
        raise BadRequest(f'input {INPUT!r} has neither "data" nor a binary_data_size parameter')
    values = _flatten(tensor["data"], shape)
    return [values[row * length : (row + 1) * length] for row in range(batch)]


def _binary_input(datatype: str, shape: list[int], size, binary: bytes, has_data: bool) -> list[list]:
    if has_data:
        raise BadRequest(f'input {INPUT!r} has both "data" and binary_data_size')
    dtype = NUMPY[datatype]
    expected = shape[0] * shape[1] * dtype.itemsize
    if type(size) is not int or size != expected:
        raise BadRequest(
            f"input {INPUT!r}: binary_data_size must be {expected} ({shape[0]} x {shape[1]} "
            f"{datatype} values of {dtype.itemsize} bytes), got {_quote(size)}"
        )
    if len(binary) != size:
        raise BadRequest(
            f"the body has {len(binary)} bytes of binary data after the JSON; input {INPUT!r} declares {size}"
        )
    return np.frombuffer(binary, dtype).reshape(shape).tolist()


def _flatten(data, shape: list[int]) -> list:
    """Tensor data given as JSON: row-major, flat or nested as the shape (the protocol allows both)."""
    if type(data) is not list:
        raise BadRequest(f'input {INPUT!r}: "data" must be a JSON array')
    batch, length = shape
    if all(type(row) is list for row in data) and data:
        if len(data) != batch or any(len(row) != length for row in data):
            raise BadRequest(f'input {INPUT!r}: nested "data" must be {batch} rows of {length} values, as its shape')
        flat = [v for row in data for v in row]
    else:
        flat = data
    if len(flat) != batch * length:
        raise BadRequest(f'input {INPUT!r}: "data" has {len(flat)} values; shape {shape} needs {batch * length}')
    if any(type(v) is list for v in flat):
        raise BadRequest(f'input {INPUT!r}: "data" nests deeper than its shape [batch, length]')
    return flat


def _parameters(value, owner: str) -> dict:
    if value is None:
        return {}
    if type(value) is not dict:
        raise BadRequest(f"the parameters of {owner} must be a JSON object")
    for key, item in value.items():
        if type(item) not in (str, int, float, bool):
            raise BadRequest(f"parameter {_quote(key)} of {owner} must be a string, number or boolean")
    return value


def _outputs(model: Model, requested, steps: int | None, top_k: int | None, default_binary: bool) -> list:
    available = [OUTPUT]
    if steps:
        available.append(ROLLOUT)
    if top_k:
        available += [TOP_K_VALUES, TOP_K_P]
    if requested is None:
        return [(name, default_binary) for name in available]
    if type(requested) is not list:
        raise BadRequest('"outputs" must be a list of {"name": ...} objects')
    chosen = []
    for item in requested:
        if type(item) is not dict or type(item.get("name")) is not str:
            raise BadRequest('each requested output must be an object with a "name"')
        name = item["name"]
        if name not in available:
            known = [t["name"] for t in model.outputs()]
            why = (
                "it needs the request parameter steps"
                if name == ROLLOUT and name in known
                else "it needs the request parameter top_k"
                if name in (TOP_K_VALUES, TOP_K_P) and name in known
                else f"model {model.name} has outputs {', '.join(known)}"
            )
            raise BadRequest(f"output {_quote(name)} cannot be returned: {why}")
        binary = _parameters(item.get("parameters"), f"output {name!r}").get("binary_data", default_binary)
        if type(binary) is not bool:
            raise BadRequest(f"parameter binary_data of output {name!r} must be a boolean")
        chosen.append((name, binary))
    return chosen


def render(model: Model, request: InferRequest, result: dict) -> tuple[bytes, bytes | None]:
    """The response: (JSON, binary tensor data or None when every output is JSON)."""
    outputs, chunks = [], []
    for name, datatype, array, binary in tensors(model, request, result):
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            data = np.ascontiguousarray(array, dtype=NUMPY[datatype]).tobytes()
            entry["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            entry["data"] = array.reshape(-1).tolist()
        outputs.append(entry)
    body: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if request.id is not None:
        body["id"] = request.id
    body["outputs"] = outputs
    return orjson.dumps(body), (b"".join(chunks) if chunks else None)


def tensors(model: Model, request: InferRequest, result: dict) -> list[tuple[str, str, np.ndarray, bool]]:
    """The requested outputs, in order: (name, datatype, array, as binary data)."""
    every = _tensors(model, request, result)
    return [(name, every[name][1], every[name][0], binary) for name, binary in request.outputs]


def _tensors(model: Model, request: InferRequest, result: dict) -> dict[str, tuple[np.ndarray, str]]:
    dtype = NUMPY[model.output_dtype]
    answers = result["outputs"]
    tensors = {}
    if request.steps:
        rollout = np.array(answers, dtype=dtype).reshape(len(answers), request.steps)
        tensors[ROLLOUT] = rollout, model.output_dtype
        tensors[OUTPUT] = rollout[:, 0], model.output_dtype  # the first rolled value is the next value
    else:
        array = np.array(answers, dtype=dtype)
        tensors[OUTPUT] = array.reshape(len(answers), -1) if model.echo_skip is not None else array, model.output_dtype
    if request.top_k:
        tops = result["top_k"]
        tensors[TOP_K_VALUES] = np.array([[t["value"] for t in row] for row in tops], dtype=np.int64), "INT64"
        tensors[TOP_K_P] = np.array([[t["p"] for t in row] for row in tops], dtype=np.float64), "FP64"
    return tensors


def _tensor(name: str, datatype: str, shape: list[int]) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape}


def _quote(value) -> str:
    """A client's value as JSON spells it ("INT8", null, [1, 2]), never as a Python repr."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:  # not a JSON value (cannot come from a parsed body): say what it is
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _server_version() -> str:
    try:
        return package_version("toyseq")
    except PackageNotFoundError:  # running from a source tree that was never installed (the container)
        return "0+unknown"
