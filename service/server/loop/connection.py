"""One HTTP/1.1 connection on the worker's event loop: llhttp (httptools) frames each request, the same
callbacks build the WSGI environ the app sees, so the code that decides where a request ends is the code
that decides what the app gets (no second scanner to disagree with it: request smuggling needs two).

A request reaches the app only once it is in memory in full; requests pipelined on one connection are
answered in order, one at a time. Answers are written without blocking: what the socket does not take
stays in the transport's buffer, the connection stops reading (so a client that does not read cannot queue
more work), and one that stays that way for `read_timeout` seconds is dropped. Refusals the worker makes
itself (malformed HTTP, a body or head over its limit, buffers full) are problem+json answers written after
the answers owed before them, then the connection closes after draining what the client still sends.

A connection holds at most MAX_QUEUED parsed requests (the rest of its bytes wait unparsed, reading paused),
its next pipelined request starts only while the client leaves at most UNREAD_BUDGET bytes of its answers
unread, and a large read is parsed in turns, so that no connection takes the loop or the pool from the others.
`Upgrade` is ignored (RFC 9110 7.8): the request is served as HTTP/1.1 and the bytes after it are read as such.

Deadlines are checked by the worker's tick (`expire`), not by a timer per connection.
"""

from __future__ import annotations

import asyncio
import fcntl
import io
import socket
import struct
import sys
import termios
import time
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

import httptools

from .. import problems

if TYPE_CHECKING:
    from .server import Front

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# A pipelined request does not start while the client leaves more than this many bytes of its answers unread
# (sent and not acknowledged, or not sent); a client that reads acknowledges an answer within a round trip
UNREAD_BUDGET = 4 * 1024
UNREAD_POLL_FIRST, UNREAD_POLL = 0.001, 0.05  # seconds between checks of a connection waiting for its client
SLICE = 16 * 1024  # bytes parsed at a time from a larger read (see _parse_slices)
TURN_SECONDS = 0.002  # parsing one connection's read past this yields the loop to the others
OUTQ = getattr(termios, "TIOCOUTQ", None) if sys.platform == "linux" else None  # == SIOCOUTQ for TCP sockets
HIGH_WATER = 256 * 1024  # bytes an answer may leave unsent before the connection stops reading
MAX_QUEUED = 32  # pipelined requests held per connection before it stops reading
LINGER_SECONDS = 2.0  # after a closing refusal: how long the client's remaining bytes are read and dropped
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


class Refusal(Exception):
    """A request the worker answers itself; raised inside a parser callback."""

    def __init__(self, status: int, slug: str, detail: str):
        super().__init__(detail)
        self.status, self.slug, self.detail = status, slug, detail


class Request:
    __slots__ = ("environ", "keep_alive", "head", "version", "ran")

    def __init__(self, environ: dict, keep_alive: bool, head: bool, version: str):
        self.environ, self.keep_alive, self.head, self.version = environ, keep_alive, head, version
        self.ran = False  # inline already tried: the app moved it to the pool


