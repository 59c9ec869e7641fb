"""gRPC on the loop worker's own event loop (TOYSEQ_GRPC_MODE=loop): grpc.aio served from the uvloop loop that
serves the worker's HTTP, each call's handler run inline there, with no thread hand-off, exactly as the HTTP
front runs a cheap request (KServe serves its grpc.aio server on the loop its REST server runs on, too).

A call priced over the inline budget (protocol/offload.py: the same fitted estimate as on HTTP) is moved, like an
HTTP request, to a small pool of TOYSEQ_REQUEST_THREADS threads, so a heavy call never holds the loop; so are
model loads and unloads, which wait for every worker. The server options (message size, connection and stream
limits) and the concurrent-call limit are server.py's, whatever the mode.

Under gunicorn's sync worker (no event loop of its own) this mode serves as "aio", on a loop thread of its own.
"""

from __future__ import annotations

import asyncio
from concurrent import futures

import grpc
from grpc_health.v1 import health_pb2_grpc

from ..protocol import offload
from .generated import grpc_service_pb2_grpc as pb_grpc
from .server import GrpcServer, options
from .servicer import METHODS, Servicer


def loop_servicer(servicer: Servicer, pool: futures.Executor, budget: float) -> pb_grpc.GRPCInferenceServiceServicer:
    """The servicer's handlers as coroutines that run inline on the loop within `budget` estimated CPU seconds and
    move to `pool` past it (MoveToPool, raised before any model work)."""

    class OnLoop(pb_grpc.GRPCInferenceServiceServicer):
        pass

    for name in METHODS:
        handler = getattr(servicer, name)

        async def method(self, request, context, _handler=handler):
            token = offload.set_budget(budget)
            try:
                return _handler(request, context)
            except offload.MoveToPool:
                pass
            finally:
                offload.reset(token)
            return await asyncio.get_running_loop().run_in_executor(pool, _handler, request, context)

        setattr(OnLoop, name, method)

    async def stream(self, request_iterator, context):
        # ModelStreamInfer: each message as a ModelInfer call, inline within the budget or on the pool past it
        loop = asyncio.get_running_loop()
        async for request in request_iterator:
            token = offload.set_budget(budget)
            try:
                answer = servicer._stream_one(request, context)
            except offload.MoveToPool:
                answer = await loop.run_in_executor(pool, servicer._stream_one, request, context)
            finally:
                offload.reset(token)
            yield answer

    OnLoop.ModelStreamInfer = stream  # type: ignore[method-assign]
    return OnLoop()


class LoopGrpcServer(GrpcServer):
    """GrpcServer on a running loop it does not own: `serve_on(loop)` starts it there (the worker calls it before
    running its loop), begin_stop() stops it on that loop; wait() as GrpcServer's."""

    def __init__(self, runtime, bind: str, threads: int = 2, max_calls: int = 1000, inline_seconds: float = 0.005):
        super().__init__(runtime, bind, mode="aio", threads=threads, max_calls=max_calls)
        self.mode = "loop"
        self.inline_seconds = inline_seconds
        self._calls_pool = futures.ThreadPoolExecutor(threads, thread_name_prefix="toyseq-grpc-pool")

    def start(self) -> int:  # no loop of the worker's to run on: grpc.aio on a loop thread of its own
        self.mode = "aio"
        return super().start()

    def serve_on(self, loop: asyncio.AbstractEventLoop) -> int:
        """Start serving on `loop` (not running yet: the worker's, before run_forever)."""

        async def serve() -> None:
            server = grpc.aio.server(
                migration_thread_pool=self._calls_pool,  # the health servicer's plain handlers run there
                options=options(self.runtime),
                maximum_concurrent_rpcs=self.max_calls,
            )
            servicer = loop_servicer(Servicer(self.runtime), self._calls_pool, self.inline_seconds)
            pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
            health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
            self.port = self._add_port(server)
            await server.start()
            self._server = server

        self._loop = loop
        loop.run_until_complete(serve())
        return self.port

    def begin_stop(self, grace: float) -> None:
        if self.mode != "loop":
            super().begin_stop(grace)
            return
        if self._server is None or self._stopping:
            return
        self._stopping = True
        self._health.enter_graceful_shutdown()
        loop, server = self._loop, self._server
        assert loop is not None and isinstance(server, grpc.aio.Server)

        async def stop() -> None:
            await server.stop(grace)
            self._stopped.set()

        if loop.is_closed():  # the worker's loop has ended, and the server with it
            self._stopped.set()
        elif _running() is loop:
            loop.create_task(stop())
        else:
            loop.call_soon_threadsafe(lambda: loop.create_task(stop()))


def _running() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
