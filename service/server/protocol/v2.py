"""The Open Inference Protocol v2 (KServe "v2", Triton's HTTP/REST API) in toyseq's terms: model metadata,
the check of an infer request into the same checked arrays and options the native predict path takes, and the
infer response, in JSON or with Triton's binary tensor data extension. No Flask and no HTTP here (bytes and
numpy in, checked request out; result in, tensors out), so that every front (routes/v2.py over HTTP, a gRPC
server) calls the same functions.

A task is one model with one input and these outputs:
    input           [batch, length]  INT64 (integer tasks; INT32 accepted) or FP64 (number tasks; FP32 accepted)
    output          [batch] (one value per sequence) or [batch, length - skip] (echo tasks)
    wrong_position  [batch] INT64, arith-next: the position the model judged wrong, -1 for none
    rollout         [batch, steps]   next-value tasks, with the request parameter `steps`
    top_k_values    [batch, k] INT64 and top_k_p [batch, k] FP64: single-class tasks, with the parameter `top_k`
    in_domain       [batch] BOOL: whether each input is of the task's kind (service/core/domain.py); returned
                    only when named in the request's `outputs`
The model metadata lists the outputs an infer request without parameters returns (output, and wrong_position
where the task has it), then in_domain, named in its `parameters` as "on_request_outputs"; the outputs a
parameter adds are named there too (e.g. "steps_outputs": "rollout"), beside that parameter's largest value. An
infer request that names no outputs gets every output its parameters produce except in_domain, so answers are
what they were before in_domain existed.
The model configuration (Triton's extension, `config()`) describes the same tensors in Triton's
ModelConfig shape, which perf_analyzer and tritonclient read.

Versions are Triton's integers (store/registry.py: "1" for the model found at start-up, the next number for each
model loaded since); the model file's sha256 is the `sha256` parameter of the metadata, the configuration and
every infer answer, so a client can still tell exactly which model answered.

Every check the native path makes (value ranges, lengths, batch, steps and rollout limits) is made here by the
same parsing.check_request, on numpy arrays (binary data) or lists (JSON data), so both paths accept and answer
exactly the same sequences. Its problems come back as objects located by native JSON pointers, worded here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any
from urllib.parse import quote

import numpy as np
import orjson

from service.core.capabilities import OPTIONS
from service.core.codec import Problem, WrongPositionDecoder, short_json
from service.core.predictor import Predictor

from ..problems import BadRequest, InvalidRequest, NotFound, OverBudget, ServiceError
from ..store.registry import FIRST_VERSION, Limits, Registry, Snapshot, lookup
from .checks import check_request

INPUT = "input"
OUTPUT, ROLLOUT, TOP_K_VALUES, TOP_K_P = "output", "rollout", "top_k_values", "top_k_p"
IN_DOMAIN = "in_domain"
ON_REQUEST = (IN_DOMAIN,)  # outputs returned only when the request names them
# Triton's names for an ONNX model served by its onnxruntime backend (its metadata and config say the same).
PLATFORM, BACKEND = "onnxruntime_onnx", "onnxruntime"
SHA256 = "sha256"  # the parameter naming the model file (metadata, config, infer answers)
# model_config.proto's DataType names of the protocol's datatypes.
CONFIG_TYPES = {
    "INT64": "TYPE_INT64",
    "INT32": "TYPE_INT32",
    "FP64": "TYPE_FP64",
    "FP32": "TYPE_FP32",
    "BOOL": "TYPE_BOOL",
}
# Triton's names for the protocol extensions toyseq implements (GET /v2 lists them).
EXTENSIONS = ["binary_tensor_data", "parameters", "statistics", "model_repository", "model_configuration"]
# The outputs each toyseq request parameter adds, when the task supports it.
PARAMETER_OUTPUTS = {"steps": (ROLLOUT,), "top_k": (TOP_K_VALUES, TOP_K_P)}
OUTPUT_NAMES = (OUTPUT, *WrongPositionDecoder.EXTRAS, ROLLOUT, TOP_K_VALUES, TOP_K_P, *ON_REQUEST)  # every task's
TIMEOUT = "timeout"  # Triton's request timeout, in microseconds; 0 means none
# The request parameters toyseq reads: its own (OPTIONS), the binary extension's and Triton's timeout. Any
# other is accepted and named in the answer's IGNORED_HEADER (Triton and KServe accept parameters they do not
# use; tritonclient sends priority, sequence ids and custom ones).
READ_PARAMETERS = (*OPTIONS, "binary_data_output", TIMEOUT)
IGNORED_HEADER = "X-Ignored-Parameters"
IGNORED_SHOWN = 20  # parameter names named in that header at most
BINARY_SIZE, BINARY_OUTPUT = "binary_data_size", "binary_data"  # the binary extension's tensor parameters
REQUEST_FIELDS = ("id", "parameters", "inputs", "outputs", "model_name", "model_version")
NO_POSITION = -1  # wrong_position of a row the model judged clean (the native answer's null)

# numpy little-endian dtypes of the datatypes toyseq reads and writes (the extension is little-endian).
NUMPY: dict[str, np.dtype[Any]] = {
    "INT64": np.dtype("<i8"),
    "INT32": np.dtype("<i4"),
    "FP64": np.dtype("<f8"),
    "FP32": np.dtype("<f4"),
    "BOOL": np.dtype("?"),  # one byte per value in binary data, as Triton's
}
ACCEPTED = {"int": ("INT64", "INT32"), "float": ("FP64", "FP32")}
DATATYPES = tuple(name for name in NUMPY if name != "BOOL")  # input datatypes toyseq reads


class TimedOut(ServiceError):
    """The request's own timeout expired, or would before its answer (Triton: UNAVAILABLE, 503)."""

    status, title, slug = 503, "Service Unavailable", "timeout"


