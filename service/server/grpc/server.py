"""The gRPC server one gunicorn worker runs beside its HTTP: the inference service and grpc.health.v1 on
TOYSEQ_GRPC_BIND. Every worker binds the same address with SO_REUSEPORT (grpc's default on Linux) and the
kernel spreads connections over them, as it spreads HTTP connections over the workers.

Two ways to run it, both measured (docs/performance.md): "sync", grpc.server with a thread pool, and "aio",
grpc.aio on an event loop in its own thread. GrpcServer picks SYNC unless told otherwise.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
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


MAX_STREAMS_PER_CONNECTION = 100  # HTTP/2's recommended floor (RFC 9113 6.5.2); nginx's default is 128
WAITING_THREADS = 256  # at most this many sync calls wait for their message on threads of their own
KEEPALIVE_MS, KEEPALIVE_TIMEOUT_MS = 60_000, 20_000  # ping a connection idle this long; drop it unanswered


def options(runtime: Runtime) -> list[tuple[str, int]]:
    """gRPC's own server options. Calls in all are capped by maximum_concurrent_rpcs (TOYSEQ_WORKER_CONNECTIONS
    per worker, RESOURCE_EXHAUSTED past it), streams per connection here; keepalive pings find connections whose
    peer is gone, and gRPC core's ping policing (grpc.http2.max_ping_strikes, min_ping_interval) stays on."""
    limit = runtime.config.max_body_bytes
    return [
        ("grpc.max_receive_message_length", limit),  # larger messages: RESOURCE_EXHAUSTED before any work
        ("grpc.so_reuseport", 1),  # every worker serves the port (grpc's default on Linux, said here)
        ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
        ("grpc.keepalive_time_ms", KEEPALIVE_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ]


class Receiving(futures.ThreadPoolExecutor):
    """The sync server's pool. grpcio hands each call to its pool as the call starts, and the thread then waits
    for the request message: a stream that never sent one held one of TOYSEQ_REQUEST_THREADS threads for as long
    as it stayed open (two such streams stopped gRPC in a worker). Here calls wait on threads of their own (up to
    WAITING_THREADS, made as needed), the work runs `threads` at a time (Gate), a call whose message has not come
    within `read_timeout` seconds is cancelled, as the HTTP front drops a request not received in time, and
    stopping cancels those still waiting at once (nothing of theirs was received, so nothing is lost)."""

    def __init__(self, threads: int, read_timeout: float):
        super().__init__(threads + WAITING_THREADS, thread_name_prefix="toyseq-grpc")
        self.read_timeout = read_timeout
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[float, object]] = {}  # a call not yet given its message: (since, call)
        self._keys = itertools.count()
        self._local = threading.local()
        self._closed = threading.Event()
        threading.Thread(target=self._watch, name="toyseq-grpc-watch", daemon=True).start()

    def submit(self, fn, /, *args, **kwargs):
        # grpcio submits (context.run, behaviour, rpc_event, state, ...): rpc_event.call is the call to cancel
        call = getattr(args[1], "call", None) if len(args) > 1 else None
        key = next(self._keys)
        with self._lock:
            self._waiting[key] = (time.monotonic(), call)

        def run():
            self._local.key = key
            try:
                return fn(*args, **kwargs)
            finally:
                self.received()
                self._local.key = None

        return super().submit(run)

    def received(self) -> None:
        """The current thread's call has its message (Gate calls this): it is no longer waiting."""
        key = getattr(self._local, "key", None)
        if key is not None:
            with self._lock:
                self._waiting.pop(key, None)

    def cancel_waiting(self, older_than: float = 0.0) -> int:
        now = time.monotonic()
        with self._lock:
            stale = [key for key, (since, _) in self._waiting.items() if now - since >= older_than]
            calls = [self._waiting.pop(key)[1] for key in stale]
        for call in calls:
            if call is not None:
                call.cancel()  # type: ignore[attr-defined]
        return len(calls)

    def _watch(self) -> None:
        while not self._closed.wait(min(1.0, self.read_timeout / 4)):
            cancelled = self.cancel_waiting(self.read_timeout)
            if cancelled:
                log.info("cancelled gRPC calls that sent no message in %g s", self.read_timeout)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed.set()
        super().shutdown(wait, cancel_futures=cancel_futures)


class Gate(grpc.ServerInterceptor):
    """Marks a call received once its message is in hand, and runs the inference service's calls `threads` at a
    time (TOYSEQ_REQUEST_THREADS: the work's concurrency, as before); health checks are not held behind them."""

    def __init__(self, pool: Receiving, threads: int):
        self.pool, self.work = pool, threading.BoundedSemaphore(threads)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return handler
        pool, work = self.pool, self.work
        if handler.unary_unary is not None and handler_call_details.method.startswith(f"/{SERVICE}/"):
            behaviour = handler.unary_unary

            def gated(request, context):
                pool.received()
                with work:
                    return behaviour(request, context)

            return handler._replace(unary_unary=gated)
        # any other call (health Check, a Watch stream, a streaming method) is received once its handler runs
        kind = next(k for k in ("unary_unary", "unary_stream", "stream_unary", "stream_stream") if getattr(handler, k))
        inner = getattr(handler, kind)

        def received(request, context):
            pool.received()
            return inner(request, context)

        return handler._replace(**{kind: received})


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

    def __init__(
        self,
        runtime: Runtime,
        bind: str,
        mode: str = "sync",
        threads: int = 2,
        max_calls: int = 1000,
        read_timeout: float = 10.0,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.runtime, self.bind, self.mode = runtime, bind, mode
        self.threads, self.max_calls, self.read_timeout = threads, max_calls, read_timeout
        self._pool: Receiving | None = None
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
        pool = self._pool = Receiving(self.threads, self.read_timeout)
        server = grpc.server(
            pool,
            interceptors=[Gate(pool, self.threads)],
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
            if self._pool is not None:
                self._pool.cancel_waiting()  # calls with no message yet: the stop does not wait for them
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
