"""Structured logging: one JSON object per line on stderr, access lines included."""

from __future__ import annotations

import logging
import sys
import threading
import time

import orjson

from . import flushing

ACCESS = logging.getLogger("toyseq.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:  # stack traces go to the log, never to a client
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class _AccessWriter:
    """Access lines, the one log line every request writes, skip `logging` (a LogRecord, a formatter and a
    handler per request would be a visible share of a request's time): the same JSON fields, one orjson dump.
    They are not written one system call each either: the app's middleware records requests and, on
    observability/flushing.py's schedule, turns the records into lines and writes them together (every 50 ms, at
    exit, and before any other toyseq log line, so the log keeps its order), or sooner when BUFFER_BYTES
    pile up. Still switched
    off by the `toyseq.access` logger's level (TOYSEQ_LOG_LEVEL=warning)."""

    BUFFER_BYTES = 64 * 1024

    def __init__(self):
        self.stream = None  # the toyseq handler's stream, set by setup()
        self._second, self._prefix = -1, ""
        self._lines: list[bytes] = []
        self._size = 0
        self._lock = threading.Lock()  # the request thread appends, a flush takes
        self._write_lock = threading.Lock()  # one flush at a time, so batches reach the stream in order

    def timestamp(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        second = int(now)
        if second != self._second:  # strftime once a second
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"

    def write(self, fields: dict, now: float | None = None) -> None:
        line = {"ts": self.timestamp(now), "level": "info", "logger": ACCESS.name, "msg": "request"}
        line.update(fields)
        data = orjson.dumps(line, default=str, option=orjson.OPT_APPEND_NEWLINE)
        with self._lock:
            self._lines.append(data)
            self._size += len(data)
            full = self._size >= self.BUFFER_BYTES
        if full:
            self.flush()

    def flush(self) -> None:
        if not self._lines:  # read without the lock: a line appended meanwhile waits for the next flush
            return
        with self._write_lock:
            with self._lock:
                lines, self._lines, self._size = self._lines, [], 0
            self._write(b"".join(lines))

    def _write(self, data: bytes) -> None:
        stream = self.stream
        if stream is None or not data:
            return
        try:
            buffer = getattr(stream, "buffer", None)
            if buffer is None:  # a text-only stream (e.g. a test's capture)
                stream.write(data.decode())
                stream.flush()
            else:
                buffer.write(data)
                buffer.flush()
        except (OSError, ValueError):  # stderr gone (closed pipe, closed file): nowhere left to log
            pass


class _Handler(logging.StreamHandler):
    """The toyseq handler: writes the pending access lines (of requests answered so far) before each other
    line, so the log stays in order."""

    toyseq = True

    def emit(self, record: logging.LogRecord) -> None:
        flushing.flush_all()
        super().emit(record)


_access = _AccessWriter()


def setup(level: str) -> None:
    """Route the `toyseq` loggers to stderr as JSON lines (once per process)."""
    root = logging.getLogger("toyseq")
    root.setLevel(level.upper())
    handler = next((h for h in root.handlers if getattr(h, "toyseq", False)), None)
    if handler is None:
        handler = _Handler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.propagate = False
    stream = getattr(handler, "stream", sys.stderr)  # ours is a StreamHandler; a test's may not be
    if _access.stream is not stream:
        _access.flush()
    _access.stream = stream


def access_enabled() -> bool:
    return ACCESS.isEnabledFor(logging.INFO)


def access(fields: dict, now: float | None = None) -> None:
    """One access line; `now` (time.time() when the request ended) defaults to now."""
    if ACCESS.isEnabledFor(logging.INFO):
        if _access.stream is None:  # setup() not called: plain logging
            ACCESS.info("request", extra={"fields": fields})
        else:
            _access.write(fields, now)


def flush_access() -> None:
    _access.flush()