@dataclass
class Model:
    """One task as a v2 model: its tensors and what its parameters add."""

    predictor: Predictor
    limits: Limits
    version: str = str(FIRST_VERSION)  # Triton's integer version, as a decimal string
    name: str = field(init=False)
    input_dtypes: tuple[str, ...] = field(init=False)
    output_dtype: str = field(init=False)
    echo_skip: int | None = field(init=False)  # echo tasks: outputs per sequence = length - skip
    extras: tuple[str, ...] = field(init=False)  # outputs the decoder adds to every answer (wrong_position)
    maxima: dict[str, int] = field(init=False)  # each toyseq parameter the task takes, with its largest value

    def __post_init__(self):
        p = self.predictor
        m = p.manifest
        self.name = p.task
        self.input_dtypes = ACCEPTED[m["input"]["dtype"]]
        self.output_dtype = "INT64" if m["output"]["dtype"] == "int" else "FP64"
        self.echo_skip = int(m["decoder"].get("skip", 0)) if m["output"]["kind"] == "echo" else None
        self.extras = tuple(getattr(p.codec.decoder, "EXTRAS", ()))
        capabilities = self.limits.capabilities(p)
        self.maxima = {o: capabilities.maximum(o) for o in OPTIONS if capabilities.maximum(o)}

    @property
    def length(self) -> int:
        spec = self.predictor.codec.input
        return spec.max_length if spec.min_length == spec.max_length else -1

    def tensors(self) -> dict[str, tuple[str, list[int]]]:
        """Every output the model can produce: name -> (datatype, shape); -1 marks a variable dimension."""
        if self.echo_skip is None:
            tensors = {OUTPUT: (self.output_dtype, [-1])}
        else:
            width = self.length - self.echo_skip if self.length != -1 else -1
            tensors = {OUTPUT: (self.output_dtype, [-1, width])}
        tensors.update({name: ("INT64", [-1]) for name in self.extras})
        if "steps" in self.maxima:
            tensors[ROLLOUT] = (self.output_dtype, [-1, -1])
        if "top_k" in self.maxima:
            tensors.update({TOP_K_VALUES: ("INT64", [-1, -1]), TOP_K_P: ("FP64", [-1, -1])})
        tensors[IN_DOMAIN] = ("BOOL", [-1])
        return tensors

    def produced(self, options: dict[str, int | None]) -> list[str]:
        """The outputs a request with these parameters produces, in the order answered."""
        names = [OUTPUT, *self.extras]
        for option, outputs in PARAMETER_OUTPUTS.items():
            if options.get(option):
                names += outputs
        return names

    def metadata(self) -> dict:
        """The outputs are those a request without parameters gets; `parameters` names what each toyseq
        parameter adds (scalars only, as the protocol's parameters are)."""
        tensors = self.tensors()
        parameters: dict[str, Any] = {}
        for option, maximum in self.maxima.items():
            parameters[f"{option}_max"] = maximum
            parameters[f"{option}_outputs"] = ",".join(PARAMETER_OUTPUTS[option])
        parameters["on_request_outputs"] = ",".join(ON_REQUEST)
        parameters[SHA256] = self.predictor.sha256
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": PLATFORM,
            "inputs": [_tensor(INPUT, self.input_dtypes[0], [-1, self.length])],
            "outputs": [_tensor(name, *tensors[name]) for name in (*self.produced({}), *ON_REQUEST)],
            "parameters": parameters,
        }

    def config(self) -> dict:
        """Triton's model configuration (model_config.proto, as Triton's HTTP API writes it in JSON) of the tensors
        the metadata lists. max_batch_size > 0 says that the first dimension of every tensor is the batch, so
        `dims` leave it out (how perf_analyzer and tritonclient read metadata shapes against it); an output of
        one value per sequence is dims [1] reshaped to [], as Triton configures such outputs. toyseq's own
        parameters, the model's sha256 and its input contract are string parameters (the proto's only kind)."""
        metadata = self.metadata()
        spec = self.predictor.codec.input
        contract: dict[str, Any] = {"min_length": spec.min_length, "max_length": spec.max_length}
        contract.update({k: v for k, v in (("low", spec.low), ("high", spec.high)) if v is not None})
        parameters = {**metadata["parameters"], **contract}
        parameters["max_request_seconds"] = self.limits.max_request_seconds
        if "steps" in self.maxima:
            parameters["max_rollout_values"] = self.limits.max_rollout_values
        return {
            "name": self.name,
            "platform": PLATFORM,
            "backend": BACKEND,
            "version_policy": {"latest": {"num_versions": 1}},  # one version served at a time
            "max_batch_size": self.limits.max_batch,
            "input": [_config_input(t) for t in metadata["inputs"]],
            "output": [_config_output(t) for t in metadata["outputs"]],
            "instance_group": [{"name": self.name, "kind": "KIND_CPU", "count": 1}],  # a session per worker
            "default_model_filename": "model.onnx",
            "model_transaction_policy": {"decoupled": False},
            "parameters": {key: {"string_value": _text(value)} for key, value in parameters.items()},
        }

    def check_version(self, version: str | None) -> None:
        if version is not None and version != self.version:
            raise NotFound(
                f"Request for unknown model: '{self.name}' version {_name(version)} is not found; "
                f"its version is {self.version}"
            )


