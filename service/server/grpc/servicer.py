"""inference.GRPCInferenceService on the REST v2 path's core: the same Service lookups, checks, limits, cost
budget, API key and answers (openinference.py), translated by translate.py. Every handler is a plain function
of (request, context) that sets a status code on failure instead of raising through grpc, so the one class
serves under the sync server (thread pool) and, wrapped by `aio_servicer`, under grpc.aio."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from ..observability.recorder import REQUEST_ID
from ..problems import ServiceError, Unauthorized
from ..protocol import offload
from ..protocol import v2 as oip
from ..protocol.auth import MESSAGE as KEY_REQUIRED
from ..protocol.auth import key_matches
from ..protocol.statistics import Timing
from ..runtime import Runtime
from . import translate
from .generated import grpc_service_pb2 as pb
from .generated import grpc_service_pb2_grpc as pb_grpc

SERVICE = "inference.GRPCInferenceService"
FINAL = "triton_final_response"  # the response parameter marking a request's last streamed answer
log = logging.getLogger("toyseq.error")
log_control = logging.getLogger("toyseq.control")

# ServiceError status -> gRPC code (the protocol's mapping of its REST statuses).
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}
# The unary methods this service answers (ModelStreamInfer, a stream, is wrapped apart for grpc.aio); the rest of
# Triton's service (shared memory, tracing, ...) stays UNIMPLEMENTED.
METHODS = (
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelConfig",
    "ModelInfer",
    "ModelStatistics",
    "RepositoryIndex",
    "RepositoryModelLoad",
    "RepositoryModelUnload",
)


def code_of(err: ServiceError) -> grpc.StatusCode:
    if isinstance(err, oip.InferOverBudget):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return CODES.get(err.status, grpc.StatusCode.INTERNAL)


class Servicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, runtime: Runtime):
        self.service: oip.Service = runtime.protocol
        self.statistics = runtime.statistics
        self.repository = runtime.repository
        self.recorder = runtime.recorder
        self.api_key = runtime.config.api_key.encode() if runtime.config.api_key else b""
        # Under the sync server an open stream holds one of the pool's TOYSEQ_REQUEST_THREADS threads, even idle:
        # streams may take at most half of them, so unary calls (and health checks) always find a thread.
        self.max_streams = max(1, runtime.config.request_threads // 2)
        self._streams = threading.BoundedSemaphore(self.max_streams)

    def ServerLive(self, request, context):
        return self._call("ServerLive", context, lambda tags: pb.ServerLiveResponse(live=True))

    def ServerReady(self, request, context):
        return self._call("ServerReady", context, lambda tags: pb.ServerReadyResponse(ready=self.service.ready()))

    def ModelReady(self, request, context):
        def ready(tags: _Tags) -> pb.ModelReadyResponse:
            tags.task = request.name
            return pb.ModelReadyResponse(ready=self.service.model_ready(request.name, request.version or None))

        return self._call("ModelReady", context, ready)

    def ServerMetadata(self, request, context):
        return self._call(
            "ServerMetadata", context, lambda tags: translate.server_metadata(self.service.server_metadata)
        )

    def ModelMetadata(self, request, context):
        def metadata(tags: _Tags) -> pb.ModelMetadataResponse:
            tags.task = request.name
            return translate.model_metadata(self.service.model(request.name, request.version or None))

        return self._call("ModelMetadata", context, metadata)

    def ModelConfig(self, request, context):
        def config(tags: _Tags) -> pb.ModelConfigResponse:
            tags.task = request.name
            return translate.model_config(self.service.config(request.name, request.version or None)[1])

        return self._call("ModelConfig", context, config)

    def ModelInfer(self, request, context):
        return self._call("ModelInfer", context, lambda tags: self._infer(request, context, tags))

    def ModelStreamInfer(self, request_iterator, context):
        """Triton's streaming inference, for models that are not decoupled: every request on the stream is
        answered in order, each by the same path as ModelInfer (its id echoed); a request that fails gets its
        error as that message's error_message and the stream goes on, as Triton's server does."""
        if not self._streams.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this worker already holds {self.max_streams} open ModelStreamInfer streams (half of "
                "TOYSEQ_REQUEST_THREADS); close one, retry later, or use ModelInfer",
            )
        try:
            for request in request_iterator:
                yield self._stream_one(request, context)
        finally:
            self._streams.release()

    def _stream_one(self, request, context) -> pb.ModelStreamInferResponse:
        def failed(code, message: str) -> pb.ModelStreamInferResponse:
            return pb.ModelStreamInferResponse(error_message=message)

        answer = self._call("ModelStreamInfer", context, lambda tags: self._infer(request, context, tags), failed)
        if isinstance(answer, pb.ModelStreamInferResponse):
            return answer
        # Each answer is its request's last (the models are not decoupled): Triton's stream flag, which clients
        # waiting for a request's end (tritonclient's enable_empty_final_response, generate loops) read.
        answer.parameters[FINAL].bool_param = True
        return pb.ModelStreamInferResponse(infer_response=answer)

    def _infer(self, request, context, tags: _Tags) -> pb.ModelInferResponse:
        """One inference: ModelInfer's, and each message of ModelStreamInfer's."""
        self._authorize(context)
        tags.task = request.model_name
        model = self.service.model(request.model_name, request.model_version or None)
        timing = tags.timing = Timing(model.version)  # the statistics extension's durations, as on REST
        self._check_deadline(context, translate.estimated_seconds(model, request))
        body, binary, raw = translate.infer_request(request)
        checked = oip.check_infer(model, body, binary)
        # Triton's `timeout` request parameter, honoured as over REST (503 there, UNAVAILABLE here) ...
        oip.check_deadline(model, checked, time.perf_counter() - tags.started)
        self._check_deadline(context, 0.0)  # ... beside gRPC's own deadline
        timing.infer = time.perf_counter()
        result = self.service.run(model, checked)
        timing.output = time.perf_counter()
        tags.sequences = len(checked.arrays)
        tags.outside = result["in_domain"].count(False)
        return translate.infer_response(model, checked, result, raw)

    def ModelStatistics(self, request, context):
        def stats(tags: _Tags) -> pb.ModelStatisticsResponse:
            tags.task = request.name
            body = self.statistics.model_stats(
                self.service.registry.current, request.name or None, request.version or None
            )
            return translate.statistics(body)

        return self._call("ModelStatistics", context, stats)

    def RepositoryIndex(self, request, context):
        return self._call(
            "RepositoryIndex", context, lambda tags: translate.index(self.repository.index(ready_only=request.ready))
        )

    def RepositoryModelLoad(self, request, context):
        def load(tags: _Tags) -> pb.RepositoryModelLoadResponse:
            offload.off_the_loop()  # it waits for every worker to load the model: never on an event loop
            tags.task = request.model_name
            who = self._privileged(context)
            config = translate.check_load_parameters(request.parameters)
            self.repository.load(request.model_name, who, config)
            return pb.RepositoryModelLoadResponse()

        return self._call("RepositoryModelLoad", context, load)

    def RepositoryModelUnload(self, request, context):
        def unload(tags: _Tags) -> pb.RepositoryModelUnloadResponse:
            offload.off_the_loop()
            tags.task = request.model_name
            self.repository.unload(request.model_name, self._privileged(context))
            return pb.RepositoryModelUnloadResponse()

        return self._call("RepositoryModelUnload", context, unload)

    @staticmethod
    def _check_deadline(context, estimate: float) -> None:
        """No model work for an answer nobody will read: the client's deadline has passed, or the request's
        estimated CPU time (the cost model behind TOYSEQ_MAX_REQUEST_SECONDS) would take it past."""
        remaining = context.time_remaining()
        if remaining is None:
            return
        if remaining <= 0:
            raise _Deadline("the call's deadline passed before the model ran")
        if estimate > remaining:
            raise _Deadline(
                f"this request would take about {estimate:.3g} s of CPU, past the call's deadline "
                f"({remaining:.3g} s left): send fewer sequences or give it a longer deadline"
            )

    def _authorize(self, context) -> None:
        """The API key, when one is set: `authorization: Bearer <key>` or `x-api-key` metadata (as REST's headers)."""
        if self.api_key:
            metadata = dict(context.invocation_metadata())
            if not key_matches(self.api_key, metadata.get("authorization"), metadata.get("x-api-key")):
                raise Unauthorized(KEY_REQUIRED)

    def _privileged(self, context) -> dict:
        """Who asked a model control call, for its log line; UNAUTHENTICATED without the key when one is set."""
        who = {"request_id": None, "remote": context.peer(), "transport": "gRPC"}
        try:
            self._authorize(context)
        except Unauthorized:
            log_control.warning("model control without a valid API key", extra={"fields": who})
            raise
        return who

    def _call(self, method: str, context, handler: Callable[[_Tags], object], failed: Callable | None = None):
        """Run `handler`; a ServiceError becomes its gRPC code with the REST path's message (or, with `failed`,
        what failed(code, message) returns: a stream's per-message error); each call is counted and logged
        under the task and sequences the handler tagged."""
        started = time.perf_counter()
        tags = _Tags(started=started)
        status = 200
        rid = self._request_id(context)
        moved = False
        try:
            return handler(tags)
        except offload.MoveToPool:  # TOYSEQ_GRPC_MODE=loop: run again on the pool (on_loop.py), counted there
            moved = True
            raise
        except ServiceError as err:
            status = 400 if err.status == 422 else err.status
            code, details = code_of(err), err.message
        except _Deadline as err:
            status = 504
            code, details = grpc.StatusCode.DEADLINE_EXCEEDED, str(err)
        except Exception:
            status = 500
            log.exception("unhandled error in gRPC call %s (request %s)", method, rid)
            code, details = grpc.StatusCode.INTERNAL, f"internal error; quote request id {rid} when reporting it"
        finally:
            if not moved:
                self._record(method, context, rid, status, started, tags)
        if failed is not None:
            return failed(code, details)
        context.set_code(code)
        context.set_details(details)
        return None

    def _record(self, method: str, context, rid: str, status: int, started: float, tags: _Tags) -> None:
        # Only a known task name becomes a metric label, so labels stay bounded (as on HTTP).
        task = tags.task if self.service.is_task(tags.task) else ""
        path = f"/{SERVICE}/{method}"
        seconds = time.perf_counter() - started
        self.recorder.record_call(
            rid,
            "grpc." + method,
            path,
            status,
            seconds,
            context.peer(),
            task,
            tags.sequences,
            started,
            tags.timing,
            tags.outside,
        )

    def _request_id(self, context) -> str:
        """The client's x-request-id metadata when tame (as X-Request-ID on HTTP), else a new id; sent back in
        the trailing metadata, and logged with the call."""
        rid = None
        for key, value in context.invocation_metadata():
            if key == "x-request-id":
                rid = value if isinstance(value, str) and REQUEST_ID.fullmatch(value) else None
        if rid is None:
            rid = self.recorder.new_id()
        context.set_trailing_metadata((("x-request-id", rid),))
        return rid


@dataclass
class _Tags:
    """What a handler learnt for the access line and metrics: the task it looked up, the sequences it answered."""

    task: str = ""
    sequences: int = 0
    outside: int = 0  # of those, outside the task's domain (service/core/domain.py)
    started: float = 0.0  # perf_counter() when the call began: a request's own timeout runs from there
    timing: Timing | None = None  # an inference call's clock, for the statistics extension


class _Deadline(Exception):
    """The client's deadline passed while the call waited: no model work for an answer nobody reads."""


def aio_servicer(servicer: Servicer) -> pb_grpc.GRPCInferenceServiceServicer:
    """The same handlers as coroutines for grpc.aio (they run inline on its loop: a predict is short and the
    cost budget bounds it)."""

    class Aio(pb_grpc.GRPCInferenceServiceServicer):
        pass

    for name in METHODS:
        handler = getattr(servicer, name)

        async def method(self, request, context, _handler=handler):
            return _handler(request, context)

        setattr(Aio, name, method)

    async def stream(self, request_iterator, context):
        async for request in request_iterator:
            yield servicer._stream_one(request, context)

    Aio.ModelStreamInfer = stream  # type: ignore[method-assign]
    return Aio()
