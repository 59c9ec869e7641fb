"""Start and stop one worker's gRPC server, beside its HTTP, on the worker's Runtime (the one its app serves
with): gunicorn_conf.py calls start() from post_worker_init and stop() from worker_exit, gunicorn's public
hooks, so it works under any worker class; SIGTERM stops taking calls at once."""

from __future__ import annotations

import logging
import signal

from ..config import Config
from ..runtime import Runtime
from .on_loop import LoopGrpcServer
from .server import GrpcServer

log = logging.getLogger("toyseq.runtime")
_server: GrpcServer | None = None
_pending: LoopGrpcServer | None = None  # a loop-mode server waiting for the worker's loop


def start(runtime: Runtime, config: Config, on_loop: bool = False) -> None:
    """Serve gRPC in this worker; an address that cannot be bound stops the worker before it boots (gunicorn
    then stops with "Worker failed to boot"). With TOYSEQ_GRPC_MODE=loop and `on_loop` (the loop worker), the
    server waits for the worker's event loop: the worker calls attach(loop) before running it."""
    global _server, _pending
    server: GrpcServer
    if config.grpc_mode == "loop":
        server = LoopGrpcServer(
            runtime,
            config.grpc_bind,
            threads=config.request_threads,
            max_calls=config.worker_connections,
            inline_seconds=config.inline_seconds,
        )
        if on_loop:
            _pending = server
            return
    else:
        server = GrpcServer(
            runtime,
            config.grpc_bind,
            mode=config.grpc_mode,
            threads=config.request_threads,
            max_calls=config.worker_connections,
            read_timeout=config.read_timeout,
        )
    server.start()
    _server = server  # only a started server is stopped by worker_exit
    _chain_sigterm(config.graceful_timeout)


def attach(loop) -> None:
    """Start the pending loop-mode server on the worker's event loop (before it runs); a no-op otherwise."""
    global _server, _pending
    if _pending is not None:
        server, _pending = _pending, None
        server.serve_on(loop)
        _server = server


def begin_stop(grace: float) -> None:
    """Stop taking calls (SIGTERM); the calls in flight finish within `grace` seconds."""
    if _server is not None:
        _server.begin_stop(grace)


def stopped() -> bool:
    """True once the server has stopped, or when there is none."""
    return _server is None or _server.wait(0)


def stop(grace: float) -> None:
    """Stop taking calls, let those in flight finish within `grace` seconds, and wait for that."""
    if _server is not None:
        _server.begin_stop(grace)
        if not _server.wait(grace + 1):
            log.warning("gRPC calls still running after the graceful timeout")


def _chain_sigterm(grace: float) -> None:
    """On SIGTERM stop taking gRPC calls at once (health turns NOT_SERVING), then run the worker's own handler,
    which ends its HTTP loop; worker_exit waits for the calls in flight. A worker that installs its handler
    later (an asyncio loop's) leaves worker_exit to do both."""
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return

    def handler(signum, frame):
        if _server is not None:
            _server.begin_stop(grace)
        previous(signum, frame)

    signal.signal(signal.SIGTERM, handler)