class Service:
    """The protocol's answers in toyseq's terms, Flask-free: what routes/v2.py (HTTP) and oip_grpc (gRPC) both
    call, so the two transports share every lookup, check and answer. Models are read from the registry's
    current snapshot (a load swaps it: a request keeps the model it looked up)."""

    def __init__(self, registry: Registry, limits: Limits):
        self.registry = registry
        self.limits = limits
        self.server_metadata = {"name": "toyseq", "version": _server_version(), "extensions": EXTENSIONS}

    def _served(self, snapshot: Snapshot) -> dict[str, tuple[Model, bytes, bytes]]:
        # Built once per snapshot of the served models (registry.py): a load swaps the whole snapshot.
        models = {
            name: Model(p, snapshot.limits.get(name, self.limits), snapshot.version(name))
            for name, p in snapshot.predictors.items()
        }
        return {name: (m, orjson.dumps(m.metadata()), orjson.dumps(m.config())) for name, m in models.items()}

    def entry(self, name: str, version: str | None) -> tuple[Model, bytes]:
        """The model and its rendered metadata (see `found`)."""
        model, metadata, _ = self.found(name, version)
        return model, metadata

    def config(self, name: str, version: str | None) -> tuple[Model, bytes]:
        """The model and its rendered configuration (Triton's model configuration extension)."""
        model, _, config = self.found(name, version)
        return model, config

    def found(self, name: str, version: str | None) -> tuple[Model, bytes, bytes]:
        """The model, its rendered metadata and configuration from the snapshot served now, or NotFound (unknown name or
        version, in Triton's words, which its clients' examples check) / TaskUnavailable (it failed to load, or
        was unloaded)."""
        snapshot = self.registry.current
        found = snapshot.derived("v2.models", self._served).get(name)
        if found is None:
            if name not in snapshot.unavailable:
                known = ", ".join(snapshot.names) or "none"
                raise NotFound(f"Request for unknown model: '{_name(name)}' is not found; known models: {known}")
            lookup(snapshot, name)  # raises TaskUnavailable: it failed to load, or was unloaded
            raise AssertionError("unreachable: the registry raised")
        found[0].check_version(version)
        return found

    def model(self, name: str, version: str | None) -> Model:
        return self.entry(name, version)[0]

    def ready(self) -> bool:
        """Ready as /readyz: some task serves (registry.Registry.ready)."""
        return self.registry.ready

    def model_ready(self, name: str, version: str | None) -> bool:
        """False for a model that failed to load or was unloaded, or a version not served (as Triton answers);
        NotFound for an unknown name."""
        snapshot = self.registry.current
        if name in snapshot.unavailable and name not in snapshot.predictors:
            return False
        model = self.model(name, None)
        return version is None or version == model.version

    def is_task(self, name: str) -> bool:
        """A name that may label metrics and access lines (known now, so label values stay bounded)."""
        return name in self.registry.current.names

    @staticmethod
    def run(model: Model, checked: InferRequest) -> dict:
        """The predictor's result for a checked request (parse_infer, check_infer)."""
        return model.predictor.predict(checked.arrays, steps=checked.steps, top_k=checked.top_k, arrays=True)