class Connection(asyncio.Protocol):
    def __init__(self, front: Front):
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[Request] = deque()
        self.busy = False  # one of its requests is with the app
        self.closing = False  # the last answer is written: only draining the client's bytes now
        self.eof = False
        self.write_paused = False
        self.read_paused = False
        self.refusal: Refusal | None = None  # owed once the answers before it are written
        self.served = 0
        self.since = time.monotonic()  # start of the current state (receiving, idle, blocked, lingering)
        self.receiving = True  # a new connection owes its first request within read_timeout
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        # the body so far: the first piece as it came (the usual body arrives in one), then one growing buffer,
        # never a list of pieces: a body sent in 1-byte chunks would hold an object per chunk (8+ bytes each
        # on top of the byte, a 2 MB body held ~160 MiB), which the buffer cap, counting body bytes, never saw
        self.body: bytes | io.BytesIO = b""
        self.body_write: Callable[[bytes], int] | None = None  # once the body is a buffer: its write
        self.accounted = 0  # body bytes counted in the worker's buffers (Front.received), updated per read
        self.max_body = front.max_body_bytes
        self.body_size = 0
        self.environ: dict | None = None
        self.in_head = False  # between a request's first byte and the end of its head
        self.head_seen = 0  # bytes received while in the head (llhttp buffers a field until it ends)
        self.upgrade_body: bytes | None = None  # an Upgrade request's framing, to read the body llhttp skipped
        self.replaying = False  # reading that body: the head parsed is the replayed one, not the client's
        self.upgrade_keep_alive = True
        self.backlog: memoryview | None = None  # bytes received but not parsed yet (see _parse_slices)
        self.backlog_due = False  # its parse is scheduled
        self.unread_waiting = False  # the next request waits for the client to read (see run_next)
        self.unread_poll_due = False
        self.fd = -1
        self.unread_delay = UNREAD_POLL_FIRST  # seconds to the next check, doubled up to UNREAD_POLL

    # --- asyncio ---------------------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername") or ("", 0)
        local = transport.get_extra_info("sockname") or ("", 0)
        self.remote, self.remote_port = str(peer[0]), str(peer[1])
        self.server_name, self.server_port = str(local[0]), str(local[1])
        transport.set_write_buffer_limits(high=HIGH_WATER)
        self.fd = sock.fileno() if sock is not None else -1
        self.front.opened(self)

    def connection_lost(self, exc) -> None:
        self._unaccount()
        self.body_size = 0
        self.queue.clear()
        self.closing = True
        self.front.closed(self)

    def data_received(self, data: bytes) -> None:
        if self.closing or self.refusal is not None:
            return  # lingering: read and dropped
        if not self.receiving:
            self.receiving, self.since = True, time.monotonic()
        if self.backlog is not None:  # reading is paused while there is one; should bytes come, keep the order
            self.backlog = memoryview(bytes(self.backlog) + data)
            return
        if len(data) > SLICE:
            self._parse_slices(memoryview(data))
        else:
            self._parse(data)
        self.run_next()

    def _parse_slices(self, view: memoryview) -> None:
        """Parse a large read SLICE bytes at a time. Stop, keeping the rest (reading paused), once the connection
        holds MAX_QUEUED requests (so one connection cannot queue unbounded work: a 256 KiB read of small
        pipelined requests held 1,700) or has had its turn of TURN_SECONDS (a body in 1-byte chunks costs llhttp
        a callback per byte: a read of them took ~40 ms of the loop); the rest is parsed on a later turn."""
        started = time.monotonic()
        for offset in range(0, len(view), SLICE):
            if offset and (len(self.queue) >= MAX_QUEUED or time.monotonic() - started > TURN_SECONDS):
                self.backlog = view[offset:]
                self.pause_reading()
                return
            self._parse(view[offset : offset + SLICE])
            if self.refusal is not None or self.closing:
                return

    def _parse_backlog(self) -> None:
        self.backlog_due = False
        view, self.backlog = self.backlog, None
        if view is None or self.closing or self.refusal is not None:
            return
        self._parse_slices(view)
        self.run_next()

    def _parse(self, data: bytes | memoryview) -> None:
        try:
            self._feed(data)
        except httptools.HttpParserCallbackError as err:
            refusal = err.__context__
            if not isinstance(refusal, Refusal):
                raise
            self.refusal = refusal
        except httptools.HttpParserError as err:
            self.refusal = self._malformed(str(err))
        if self.body_size != self.accounted and self.refusal is None:
            # the body's bytes are counted against the worker's buffers once per read, not per chunk
            self.front.received(self.body_size - self.accounted)
            self.accounted = self.body_size
            if self.front.over_buffer():
                self.refusal = Refusal(503, "buffers-full", "the server's request buffers are full; retry the request")
        if self.in_head and self.refusal is None:
            self.head_seen += len(data)
            if self.head_seen > self.front.max_head_bytes:
                self.refusal = Refusal(
                    431,
                    "headers-too-large",
                    f"the request head is larger than {self.front.max_head_bytes} bytes "
                    "(TOYSEQ_LIMIT_REQUEST_LINE and TOYSEQ_LIMIT_REQUEST_FIELDS fields of 8190 bytes)",
                )
        if self.refusal is not None:
            self._unaccount()
            self.body_size = 0
            self.pause_reading()
        elif len(self.queue) >= MAX_QUEUED:
            self.pause_reading()

    def _feed(self, data: bytes | memoryview) -> None:
        """Parse `data`; an `Upgrade` is ignored, as RFC 9110 7.8 allows and nginx does: the request is served
        as HTTP/1.1 and what follows it is parsed as the next request (llhttp stops at an Upgrade request, as if
        the rest of the stream were another protocol: the pipeline behind it was lost, and a body skipped)."""
        while True:
            try:
                self.parser.feed_data(data)
                return
            except httptools.HttpParserUpgrade as upgrade:
                data = data[upgrade.args[0] :]
            if self.parser.get_method() == b"CONNECT":
                self.refuse_rest()  # served (refused by the app); a client would now send a tunnel's bytes
                return
            # a fresh parser for the rest; for a request with a body, llhttp skipped it: a head declaring the
            # same framing is replayed first, so llhttp reads the body (and its end) as it would have
            self.parser = httptools.HttpRequestParser(self)
            if self.upgrade_body is not None:
                self.replaying = True
                self.parser.feed_data(self.upgrade_body)
                self.upgrade_body = None

    def _malformed(self, said: str) -> Refusal:
        """llhttp's reason, with the part of the request it concerns (its errors carry no code, only text)."""
        said = said[:120]
        lowered = said.lower()
        if self.environ is not None and "chunk" in lowered:
            return Refusal(400, "malformed-chunked-body", f"the chunked request body is malformed: {said}")
        if "transfer-encoding" in lowered and "invalid" in lowered:  # RFC 9112 6.1: an unknown coding is 501
            return Refusal(
                501,
                "unsupported-transfer-coding",
                "the Transfer-Encoding is not supported; send the body with Content-Length or as chunked",
            )
        if not self.headers and any(word in lowered for word in ("method", "url", "version", "http/", "space")):
            return Refusal(400, "malformed-request-line", f"the request line is not 'METHOD /path HTTP/1.1': {said}")
        if self.environ is None:
            return Refusal(400, "malformed-header", f"a header field is malformed: {said}")
        return Refusal(400, "malformed-http", f"the request is not valid HTTP/1.1: {said}")

    def eof_received(self) -> bool:
        self.eof = True
        if self.closing or not (self.queue or self.busy or self.backlog is not None):
            return False  # the transport closes
        return True  # half-closed: answer what was sent, then close

    def pause_writing(self) -> None:
        self.write_paused, self.since = True, time.monotonic()
        self.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.run_next()

    # --- llhttp callbacks ------------------------------------------------------------------------------

    def _reset_message(self) -> None:
        self.url = b""
        self.headers = []
        self.body = b""
        self.body_write = None
        self.body_size = 0
        self.environ = None

    def on_message_begin(self) -> None:
        if self.replaying:
            return
        self._reset_message()
        self.in_head, self.head_seen = True, 0
        if not self.receiving:
            self.receiving, self.since = True, time.monotonic()

    def on_url(self, url: bytes) -> None:
        if self.replaying:
            return
        if not self.url and self.parser.get_method() == b"PRI":
            # llhttp then waits for the rest of HTTP/2's preface, which no HTTP/1.1 request sends
            raise Refusal(
                400, "malformed-request-line", "the method PRI (HTTP/2's preface) is not supported; send HTTP/1.1"
            )
        self.url += url
        limit = self.front.limit_request_line
        if limit and len(self.url) > limit:
            raise Refusal(
                414,
                "request-line-too-long",
                f"the request line is longer than {limit} bytes (TOYSEQ_LIMIT_REQUEST_LINE)",
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.replaying:
            return
        front = self.front
        if len(self.headers) >= front.limit_request_fields or len(name) + len(value) + 2 > front.limit_field_size:
            raise Refusal(
                431,
                "headers-too-large",
                f"the request has more than {front.limit_request_fields} header fields (TOYSEQ_LIMIT_REQUEST_FIELDS) "
                f"or a header field longer than {front.limit_field_size} bytes",
            )
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.replaying:
            return
        environ = self.front.base_environ.copy()
        parser = self.parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):  # llhttp also reads HTTP/0.9 and 2.0 request lines
            raise Refusal(400, "malformed-request-line", f"HTTP/{version} is not supported; send HTTP/1.1")
        method = parser.get_method().decode("latin-1")
        target = self.url
        if target == b"*":
            path, query = b"*", b""
        else:
            try:
                url = httptools.parse_url(target)
            except httptools.HttpParserInvalidURLError:
                raise Refusal(400, "malformed-request-line", "the request target is not a valid URL") from None
            path, query = url.path or b"", url.query or b""
        environ["REQUEST_METHOD"] = method
        environ["RAW_URI"] = target.decode("latin-1")
        environ["PATH_INFO"] = unquote_to_bytes(path).decode("latin-1")
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["SERVER_PROTOCOL"] = "HTTP/" + version
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = self.remote, self.remote_port
        environ["SERVER_NAME"], environ["SERVER_PORT"] = self.server_name, self.server_port
        length, expect, hosts = None, False, 0
        for raw_name, raw_value in self.headers:
            name = raw_name.decode("latin-1").upper()
            value = raw_value.decode("latin-1").strip(" \t")
            if "_" in name:
                continue  # as gunicorn does: a header with "_" could pose as one with "-" in the environ
            if name == "HOST":
                hosts += 1
            if name == "CONTENT-LENGTH":
                length = int(value)  # llhttp accepts digits only, once
                environ["CONTENT_LENGTH"] = value
                continue
            if name == "CONTENT-TYPE":
                environ["CONTENT_TYPE"] = value
                continue
            if name == "EXPECT":
                expect = value.lower() == "100-continue"
            key = "HTTP_" + name.replace("-", "_")
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        self.environ = environ
        if version == "1.0" and "HTTP_TRANSFER_ENCODING" in environ:
            # RFC 9112 6.1: such framing is faulty (an HTTP/1.0 peer would read the body differently)
            raise Refusal(400, "malformed-header", "Transfer-Encoding is not allowed in an HTTP/1.0 request")
        _check_host(hosts, version)
        _check_codings(environ.get("HTTP_TRANSFER_ENCODING"))
        max_body = self.front.max_body_bytes
        if length is not None and length > max_body:
            raise _too_large(max_body)
        if expect and not self.queue and not self.busy and (length or "HTTP_TRANSFER_ENCODING" in environ):
            self.transport.write(CONTINUE)  # type: ignore[union-attr]
        if parser.should_upgrade() and method != "CONNECT" and (length or "HTTP_TRANSFER_ENCODING" in environ):
            framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
            self.upgrade_body = f"POST / HTTP/1.1\r\n{framing}\r\n\r\n".encode()

    def on_body(self, data: bytes) -> None:
        # called once per chunk: a body in 1-byte chunks calls it per byte, so it does the least it can
        self.body_size += len(data)
        if self.body_size > self.max_body:
            raise _too_large(self.max_body)
        write = self.body_write
        if write is not None:
            write(data)
            return
        body = self.body
        if body:
            self.body = buffer = io.BytesIO(body)  # type: ignore[arg-type]
            buffer.seek(0, io.SEEK_END)
            buffer.write(data)
            self.body_write = buffer.write
        else:
            self.body = data

    def _unaccount(self) -> None:
        self.front.received(-self.accounted)
        self.accounted = 0

    def on_message_complete(self) -> None:
        environ = self.environ
        assert environ is not None
        if self.upgrade_body is not None:
            # llhttp ends an Upgrade request at its head; its body is read once the head is replayed (_feed)
            self.upgrade_keep_alive = self.parser.should_keep_alive()
            return
        keep_alive = self.parser.should_keep_alive()
        if self.replaying:
            self.replaying, keep_alive = False, self.upgrade_keep_alive
        body = self.body
        if isinstance(body, io.BytesIO):
            body.seek(0)
            environ["wsgi.input"] = body
        else:
            environ["wsgi.input"] = io.BytesIO(body)
        self._unaccount()
        environ["toyseq.body_size"] = self.body_size
        method = environ["REQUEST_METHOD"]
        request = Request(environ, keep_alive, method == "HEAD", environ["SERVER_PROTOCOL"])
        self.queue.append(request)
        self._reset_message()
        self.receiving, self.since = False, time.monotonic()

    # --- answers ---------------------------------------------------------------------------------------

    def run_next(self) -> None:
        """Hand the next request to the app, write owed refusals, close or go idle: whatever is due."""
        while self.queue and not (self.busy or self.write_paused or self.closing):
            if self.served and self.unread() > UNREAD_BUDGET:
                self._wait_unread()
                break
            self.unread_waiting = False
            request = self.queue.popleft()
            self.busy = True
            self.front.run(self, request)  # answers now (inline) or later (pool), through `answer`
        if self.backlog is not None and not self.backlog_due and len(self.queue) < MAX_QUEUED and not self.closing:
            self.backlog_due = True
            self.front.loop.call_soon(self._parse_backlog)
        if self.busy or self.queue or self.closing or self.backlog is not None:
            return
        if self.refusal is not None:
            refusal = self.refusal
            self.front.refused(self, refusal)
            self.linger(problems.http_answer(refusal.status, refusal.slug, refusal.detail))
        elif self.eof:
            self.transport.close()  # type: ignore[union-attr]
        elif self.read_paused and not self.write_paused:
            self.resume_reading()

    def answer(self, request: Request, status: str, headers: list, body: bytes) -> None:
        """Write one answer (head and body in one write) and carry on with the connection."""
        self.busy = False
        if self.closing or self.transport is None or self.transport.is_closing():
            return
        self.served += 1
        close = (
            not request.keep_alive
            or self.front.stopping
            or (self.front.keepalive_requests and self.served >= self.front.keepalive_requests)
            or self.refusal is not None
        )
        head = [f"{request.version} {status}\r\n"] if request.version in ("HTTP/1.1", "HTTP/1.0") else []
        if not head:
            head.append(f"HTTP/1.1 {status}\r\n")
        length = None
        for name, value in headers:
            lower = name.lower()
            if lower in HOP_BY_HOP:
                if lower == "content-length":
                    length = value
                elif lower == "connection" and "close" in value.lower():
                    close = True
                continue
            head.append(f"{name}: {value}\r\n")
        code = status[:3]
        if request.head:
            body = b""
            if length is not None:
                head.append(f"Content-Length: {length}\r\n")
        elif code not in ("204", "304") and code[0] != "1":
            head.append(f"Content-Length: {len(body)}\r\n")
        head.append(f"Date: {_date()}\r\n")
        if close:
            head.append("Connection: close\r\n")
        else:
            head.append("Connection: keep-alive\r\n")  # as gunicorn says it, for HTTP/1.0 clients and others
        head.append("\r\n")
        data = "".join(head).encode("latin-1") + body
        if close:
            self.queue.clear()
            self.linger(data)
            return
        self.transport.write(data)
        if not (self.queue or self.receiving):
            self.since = time.monotonic()  # idle from now: keep-alive time
        self.run_next()

    def unread(self) -> int:
        """Bytes of answers written and not yet read by the client: in the transport's buffer, and in the kernel's
        send queue (sent and not acknowledged, or not sent: SIOCOUTQ, Linux)."""
        size = self.transport.get_write_buffer_size() if self.transport is not None else 0
        if OUTQ is not None and self.fd >= 0:
            try:
                size += struct.unpack("i", fcntl.ioctl(self.fd, OUTQ, b"\0\0\0\0"))[0]
            except OSError:
                pass
        return size

    def _wait_unread(self) -> None:
        """The client leaves over UNREAD_BUDGET bytes of its answers unread: its next pipelined request waits
        (checked after 1 ms, then less often, up to every UNREAD_POLL seconds) and the connection is dropped after
        `read_timeout` (expire). Reading is how
        a client says it still wants answers: one that pipelined work and never reads got all of it done (a
        kernel send buffer holds megabytes of answers), taking the CPU other clients wait for."""
        if not self.unread_waiting:
            self.unread_waiting, self.since = True, time.monotonic()
            self.unread_delay = UNREAD_POLL_FIRST
        if not self.unread_poll_due:
            self.unread_poll_due = True
            self.front.loop.call_later(self.unread_delay, self._unread_poll)
            self.unread_delay = min(UNREAD_POLL, 2 * self.unread_delay)

    def _unread_poll(self) -> None:
        self.unread_poll_due = False
        if not self.closing:
            self.run_next()

    def linger(self, data: bytes) -> None:
        """Write the last answer and close the sending side; read and drop what the client still sends for up to
        LINGER_SECONDS (closing with unread bytes would reset the connection and lose the answer, RFC 9112 9.6)."""
        transport = self.transport
        self.closing, self.since = True, time.monotonic()
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        if self.read_paused:
            self.resume_reading()
        if self.eof or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()

    def refuse_rest(self) -> None:
        """Serve what was received, then close: the rest of the stream is not HTTP."""
        self.refusal = None
        self.eof = True
        self.pause_reading()

    def pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
            self.read_paused = True

    def resume_reading(self) -> None:
        if self.backlog is not None and not self.closing:
            return  # what was read is parsed first (run_next schedules it)
        if self.read_paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self.read_paused = False

    # --- deadlines (the worker's tick) -----------------------------------------------------------------

    def expire(self, now: float, read_timeout: float, keepalive: float) -> None:
        """Drop the connection if its current state has lasted too long."""
        if self.transport is None or self.busy:
            return
        waited = now - self.since
        if self.closing:
            if waited > LINGER_SECONDS:
                self.transport.abort()
        elif self.write_paused or self.unread_waiting:
            if waited > read_timeout:
                self.front.log.info("dropped a client that did not read its answer for %.0f s", waited)
                self.transport.abort()
        elif self.receiving or self.queue:
            if waited > read_timeout and not self.queue:
                self.transport.abort()  # a request not received in full in time (slow headers or body)
        elif waited > keepalive:
            self.transport.close()

    def idle(self) -> bool:
        """Nothing in progress: kept alive between requests, or open without a byte of its first request."""
        return not (self.busy or self.queue or self.closing or self.in_head or self.refusal is not None) and (
            self.environ is None and self.backlog is None and self.transport is not None
        )

    def reclaim(self) -> None:
        """Closed to let a new client in (the worker is at its connection limit)."""
        self.closing = True
        self.transport.close()  # type: ignore[union-attr]

    def blocked_bytes(self) -> int:
        return self.transport.get_write_buffer_size() if self.write_paused and self.transport is not None else 0


