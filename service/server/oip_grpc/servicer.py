"""inference.GRPCInferenceService on the REST v2 path's core: the same Service lookups, checks, limits, cost
budget, API key and answers (openinference.py), translated by translate.py. Every handler is a plain function
of (request, context) that sets a status code on failure instead of raising through grpc, so the one class
serves under the sync server (thread pool) and, wrapped by `aio_servicer`, under grpc.aio."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import grpc

from .. import openinference as oip
from ..app import REQUEST_ID
from ..auth import MESSAGE as KEY_REQUIRED
from ..auth import key_matches
from ..errors import ServiceError, Unauthorized
from . import translate
from .generated import grpc_service_pb2 as pb
from .generated import grpc_service_pb2_grpc as pb_grpc

SERVICE = "inference.GRPCInferenceService"
log = logging.getLogger("toyseq.error")

# ServiceError status -> gRPC code (the protocol's mapping of its REST statuses).
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}
# The methods this service answers; the rest of Triton's service (shared memory, tracing, ...) stays UNIMPLEMENTED.
METHODS = ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer")


def code_of(err: ServiceError) -> grpc.StatusCode:
    if isinstance(err, oip.InferOverBudget):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return CODES.get(err.status, grpc.StatusCode.INTERNAL)


class Servicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, state):
        self.service: oip.Service = state.protocol
        self.observe = state.observe  # None outside the app factory: nothing recorded
        self.api_key = state.config.api_key.encode() if state.config.api_key else b""

    def ServerLive(self, request, context):
        return self._call("ServerLive", context, lambda task: pb.ServerLiveResponse(live=True))

    def ServerReady(self, request, context):
        return self._call("ServerReady", context, lambda task: pb.ServerReadyResponse(ready=self.service.ready()))

    def ModelReady(self, request, context):
        def ready(task: list) -> pb.ModelReadyResponse:
            task.append(request.name)
            return pb.ModelReadyResponse(ready=self.service.model_ready(request.name, request.version or None))

        return self._call("ModelReady", context, ready)

    def ServerMetadata(self, request, context):
        return self._call(
            "ServerMetadata", context, lambda task: translate.server_metadata(self.service.server_metadata)
        )

    def ModelMetadata(self, request, context):
        def metadata(task: list) -> pb.ModelMetadataResponse:
            task.append(request.name)
            return translate.model_metadata(self.service.model(request.name, request.version or None))

        return self._call("ModelMetadata", context, metadata)

    def ModelInfer(self, request, context):
        sequences = [0]

        def infer(task: list) -> pb.ModelInferResponse:
            if self.api_key:
                metadata = dict(context.invocation_metadata())
                if not key_matches(self.api_key, metadata.get("authorization"), metadata.get("x-api-key")):
                    raise Unauthorized(KEY_REQUIRED)
            task.append(request.model_name)
            model = self.service.model(request.model_name, request.model_version or None)
            body, binary, raw = translate.infer_request(request)
            checked = oip.check_infer(model, body, binary)
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                raise _Deadline()
            result = self.service.run(model, checked)
            sequences[0] = len(checked.arrays)
            return translate.infer_response(model, checked, result, raw)

        return self._call("ModelInfer", context, infer, sequences)

    def _call(self, method: str, context, handler: Callable[[list], object], sequences: list | None = None):
        """Run `handler` (it appends the task name it looked up to its argument, for the metrics); a
        ServiceError becomes its gRPC code with the same message as REST; each call is counted and logged."""
        started = time.perf_counter()
        task: list[str] = []
        status = 200
        rid = self._request_id(context)
        try:
            return handler(task)
        except ServiceError as err:
            status = 400 if err.status == 422 else err.status
            context.set_code(code_of(err))
            context.set_details(err.message)
        except _Deadline:
            status = 504
            context.set_code(grpc.StatusCode.DEADLINE_EXCEEDED)
            context.set_details("the call's deadline passed before the model ran")
        except Exception:
            status = 500
            log.exception("unhandled error in gRPC call %s (request %s)", method, rid)
            context.set_code(grpc.StatusCode.INTERNAL)
            context.set_details(f"internal error; quote request id {rid} when reporting it")
        finally:
            if self.observe is not None:
                name = task[0] if task and task[0] in self.service.registry.names else ""
                self.observe.record_call(
                    rid,
                    "grpc." + method,
                    f"/{SERVICE}/{method}",
                    status,
                    time.perf_counter() - started,
                    context.peer(),
                    name,
                    sequences[0] if sequences else 0,
                )
        return None


    def _request_id(self, context) -> str:
        """The client's x-request-id metadata when tame (as X-Request-ID on HTTP), else a new id; sent back in
        the trailing metadata, and logged with the call."""
        rid = None
        for key, value in context.invocation_metadata():
            if key == "x-request-id":
                rid = value if isinstance(value, str) and REQUEST_ID.fullmatch(value) else None
        if rid is None:
            rid = self.observe.new_id() if self.observe is not None else "-"
        context.set_trailing_metadata((("x-request-id", rid),))
        return rid


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
    return Aio()