@dataclass
class InferRequest:
    id: str | None
    arrays: Any  # codec.Checked: the sequences, checked
    steps: int | None
    top_k: int | None
    outputs: list[tuple[str, bool]]  # (name, as binary data), in the order to answer them
    timeout: float | None = None  # seconds the client gives the request (Triton's `timeout`), None for none
    ignored: list[str] = field(default_factory=list)  # request parameters toyseq does not use

    def ignored_header(self) -> str | None:
        """The value of IGNORED_HEADER: the names, percent-encoded (any JSON key may be a parameter name)."""
        if not self.ignored:
            return None
        names = [quote(name[:60], safe="") for name in self.ignored[:IGNORED_SHOWN]]
        more = len(self.ignored) - len(names)
        return ", ".join(names) + (f", and {more} more" if more else "")


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
    return check_loaded(model, load_infer(header, binary))


Loaded = tuple[bool, Any, bytes]  # (raw binary request, its decoded JSON part, the binary data after it)


def load_infer(header: bytes | None, binary: bytes) -> Loaded:
    """An infer request's parts, its JSON decoded: what a request moved to the worker's pool hands over, so it is
    never parsed twice (the HTTP route keeps it in the environ)."""
    if header is None:  # raw binary: one sequence of the model's datatype, every output as binary data
        return True, None, binary
    try:
        return False, orjson.loads(header), binary
    except orjson.JSONDecodeError as err:
        raise BadRequest(f"the inference request is not valid JSON: {err}") from None


def check_loaded(model: Model, loaded: Loaded) -> InferRequest:
    raw, body, binary = loaded
    return _raw(model, binary) if raw else check_infer(model, body, binary)


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
    timeout = _timeout(parameters.get(TIMEOUT))
    default_binary = parameters.get("binary_data_output", False)
    if type(default_binary) is not bool:
        raise BadRequest("parameter binary_data_output must be a boolean")
    inputs = body.get("inputs")
    if type(inputs) is not list or len(inputs) != 1:
        raise BadRequest(
            f'"inputs" must be a list of exactly one tensor, named {INPUT!r} '
            f"(shape [batch, length], datatype {' or '.join(model.input_dtypes)})"
        )
    sequences = _input(model, inputs[0], binary)
    options = {option: parameters[option] for option in OPTIONS if option in parameters}
    arrays, steps, top_k = _check(model, sequences, options)
    outputs = _outputs(model, body.get("outputs"), {"steps": steps, "top_k": top_k}, default_binary)
    ignored = [key for key in parameters if key not in READ_PARAMETERS]
    return InferRequest(rid, arrays, steps, top_k, outputs, timeout, ignored)


