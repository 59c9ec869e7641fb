"""The loop worker's HTTP/1.1 server: one event loop per process that receives every request in full, runs cheap
ones inline on the loop and heavy ones on a small thread pool, and writes answers without blocking. It runs any
WSGI app and knows nothing of gunicorn: worker.py is the small adapter that runs it under gunicorn's arbiter,
as uvicorn keeps workers.py apart from server.py (tests run `Front` alone).

Why: a request costs no thread hand-off when it runs where it was read, which is where the time of a small
predict goes; a heavy one (priced by service/core/cost.py before any work, see protocol/offload.py) must not
hold the loop, so it goes to the pool; and no client can hold a thread, whatever it sends or fails to read:
a slow head or body is dropped after `read_timeout` (TOYSEQ_READ_TIMEOUT), a body declared over the limit
is answered 413 at once, an answer the client does not read waits in a bounded buffer, never in a thread.
The HTTP framing is connection.py.

The worker timeout (TOYSEQ_TIMEOUT): `overdue` finds a request still running past it; the worker answers it
503 `worker-timeout`, stops accepting, lets every other request it holds finish, and exits (a Python thread
cannot be stopped, only its process).
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass

from .. import problems
from ..config import Config
from ..protocol import offload
from .connection import Connection, Refusal, Request, base_environ

ACCEPT_DELAY_PER_CONN = 0.001  # seconds a worker waits before accepting, per connection it holds
ACCEPT_DELAY_MAX = 0.02
ACCEPT_BATCH = 16  # connections accepted per readable event
POOL_NICE = 5  # the pool threads' nice value above the loop's
RECLAIM_BATCH = 32  # idle connections closed at once at the connection limit (nginx closes 32)


@dataclass
class Settings:
    """The server's limits; under gunicorn, worker.py builds them from the one Config (TOYSEQ_* settings, README
    lists them) and gunicorn's own settings. The defaults are Config's."""

    max_body_bytes: int = Config.max_body_bytes
    read_timeout: float = Config.read_timeout  # seconds to send a whole request, or to take an answer
    keepalive: float = Config.keepalive
    keepalive_requests: int = Config.keepalive_requests  # 0: no limit
    buffer_bytes: int = 8 * Config.max_body_bytes  # bytes of requests still arriving, and of unread answers
    pool_threads: int = Config.request_threads  # heavy requests run at once
    inline_seconds: float = Config.inline_seconds  # estimated CPU seconds up to which a predict runs on the loop
    inline_body_bytes: int = 64 * 1024  # larger bodies go to the pool before the app parses them
    timeout: float = Config.timeout  # a request running longer is answered 503 and the worker replaced
    limit_request_line: int = Config.limit_request_line
    limit_request_fields: int = Config.limit_request_fields
    limit_field_size: int = 8190  # gunicorn's limit_request_field_size
    max_connections: int = Config.worker_connections

    @classmethod
    def of(cls, config: Config, **gunicorn) -> Settings:
        """From the one Config; `gunicorn` overrides what gunicorn's own settings (possibly set on its command
        line) decide: keepalive, timeout, the request line and field limits, the connection limit."""
        values = {
            "max_body_bytes": config.max_body_bytes,
            "read_timeout": float(config.read_timeout),
            "keepalive": float(config.keepalive),
            "keepalive_requests": config.keepalive_requests,
            # bytes held per worker by requests still arriving, and again by answers clients have not read:
            # 8 bodies of the largest size allowed
            "buffer_bytes": 8 * config.max_body_bytes,
            "pool_threads": config.request_threads,
            "inline_seconds": config.inline_seconds,
            "timeout": float(config.timeout),
            "limit_request_line": config.limit_request_line,
            "limit_request_fields": config.limit_request_fields,
            "max_connections": config.worker_connections,
        }
        return cls(**{**values, **gunicorn})


class Job:
    __slots__ = ("conn", "request", "started", "abandoned")

    def __init__(self, conn: Connection, request: Request):
        self.conn, self.request = conn, request
        self.started = 0.0  # set by the pool thread when it starts the request
        self.abandoned = False


class Front:
    """The HTTP/1.1 server on one event loop: accepts, frames (connection.py), calls the WSGI app inline or on
    the pool, and holds every connection's deadlines. Independent of gunicorn, so tests can run it alone."""

    def __init__(self, loop: asyncio.AbstractEventLoop, app, settings: Settings, log):
        self.loop, self.app, self.log = loop, app, log
        self.settings = s = settings
        self.max_body_bytes, self.keepalive_requests = s.max_body_bytes, s.keepalive_requests
        self.limit_request_line, self.limit_request_fields = s.limit_request_line, s.limit_request_fields
        self.limit_field_size = s.limit_field_size
        # the largest head the limits allow: a request line, the fields, their line ends and the blank line
        self.max_head_bytes = s.limit_request_line + s.limit_request_fields * (s.limit_field_size + 2) + 4
        self.base_environ = base_environ()
        self.connections: set[Connection] = set()
        self.listeners: list = []
        self.accepting = False
        self.accept_paused_until = -1.0
        self.stopping = False
        self.buffered = 0  # request bytes held by connections still receiving
        self.served = 0
        self.dropped_unread = 0  # connections closed because their unread answers filled the buffer
        self.reclaimed = 0  # idle connections closed at the connection limit to let new clients in
        self.jobs: set[Job] = set()
        self.work: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.threads = [
            threading.Thread(target=self._pool_thread, name=f"toyseq-pool-{i}", daemon=True)
            for i in range(s.pool_threads)
        ]
        for thread in self.threads:
            thread.start()
        observe = getattr(app, "wsgi_app", None)  # app.Observe when the app is toyseq's: counts refusals too
        self.record = getattr(observe, "record", None)

    # --- connections in -------------------------------------------------------------------------------

    def serve(self, listeners: list) -> None:
        self.listeners = listeners
        for listener in listeners:
            listener.setblocking(False)
        self._accept_on(True)

    def _accept_on(self, enabled: bool) -> None:
        if enabled == self.accepting or (enabled and self.stopping):
            return
        self.accepting = enabled
        for listener in self.listeners:
            if enabled:
                self.loop.add_reader(listener.fileno(), self._accept, listener)
            else:
                self.loop.remove_reader(listener.fileno())

    def _accept(self, listener) -> None:
        held = len(self.connections)
        now = time.monotonic()
        if held and now - self.accept_paused_until > ACCEPT_DELAY_MAX:
            # Every worker wakes for a new connection; the one holding fewer waits less and so takes it, which
            # spreads kept-alive connections (they stay where they land). Back after the pause, this worker
            # accepts if no sibling has.
            delay = min(ACCEPT_DELAY_MAX, ACCEPT_DELAY_PER_CONN * held)
            self.accept_paused_until = now + delay
            self._accept_on(False)
            self.loop.call_later(delay, self._accept_on, True)
            return
        for _ in range(ACCEPT_BATCH):
            if len(self.connections) >= self.settings.max_connections:
                self._reclaim_idle()
                self._accept_on(False)  # back on when a connection closes
                return
            try:
                sock, _addr = listener.accept()
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED, errno.EPROTO):
                    self.log.warning("accept failed: %s", err)
                return
            sock.setblocking(False)
            self.loop.create_task(self._connect(sock))

    def _reclaim_idle(self) -> None:
        """At the connection limit, close idle connections, longest idle first, so that new clients are let in
        instead of waiting for one to time out (nginx's reusable connections: ngx_drain_connections closes up to
        32 idle keep-alive connections, or ones still waiting for their first request, when it runs out). The
        closes land within a loop turn; `closed` then accepts again."""
        if self.stopping:
            return
        idle = [conn for conn in self.connections if conn.idle()]
        if idle:
            oldest = heapq.nsmallest(RECLAIM_BATCH, idle, key=lambda conn: conn.since)
            self.reclaimed += len(oldest)
            for conn in oldest:
                conn.reclaim()

    async def _connect(self, sock: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: Connection(self), sock)
        except OSError:  # the client left before the transport was made
            sock.close()

    def opened(self, conn: Connection) -> None:
        self.connections.add(conn)

    def closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if not self.accepting and not self.stopping and len(self.connections) < self.settings.max_connections:
            self._accept_on(True)

    def received(self, size: int) -> None:
        self.buffered += size

    def over_buffer(self) -> bool:
        return self.buffered > self.settings.buffer_bytes

    # --- requests -------------------------------------------------------------------------------------

    def run(self, conn: Connection, request: Request) -> None:
        self.served += 1
        environ = request.environ
        if request.ran or environ["toyseq.body_size"] > self.settings.inline_body_bytes or _compressed(environ):
            self._submit(conn, request)
            return
        request.ran = True
        token = offload.set_budget(self.settings.inline_seconds)
        try:
            answer = self.call(environ)
        except offload.MoveToPool:
            environ["wsgi.input"].seek(0)
            self._submit(conn, request)
            return
        finally:
            offload.reset(token)
        conn.answer(request, *answer)

    def call(self, environ: dict) -> tuple[str, list, bytes]:
        """The WSGI call: (status, headers, whole body)."""
        started: list = []
        written: list[bytes] = []

        def start_response(status, headers, exc_info=None):
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = status, headers
            return written.append

        try:
            result = self.app(environ, start_response)
            try:
                chunks = written + (result if isinstance(result, list) else list(result))
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except (offload.MoveToPool, SystemExit):
            raise
        except Exception:
            self.log.exception("the app failed outside its own error handling")
            return _problem_answer(500, "internal", "internal error; quote the X-Request-ID header when reporting it")
        return started[0], started[1], chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _submit(self, conn: Connection, request: Request) -> None:
        job = Job(conn, request)
        self.jobs.add(job)
        self.work.put(job)

    def _pool_thread(self) -> None:
        _lower_priority()
        while True:
            job = self.work.get()
            if job is None:
                return
            job.started = time.monotonic()
            try:
                answer = self.call(job.request.environ)
            except BaseException:  # noqa: BLE001 - a thread must answer whatever happens
                self.log.exception("a pooled request failed")
                answer = _problem_answer(500, "internal", "internal error")
            try:
                self.loop.call_soon_threadsafe(self._finished, job, answer)
            except RuntimeError:  # the loop is closed: the worker is exiting
                return

    def _finished(self, job: Job, answer: tuple[str, list, bytes]) -> None:
        self.jobs.discard(job)
        if not job.abandoned:
            job.conn.answer(job.request, *answer)

    def refused(self, conn: Connection, refusal: Refusal) -> None:
        self.log.info("refused a request from %s: %s (%s)", conn.remote, refusal.slug, refusal.detail[:120])
        if self.record is not None:
            environ = conn.environ or {}
            self.record(refusal.status, environ.get("REQUEST_METHOD"), environ.get("PATH_INFO", ""), conn.remote, 0.0)

    # --- housekeeping ---------------------------------------------------------------------------------

    def expire(self, now: float) -> None:
        s = self.settings
        # Stopping, a request still arriving gets as long as an idle kept-alive connection does.
        read_timeout = min(s.read_timeout, s.keepalive) if self.stopping else s.read_timeout
        for conn in list(self.connections):
            conn.expire(now, read_timeout, s.keepalive)
        if self.buffered_answers() > s.buffer_bytes:
            # Clients that do not read hold the most memory: drop them, largest first, until under the cap.
            for conn in sorted(self.connections, key=Connection.blocked_bytes, reverse=True):
                if self.buffered_answers() <= s.buffer_bytes or not conn.blocked_bytes():
                    break
                self.dropped_unread += 1
                self.log.warning("answer buffers over %d bytes: dropped a client that does not read", s.buffer_bytes)
                conn.transport.abort()  # type: ignore[union-attr]

    def buffered_answers(self) -> int:
        return sum(conn.blocked_bytes() for conn in self.connections)

    def overdue(self, now: float) -> Job | None:
        """A pooled request running past the timeout, now answered 503 and abandoned."""
        for job in list(self.jobs):
            if job.started and not job.abandoned and now - job.started > self.settings.timeout:
                job.abandoned = True
                self.jobs.discard(job)
                environ = job.request.environ
                environ["toyseq.abandoned"] = True  # the app's middleware must not count it again when it ends
                self.stopping = True
                if self.record is not None:
                    self.record(
                        503,
                        environ.get("REQUEST_METHOD"),
                        environ.get("PATH_INFO", ""),
                        job.conn.remote,
                        now - job.started,
                    )
                job.conn.answer(job.request, *_problem_answer(503, "worker-timeout", self.timeout_detail()))
                return job
        return None

    def timeout_detail(self) -> str:
        return (
            f"the request ran longer than the worker timeout of {self.settings.timeout:g} s (TOYSEQ_TIMEOUT) "
            "and was stopped"
        )

    def stop(self) -> None:
        """Graceful: accept no more, close what owes nothing, let the rest finish with `Connection: close`."""
        self.stopping = True
        self._accept_on(False)
        for listener in self.listeners:
            # Closed, not just ignored: once every process has closed it, new connections are refused at once
            # (and go to another replica) instead of waiting in a backlog no one will accept from.
            listener.close()
        # Open connections are not cut: closing an idle kept-alive one races a request the client may be
        # sending on it right now. Each is closed after its next answer (`Connection: close`) or once idle
        # for the keep-alive time, whichever comes first (as gunicorn's threaded worker does).

    def done(self) -> bool:
        return not self.connections

    def close(self, slug: str, detail: str) -> None:
        """Last act: every connection still owed an answer gets this 503 (best effort), then all close."""
        data = problems.http_answer(503, slug, detail)
        for conn in list(self.connections):
            transport = conn.transport
            if transport is None:
                continue
            if conn.busy or conn.queue:
                sock = transport.get_extra_info("socket")
                try:
                    os.write(sock.fileno(), data)
                except (OSError, AttributeError):
                    pass
            transport.abort()
        for _ in self.threads:
            self.work.put(None)


