"""The gRPC server one gunicorn worker runs beside its HTTP: the inference service and grpc.health.v1 on
TOYSEQ_GRPC_BIND. Every worker binds the same address with SO_REUSEPORT (grpc's default on Linux) and the
kernel spreads connections over them, as it spreads HTTP connections over the workers.

Two ways to run it, both measured (docs/performance.md): "sync", grpc.server with a thread pool, and "aio",
grpc.aio on an event loop in its own thread. GrpcServer picks SYNC unless told otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ..runtime import Runtime
from .generated import grpc_service_pb2_grpc as pb_grpc
from .servicer import SERVICE, Servicer, aio_servicer

log = logging.getLogger("toyseq.runtime")
MODES = ("sync", "aio")


class BindError(RuntimeError):
    """TOYSEQ_GRPC_BIND could not be bound (a port in use without SO_REUSEPORT, a bad address)."""


def options(runtime: Runtime) -> list[tuple[str, int]]:
    limit = runtime.config.max_body_bytes
    return [
        ("grpc.max_receive_message_length", limit),  # larger messages: RESOURCE_EXHAUSTED before any work
        ("grpc.so_reuseport", 1),  # every worker serves the port (grpc's default on Linux, said here)
    ]


class Health(health.HealthServicer):
    """grpc.health.v1 whose status is the service's readiness at the time of each Check ("" and the inference
    service alike), so a Kubernetes gRPC probe sees what /readyz says; NOT_SERVING from the start of a stop."""

    def __init__(self, service):
        super().__init__(experimental_non_blocking=True)
        self._service = service
        self._refresh()

    def _refresh(self) -> None:
        ready = self._service.ready()
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE):
            self.set(name, status)  # ignored once enter_graceful_shutdown() ran

    def Check(self, request, context):
        self._refresh()
        return super().Check(request, context)


class GrpcServer:
    """Start with start(); begin_stop() is safe from a signal handler; wait() after it."""

    def __init__(self, runtime: Runtime, bind: str, mode: str = "sync", threads: int = 2, max_calls: int = 1000):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.runtime, self.bind, self.mode = runtime, bind, mode
        self.threads, self.max_calls = threads, max_calls
        self.port = 0
        self._server: grpc.Server | grpc.aio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._stopping = False
        self._health = Health(runtime.protocol)

    def start(self) -> int:
        if self.mode == "sync":
            self._start_sync()
        else:
            self._start_aio()
        log.info("gRPC serving", extra={"fields": {"bind": self.bind, "port": self.port, "mode": self.mode}})
        return self.port

    def _start_sync(self) -> None:
        server = grpc.server(
            futures.ThreadPoolExecutor(self.threads, thread_name_prefix="toyseq-grpc"),
            options=options(self.runtime),
            maximum_concurrent_rpcs=self.max_calls,
        )
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(self.runtime), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        self.port = self._add_port(server)
        server.start()
        self._server = server

    def _start_aio(self) -> None:
        started = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            server = grpc.aio.server(
                migration_thread_pool=futures.ThreadPoolExecutor(1, thread_name_prefix="toyseq-grpc-health"),
                options=options(self.runtime),
                maximum_concurrent_rpcs=self.max_calls,
            )
            pb_grpc.add_GRPCInferenceServiceServicer_to_server(aio_servicer(Servicer(self.runtime)), server)
            # The health servicer's handlers are plain functions: grpc.aio runs them in the migration pool.
            health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
            self.port = self._add_port(server)
            await server.start()
            self._server = server

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(serve())
            except BaseException as err:
                failure.append(err)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="toyseq-grpc-aio", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]

    def _add_port(self, server) -> int:
        try:
            port = server.add_insecure_port(self.bind)
        except RuntimeError as err:
            raise BindError(f"cannot serve gRPC on TOYSEQ_GRPC_BIND={self.bind!r}: {err}") from None
        if not port:
            raise BindError(f"cannot serve gRPC on TOYSEQ_GRPC_BIND={self.bind!r}")
        return port

    def begin_stop(self, grace: float) -> None:
        """Stop taking calls and let those in flight finish within `grace` seconds; returns at once."""
        if self._server is None or self._stopping:
            return
        self._stopping = True
        self._health.enter_graceful_shutdown()
        if self.mode == "sync":
            done = self._server.stop(grace)

            def stopped() -> None:
                done.wait()
                self._stopped.set()

            threading.Thread(target=stopped, daemon=True).start()
        else:
            loop, server = self._loop, self._server
            assert loop is not None and isinstance(server, grpc.aio.Server)

            async def stop() -> None:
                await server.stop(grace)
                loop.stop()
                self._stopped.set()

            loop.call_soon_threadsafe(lambda: loop.create_task(stop()))

    def wait(self, timeout: float) -> bool:
        """True once stopped (or never started)."""
        return self._server is None or self._stopped.wait(timeout)


__all__ = ["BindError", "GrpcServer", "health"]