def _raw(model: Model, binary: bytes) -> InferRequest:
    dtype = NUMPY[model.input_dtypes[0]]
    if not binary or len(binary) % dtype.itemsize:
        raise BadRequest(
            f"a raw binary request (Inference-Header-Content-Length: 0) must hold one sequence of "
            f"{model.input_dtypes[0]} values: a non-zero multiple of {dtype.itemsize} bytes, "
            f"got {len(binary)}"
        )
    arrays, _, _ = _check(model, np.frombuffer(binary, dtype)[None, :], {})
    return InferRequest(None, arrays, None, None, [(name, True) for name in model.produced({})])


def _timeout(value: Any) -> float | None:
    """Triton's `timeout` request parameter (microseconds, 0 for none) in seconds."""
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise BadRequest(f"parameter timeout must be a whole number of microseconds (0: none), got {_quote(value)}")
    return value / 1e6 if value else None


def check_deadline(model: Model, request: InferRequest, elapsed: float) -> None:
    """Honour the request's timeout before any model work: refuse (503, as Triton answers a request whose timeout
    expired) one already past it, or one whose estimated CPU time (service/core/cost.py) would take it past."""
    if request.timeout is None:
        return
    if elapsed >= request.timeout:
        raise TimedOut(
            f"the request's timeout of {request.timeout * 1e6:.0f} us expired before its model work began "
            f"({elapsed * 1e6:.0f} us after it arrived)"
        )
    arrays = request.arrays
    values = arrays.size if isinstance(arrays, np.ndarray) else sum(map(len, arrays))
    estimate = model.predictor.cost.seconds(len(arrays), values, request.steps)
    if elapsed + estimate > request.timeout:
        raise TimedOut(
            f"the request would take about {estimate * 1e6:.0f} us of model work, past its timeout of "
            f"{request.timeout * 1e6:.0f} us ({elapsed * 1e6:.0f} us already spent): send fewer sequences or a "
            "longer timeout"
        )


def _check(model: Model, sequences: Any, options: dict[str, Any]) -> tuple[Any, int | None, int | None]:
    """The native path's own checks; their problems (located by native pointers) worded for a v2 client."""
    try:
        return check_request(model.predictor, sequences, options, model.limits)
    except InvalidRequest as err:
        problems = [describe(p) for p in err.errors]
        more = f" (and {err.total - len(problems)} more)" if err.total > len(problems) else ""
        kind = InferOverBudget if isinstance(err, OverBudget) else BadRequest
        raise kind("invalid input: " + "; ".join(problems) + more) from None


class InferOverBudget(BadRequest):
    """Over the cost budget: a 400 like any bad input on REST, RESOURCE_EXHAUSTED on gRPC."""

    slug = "over-budget"


def describe(problem: Problem) -> str:
    """A problem in the protocol's terms: /inputs/i/j is the input tensor's row i, column j; /steps and
    /top_k are request parameters."""
    tokens = problem.pointer.split("/")[1:]
    if tokens[:1] == ["inputs"]:
        where = f"input {INPUT!r}"
        if len(tokens) > 1:
            where += f" row {tokens[1]}"
        if len(tokens) > 2:
            where += f" column {tokens[2]}"
        return f"{where}: {problem.message}"
    if tokens[:1] and tokens[0] in OPTIONS:
        return f"parameter {tokens[0]}: {problem.message}"
    return str(problem)


def _input(model: Model, tensor, binary: bytes) -> Any:
    """The input tensor's sequences, after its name, datatype and shape agree: a 2-D numpy array (binary
    data) or a list of row lists (JSON data, whose values the codec checks one type at a time)."""
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
    size = parameters.get(BINARY_SIZE)
    if size is not None:
        return _binary_input(datatype, shape, size, binary, "data" in tensor)
    if binary:
        raise BadRequest("the body has binary data after the JSON but input 'input' has no binary_data_size")
    if "data" not in tensor:
        raise BadRequest(f'input {INPUT!r} has neither "data" nor a binary_data_size parameter')
    values = _flatten(tensor["data"], shape)
    return [values[row * length : (row + 1) * length] for row in range(batch)]


def _binary_input(datatype: str, shape: list[int], size, binary: bytes, has_data: bool) -> np.ndarray:
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
    return np.frombuffer(binary, dtype).reshape(shape)


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


