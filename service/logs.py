"""Structured logging: one JSON object per line on stderr, access lines included."""
from __future__ import annotations

import logging
import sys
import time

import orjson

ACCESS = logging.getLogger("toyseq.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        line.update(getattr(record, "fields", {}))
        if record.exc_info:  # stack traces go to the log, never to a client
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def setup(level: str) -> None:
    """Route the `toyseq` loggers to stderr as JSON lines (once per process)."""
    root = logging.getLogger("toyseq")
    root.setLevel(level.upper())
    if not any(getattr(h, "toyseq", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.toyseq = True
        root.addHandler(handler)
        root.propagate = False


def access(fields: dict) -> None:
    if ACCESS.isEnabledFor(logging.INFO):
        ACCESS.info("request", extra={"fields": fields})
