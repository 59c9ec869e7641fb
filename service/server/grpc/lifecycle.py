"""Start and stop one worker's gRPC server, beside its HTTP, on the worker's Runtime (the one its app serves
with): gunicorn_conf.py calls start() from post_worker_init and stop() from worker_exit, gunicorn's public
hooks, so it works under any worker class; SIGTERM stops taking calls at once."""

from __future__ import annotations

import logging
import signal

from ..config import Config
from ..runtime import Runtime
from .server import GrpcServer

log = logging.getLogger("toyseq.runtime")
_server: GrpcServer | None = None


def start(runtime: Runtime, config: Config) -> None:
    """Serve gRPC in this worker; an address that cannot be bound stops the worker before it boots (gunicorn
    then stops with "Worker failed to boot")."""
    global _server
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