def _outputs(model: Model, requested, options: dict[str, int | None], default_binary: bool) -> list:
    available = model.produced(options)
    if requested is None:
        return [(name, default_binary) for name in available]
    if type(requested) is not list:
        raise BadRequest('"outputs" must be a list of {"name": ...} objects')
    chosen: dict[str, bool] = {}
    for item in requested:
        if type(item) is not dict or type(item.get("name")) is not str:
            raise BadRequest('each requested output must be an object with a "name"')
        name = item["name"]
        if name in chosen:
            raise BadRequest(f"output {_quote(name)} is requested more than once")
        if name not in model.tensors():  # Triton's words (qa/L0_output_name checks their start)
            raise BadRequest(
                f"unexpected inference output '{name[:60]}' for model '{model.name}'; its outputs: "
                + ", ".join(model.tensors())
            )
        if name not in available and name not in ON_REQUEST:
            raise BadRequest(f"output {_quote(name)} cannot be returned: {_why_not(model, name)}")
        binary = _parameters(item.get("parameters"), f"output {name!r}").get(BINARY_OUTPUT, default_binary)
        if type(binary) is not bool:
            raise BadRequest(f"parameter binary_data of output {name!r} must be a boolean")
        chosen[name] = binary
    return list(chosen.items())


def _why_not(model: Model, name: str) -> str:
    option = next(option for option, outputs in PARAMETER_OUTPUTS.items() if name in outputs)
    return f"it needs the request parameter {option} (1..{model.maxima[option]})"


def render(model: Model, request: InferRequest, result: dict) -> tuple[bytes, bytes | None]:
    """The response: (JSON, binary tensor data or None when every output is JSON). orjson writes the JSON
    tensors' data straight from their numpy arrays."""
    outputs, chunks = [], []
    for name, datatype, array, binary in tensors(model, request, result):
        array = np.ascontiguousarray(array, dtype=NUMPY[datatype])
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            data = array.tobytes()
            entry["parameters"] = {BINARY_SIZE: len(data)}
            chunks.append(data)
        else:
            entry["data"] = array.reshape(-1)
        outputs.append(entry)
    body: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if request.id is not None:
        body["id"] = request.id
    body["parameters"] = {SHA256: model.predictor.sha256}
    body["outputs"] = outputs
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), (b"".join(chunks) if chunks else None)


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
    for name in model.extras:
        values = [NO_POSITION if v is None else v for v in result[name]]
        tensors[name] = np.array(values, dtype=np.int64), "INT64"
    if any(name == IN_DOMAIN for name, _ in request.outputs):
        tensors[IN_DOMAIN] = np.array(result["in_domain"], dtype=bool), "BOOL"
    if request.top_k:
        tops = result["top_k"]
        tensors[TOP_K_VALUES] = np.array([[t["value"] for t in row] for row in tops], dtype=np.int64), "INT64"
        tensors[TOP_K_P] = np.array([[t["p"] for t in row] for row in tops], dtype=np.float64), "FP64"
    return tensors


def _tensor(name: str, datatype: str, shape: list[int]) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape}


def _config_input(tensor: dict) -> dict:
    return {
        "name": tensor["name"],
        "data_type": CONFIG_TYPES[tensor["datatype"]],
        "format": "FORMAT_NONE",
        "dims": tensor["shape"][1:],
        "is_shape_tensor": False,
        "allow_ragged_batch": False,
        "optional": False,
    }


def _config_output(tensor: dict) -> dict:
    dims = tensor["shape"][1:]
    entry: dict[str, Any] = {"name": tensor["name"], "data_type": CONFIG_TYPES[tensor["datatype"]]}
    if dims:
        entry["dims"] = dims
    else:  # one value per sequence: Triton's config for a [batch] output
        entry["dims"], entry["reshape"] = [1], {"shape": []}
    return {**entry, "label_filename": "", "is_shape_tensor": False}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else format(value, "g") if isinstance(value, float) else str(value)


def _name(name: str) -> str:
    return name if len(name) <= 60 else name[:57] + "..."


def _quote(value) -> str:
    """A client's value as JSON spells it ("INT8", null, [1, 2]), never as a Python repr."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:  # nested past orjson's 255 levels (written without recursion instead), or not JSON
        text = short_json(value, 60) if isinstance(value, (list, dict)) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _server_version() -> str:
    try:
        return package_version("toyseq")
    except PackageNotFoundError:  # running from a source tree that was never installed (the container)
        return "0+unknown"