def _lower_priority() -> None:
    """The pool's threads run at a lower CPU priority (nice +POOL_NICE, Linux sets it per thread) than the loop's:
    when the worker's CPU is short, the loop's cheap requests and its reading and writing come first, and heavy
    ones take what is left (clients that pipeline heavy work would otherwise take the CPU the loop needs)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + POOL_NICE)
    except (OSError, AttributeError):
        pass  # not Linux, or not allowed: the same priority as the loop


def _compressed(environ: dict) -> bool:
    """A compressed body (Content-Encoding other than identity) goes to the pool before it is inflated: its size
    on the wire says nothing of the work (7.6 KB of gzip inflates to 7.8 MB, ~1 s of inflating and parsing that
    held the loop). Inflating is bounded by TOYSEQ_MAX_BODY_BYTES as inflated (http/routes/common.py)."""
    coding = environ.get("HTTP_CONTENT_ENCODING")
    return coding is not None and coding.strip().lower() not in ("", "identity")


def _problem_answer(status: int, slug: str, detail: str) -> tuple[str, list, bytes]:
    data = problems.encode(problems.body(status, slug, detail))
    return (
        f"{status} {problems.title(status)}",
        [("Content-Type", problems.PROBLEM_TYPE), ("Connection", "close")],
        data,
    )