def _check_host(hosts: int, version: str) -> None:
    """RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without a Host field, and to any request
    with more than one (gunicorn's parser refuses two; nginx refuses both cases)."""
    if hosts > 1:
        raise Refusal(400, "malformed-header", "the request has more than one Host header field (RFC 9112 3.2)")
    if hosts == 0 and version == "1.1":
        raise Refusal(400, "malformed-header", "an HTTP/1.1 request must have a Host header field (RFC 9112 3.2)")


def _check_codings(value: str | None) -> None:
    """A Transfer-Encoding list with an empty element (",chunked", "chunked,,", "chunked, , gzip") is refused:
    llhttp reads ",chunked" as chunked while gunicorn's parser (and so a proxy in front that parses like it)
    refuses it, and two parsers that disagree on where a body ends is how requests are smuggled. nginx accepts
    only the exact value "chunked". The other neighbours are llhttp's to judge: " chunked" is chunked (leading
    whitespace is not part of the value), "chunked, chunked" and "identity" are 501 (unknown codings)."""
    if value is not None and any(not element.strip(" \t") for element in value.split(",")):
        raise Refusal(
            400, "malformed-header", f"the Transfer-Encoding list {value[:60]!r} has an empty element; send 'chunked'"
        )


def _too_large(max_body: int) -> Refusal:
    """A body over the limit, declared (Content-Length) or found while chunks arrive."""
    return Refusal(
        413, "body-too-large", f"the body is larger than the limit of {max_body} bytes (TOYSEQ_MAX_BODY_BYTES)"
    )


_date_cache = (0, "")


def _date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def base_environ() -> dict:
    return {
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,  # the body is in memory: reading to its end is always safe
        "SCRIPT_NAME": "",
        "SERVER_SOFTWARE": "toyseq",
    }
