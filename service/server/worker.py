"""gunicorn's gthread worker, made to hold slow clients: the main thread reads each request in full
(headers and body) with non-blocking reads before a pool thread sees it.

gthread alone hands a connection to its thread pool as soon as the first bytes arrive; the WSGI app then
reads the body with blocking reads, so a client that sends headers and half a body pins a pool thread for
as long as it likes, and a few such clients stall the worker. Here the main loop (one selector for the
listener, kept-alive and incoming connections) buffers the request, and only a complete request goes to a
pool thread, whose reads are then served from memory. A request not complete within `read_timeout` seconds
of its first byte (or of the connection, for a silent one) is dropped, so a stalled client costs one
socket and its buffered bytes, never a thread. Buffered bytes are bounded per worker (`buffer_bytes`).

Kept-alive connections stay on the worker that accepted them, so an uneven first spread (or a worker
restarted while its sibling took every reconnecting client) would last. Two things even it out: a worker
holding connections waits a little before it accepts a new one (ACCEPT_DELAY_PER_CONN for each it holds),
so the worker holding fewest accepts first; and `keepalive_requests` closes a connection after that many
requests (the answer says `Connection: close`), so clients reconnect and the accept spreads them again
(docs/performance.md has the measured spread).

    worker_class = "service.server.worker.BufferedThreadWorker"   # gunicorn_conf.py sets this
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from functools import partial

from gunicorn import http
from gunicorn.workers import gthread

RECV_BYTES = 256 * 1024
HEADER_END = b"\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
    b"Connection: close\r\nContent-Length: 98\r\n\r\n"
    b'{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"request buffers full"}'
)
LINGER_SECONDS = 2.0
ACCEPT_DELAY_PER_CONN = 0.001  # seconds a worker waits before accepting, per connection it holds
ACCEPT_DELAY_MAX = 0.02
NOTIFY_EVERY = 0.5  # seconds between heartbeats to the arbiter (its timeout is TOYSEQ_TIMEOUT, 30 s)  # how long a closed connection is drained for the client's FIN (RFC 9112 section 9.6)


class Pending:
    """What the main thread knows of a request it is still receiving."""

    __slots__ = ("conn", "data", "deadline", "header_end", "body_end", "chunk_at", "continued")

    def __init__(self, conn, deadline: float, data: bytes = b""):
        self.conn, self.deadline = conn, deadline
        self.data = bytearray(data)
        self.header_end = -1  # index just past the blank line, once seen
        self.body_end = -1  # index just past the body, once known (Content-Length)
        self.chunk_at = -1  # chunked bodies: where the next chunk-size line starts
        self.continued = False


class BufferedConn(gthread.TConn):
    def __init__(self, cfg, sock, client, server, worker):
        super().__init__(cfg, sock, client, server)
        self.worker = worker
        self.requests = 0

    def close(self, graceful=False):
        if graceful:
            # gthread lingers for the client's FIN with blocking reads (up to 2 s) on the main thread; a
            # client that never closes would stall every other connection meanwhile, so the poller waits.
            self.worker.linger(self)
        else:
            super().close()


class BufferedThreadWorker(gthread.ThreadWorker):
    """Settings come from gunicorn_conf.py (cfg.env-free): see `configure`."""

    read_timeout = 10.0
    keepalive_requests = 0  # 0: no limit
    max_body_bytes = 8 * 1024 * 1024
    buffer_bytes = 64 * 1024 * 1024

    @classmethod
    def configure(cls, *, read_timeout: float, keepalive_requests: int, max_body_bytes: int, buffer_bytes: int) -> None:
        cls.read_timeout, cls.keepalive_requests = float(read_timeout), int(keepalive_requests)
        cls.max_body_bytes, cls.buffer_bytes = int(max_body_bytes), int(buffer_bytes)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.receiving: dict[BufferedConn, Pending] = {}
        self.lingering: dict[socket.socket, float] = {}
        self.buffered = 0
        self.accept_paused_until = -1.0
        self.notified = -NOTIFY_EVERY

    # --- connections in ----------------------------------------------------------------------------

    def accept(self, listener):
        now = time.monotonic()
        if self.nr_conns and now - self.accept_paused_until > ACCEPT_DELAY_MAX:
            # Every worker's poller wakes for a new connection; the one holding fewer connections waits less
            # and so takes it. Back here right after the pause, this worker accepts if no sibling has.
            self.accept_paused_until = now + min(ACCEPT_DELAY_MAX, ACCEPT_DELAY_PER_CONN * self.nr_conns)
            self.set_accept_enabled(False)
            return
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = BufferedConn(self.cfg, client_sock, client_addr, listener.getsockname(), self)
        self.receive(conn, b"")

    def on_client_socket_readable(self, conn, client):
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self.receive(conn, b"")

    def enqueue_req(self, conn):
        # gthread calls this for a kept-alive connection whose parser already holds bytes of the next
        # (pipelined) request: that request is received in full here too before a thread takes it.
        leftover = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        self.receive(conn, leftover)

    def receive(self, conn, data: bytes) -> None:
        """Start receiving a request on `conn` (with `data` already read), on the main thread."""
        pending = Pending(conn, time.monotonic() + self.read_timeout, data)
        self.buffered += len(data)
        conn.sock.setblocking(False)
        self.receiving[conn] = pending
        if data and self.parse(pending):
            self.dispatch(pending)
            return
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_readable, pending))

    def on_readable(self, pending: Pending, sock) -> None:
        try:
            data = sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away before finishing its request
            self.drop(pending)
            return
        pending.data += data
        self.buffered += len(data)
        if self.buffered > self.buffer_bytes:
            self.refuse(pending)
            return
        if self.parse(pending):
            self.poller.unregister(sock)
            self.dispatch(pending)

    def parse(self, p: Pending) -> bool:
        """Whether `p.data` holds a whole request (or enough for the app to refuse it without its body).
        Anything unusual is handed on at once: gunicorn's parser then answers it with its own errors."""
        data = p.data
        if p.header_end < 0:
            end = data.find(HEADER_END)
            if end < 0:
                # gunicorn's own limits (request line + fields) reject anything longer; let it say so.
                return len(data) > self.cfg.limit_request_line + 8192 * (self.cfg.limit_request_fields + 1)
            p.header_end = end + 4
            length, chunked, expect = None, False, False
            for line in bytes(data[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    try:
                        length = int(value.strip())
                    except ValueError:
                        return True
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"expect":
                    expect = value.strip().lower() == b"100-continue"
            if chunked:
                p.chunk_at = p.header_end
            elif length is None or length == 0:
                return True
            elif length < 0 or length > self.max_body_bytes:
                return True  # the app answers 413 (or gunicorn 400) without reading the body
            else:
                p.body_end = p.header_end + length
            if expect:
                self.answer_continue(p)
        if p.body_end >= 0:
            return len(data) >= p.body_end
        return self.chunked_done(p)

    def chunked_done(self, p: Pending) -> bool:
        data, at = p.data, p.chunk_at
        while True:
            line_end = data.find(b"\r\n", at)
            if line_end < 0:
                return len(data) - at > 1024  # an absurd chunk-size line: gunicorn rejects it
            try:
                size = int(bytes(data[at:line_end]).split(b";")[0].strip(), 16)
            except ValueError:
                return True
            if size == 0:
                # Last chunk, then trailer fields and a blank line (usually none: "0\r\n\r\n").
                p.chunk_at = at
                return data.find(b"\r\n", line_end + 2) >= 0 and (
                    data[line_end + 2 : line_end + 4] == b"\r\n" or data.find(HEADER_END, line_end) >= 0
                )
            if line_end + 2 - p.header_end + size > self.max_body_bytes:
                return True  # the app refuses it (413) before reading it
            following = line_end + 2 + size + 2
            if len(data) < following:
                p.chunk_at = at
                return False
            at = following

    def answer_continue(self, p: Pending) -> None:
        # The client waits for this before sending the body, and the body is read here, not by the app.
        # The Expect field is then removed so that gunicorn does not send a second 100.
        try:
            p.conn.sock.send(CONTINUE)
        except OSError:
            return
        head = bytes(p.data[: p.header_end])
        lines = [field for field in head[:-4].split(b"\r\n") if not field.lower().startswith(b"expect:")]
        new_head = b"\r\n".join(lines) + HEADER_END
        shift = len(new_head) - len(head)
        p.data[: p.header_end] = new_head
        p.header_end += shift
        self.buffered += shift
        if p.body_end >= 0:
            p.body_end += shift

    def dispatch(self, p: Pending) -> None:
        conn = p.conn
        del self.receiving[conn]
        self.buffered -= len(p.data)
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
            conn.initialized = True
        conn.parser.unreader.unread(bytes(p.data))
        conn.data_ready = True
        super().enqueue_req(conn)

    def drop(self, p: Pending) -> None:
        conn = p.conn
        self.receiving.pop(conn, None)
        self.buffered -= len(p.data)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        self.nr_conns -= 1
        gthread.TConn.close(conn)

    def refuse(self, p: Pending) -> None:
        try:
            p.conn.sock.send(UNAVAILABLE)
        except OSError:
            pass
        self.log.warning("request buffers full (%d bytes): a connection was refused", self.buffered)
        self.drop(p)

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        for p in [p for p in self.receiving.values() if p.deadline <= now]:
            self.drop(p)
        for sock in [s for s, deadline in self.lingering.items() if deadline <= now]:
            self.end_linger(sock)

    def _cap_keepalive(self, deadline):
        # Stopping: a request still arriving gets as long as a kept-alive connection does, not read_timeout.
        super()._cap_keepalive(deadline)
        for p in self.receiving.values():
            p.deadline = min(p.deadline, deadline)

    def notify(self):
        # gthread's loop tells the arbiter it is alive on every turn, i.e. per event under load: a utime()
        # syscall each time. The arbiter only needs it within `timeout` seconds.
        now = time.monotonic()
        if now - self.notified >= NOTIFY_EVERY:
            self.notified = now
            super().notify()

    def set_accept_enabled(self, enabled):
        # gthread's loop re-enables accepting on every turn; a pause set by accept() holds until it ends.
        if enabled and time.monotonic() < self.accept_paused_until:
            return
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout):
        pause = self.accept_paused_until - time.monotonic()
        if pause > 0:
            timeout = min(timeout, pause)
        super().wait_for_and_dispatch_events(timeout)

    # --- connections out ---------------------------------------------------------------------------

    def handle_request(self, req, conn):
        conn.requests += 1
        if self.keepalive_requests and conn.requests >= self.keepalive_requests:
            req.must_close = True  # the answer says "Connection: close"
        # The request is in memory; the answer still goes out with blocking writes, bounded so that a
        # client that stops reading cannot hold this thread longer than read_timeout.
        conn.sock.settimeout(self.read_timeout)
        return super().handle_request(req, conn)

    def linger(self, conn) -> None:
        sock = conn.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            self.poller.register(sock, selectors.EVENT_READ, self.on_linger_readable)
        except (OSError, ValueError, KeyError):
            sock.close()
            return
        self.lingering[sock] = time.monotonic() + LINGER_SECONDS

    def on_linger_readable(self, sock) -> None:
        try:
            if sock.recv(65536):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self.end_linger(sock)

    def end_linger(self, sock) -> None:
        self.lingering.pop(sock, None)
        try:
            self.poller.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass
        sock.close()

    def run(self):
        try:
            super().run()
        finally:
            for sock in list(self.lingering):
                sock.close()
