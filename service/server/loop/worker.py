"""toyseq's gunicorn worker: the adapter that runs the loop server (server.py) under gunicorn's arbiter.

Built on gunicorn's documented worker API (`gunicorn.workers.base.Worker`), as uvicorn's worker is: the
arbiter, its signals, heartbeat, graceful timeout and hooks are gunicorn's; this class owns the event loop, the
heartbeat tick, SIGTERM and the worker timeout, and hands the sockets and the WSGI app to `Front`.

    gunicorn -c python:service.server.gunicorn_conf 'service:create_app()'   # worker_class is set there

A request still running past TOYSEQ_TIMEOUT is answered 503 `worker-timeout`, the worker stops accepting, lets
every other request it holds finish, and exits; the arbiter starts a fresh one. A loop that does block (an inline
request cannot be priced that high) is stopped by the arbiter's own SIGABRT, answered the same way.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import time

from gunicorn.arbiter import Arbiter
from gunicorn.workers import base

from ..config import Config
from .server import Front, Settings

TICK = 0.25  # seconds between the loop's housekeeping turns (deadlines, heartbeat, signals)


class LoopWorker(base.Worker):
    """The gunicorn side: the loop, the heartbeat, signals, graceful stop and the worker timeout."""

    def run(self) -> None:
        loop: asyncio.AbstractEventLoop
        try:
            import uvloop

            loop = uvloop.new_event_loop()
        except ImportError:  # the standard loop works, slower
            loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        cfg = self.cfg
        settings = Settings.of(
            Config.load(),  # the TOYSEQ_* settings gunicorn_conf.py checked before any worker started
            keepalive=float(cfg.keepalive),
            timeout=float(cfg.timeout),
            limit_request_line=cfg.limit_request_line,
            limit_request_fields=cfg.limit_request_fields,
            limit_field_size=cfg.limit_request_field_size,
            max_connections=cfg.worker_connections,
        )
        self.loop = loop
        self.grpc = None
        # The app and its models are loaded: move every object made so far out of the collector's reach. A full
        # collection then walks only what requests make (~8k objects instead of ~64k), so the rare gen2 pass no
        # longer stalls the loop (measured: 17-21 ms per worker every ~10 s under load before, none after),
        # and pages shared after fork are not written by the collector (the practice gc.freeze's docs give).
        gc.collect()
        gc.freeze()
        self.front = Front(loop, self.wsgi, settings, self.log)
        self.stop_by = float("inf")
        slug, detail = "shutting-down", "the server is shutting down; retry the request"
        # SIGTERM starts the graceful stop at once, on the loop (gunicorn's handler would only set a flag).
        loop.add_signal_handler(signal.SIGTERM, self._on_term)
        # gRPC on this loop (TOYSEQ_GRPC_MODE=loop): post_worker_init made the server; it starts here, before the loop
        # runs. The module is only imported when gRPC is served at all.
        self.grpc = sys.modules.get("service.server.grpc.lifecycle")
        if self.grpc is not None:
            try:
                self.grpc.attach(loop)
            except RuntimeError as err:  # BindError: the address is taken. As any failure before boot, it stops
                self.log.error("%s", err)  # gunicorn ("Worker failed to boot"), not a worker restarted in a loop
                loop.close()
                sys.exit(Arbiter.WORKER_BOOT_ERROR)
        try:
            self.front.serve(self.sockets)
            loop.call_soon(self._tick)
            loop.run_forever()
        except SystemExit as exit_:
            if exit_.code not in (0, None):  # the arbiter's SIGABRT: the loop itself was blocked too long
                slug, detail = "worker-timeout", self.front.timeout_detail()
                self.log.warning("WORKER TIMEOUT (pid:%s): the event loop was blocked; answered 503", os.getpid())
            raise
        finally:
            self.front.close(slug, detail)
            loop.close()

    def _on_term(self) -> None:
        self.alive = False
        if self.stop_by == float("inf"):
            self.stop_by = time.monotonic() + self.cfg.graceful_timeout
            self.front.stop()
            if self.grpc is not None:  # gRPC stops taking calls too (health NOT_SERVING); those in flight finish
                self.grpc.begin_stop(self.cfg.graceful_timeout)

    def _tick(self) -> None:
        now = time.monotonic()
        front = self.front
        self.notify()
        if self.ppid != os.getppid():
            self.log.info("parent changed, shutting down: %s", self)
            self.alive = False
        if front.served >= self.max_requests and self.alive:
            self.log.info("autorestarting worker after current request.")
            self.alive = False
        job = front.overdue(now)
        if job is not None:
            self.log.warning(
                "WORKER TIMEOUT (pid:%s): a request ran past TOYSEQ_TIMEOUT=%g s; answered 503, replacing the worker",
                os.getpid(),
                self.cfg.timeout,
            )
            self.alive = False
        if not self.alive:
            self._on_term()
        front.expire(now)
        grpc_done = self.grpc is None or self.grpc.stopped()
        if not self.alive and ((front.done() and grpc_done) or now >= self.stop_by):
            self.loop.stop()
            return
        self.loop.call_later(TICK, self._tick)
