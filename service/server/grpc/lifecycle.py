"""Start and stop one gunicorn worker's gRPC server through gunicorn's public hooks only (post_worker_init,
worker_exit) and SIGTERM, so it works under any worker class: the app the worker loaded (`worker.wsgi`)
carries the state the servicer needs in app.extensions["toyseq"]."""

from __future__ import annotations

import logging
import signal

from ..config import Config
from .server import GrpcServer

log = logging.getLogger("toyseq.runtime")
_server: GrpcServer | None = None


def start(worker, config: Config) -> None:
    """Serve gRPC in this worker; an address that cannot be bound stops the worker before it boots (gunicorn
    then stops with "Worker failed to boot")."""
    global _server
    state = _state(worker.wsgi)
    server = GrpcServer(
        state,
        config.grpc_bind,
        mode=config.grpc_mode,
        threads=config.request_threads,
        max_calls=config.worker_connections,
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


def _state(app):
    # The Flask app, or a WSGI wrapper around it that keeps it as .app / .wsgi_app (gunicorn's own wrappers).
    for _ in range(4):
        extensions = getattr(app, "extensions", None)
        if extensions is not None and "toyseq" in extensions:
            return extensions["toyseq"]
        app = getattr(app, "app", None) or getattr(app, "application", None)
    raise RuntimeError("TOYSEQ_GRPC_BIND needs the toyseq app (service:create_app()) to serve gRPC")


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
