"""The request recorder: every answered request, HTTP or gRPC, is recorded here as one tuple and, off the request
path, counted in the Prometheus metrics, written as an access line and summed into Triton's statistics.

Transports only append (a list append under a lock); `drain()` does the rest. The flushing thread drains every
50 ms (flushing.py), a /metrics scrape or a statistics answer drains first, and a request thread drains itself
past MAX_PENDING records. The WSGI middleware that records HTTP requests is http/middleware.py; gRPC calls are
recorded by grpc/servicer.py through `record_call`.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from . import flushing, logs
from .metrics import Metrics

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # a client's request id is echoed only when this tame


class InferenceStatistics(Protocol):
    """What the recorder feeds: Triton's statistics extension (protocol/statistics.py)."""

    pending: Any

    def record(
        self, task: str, timing: Any, status: int, started: float, seconds: float, sequences: int, now: float
    ) -> None: ...

    def flush(self) -> None: ...


@dataclass(frozen=True)
class Endpoint:
    """Stands in for a matched Flask rule in a recorded call: drain() reads only its endpoint."""

    endpoint: str


class Recorder:
    """One per worker, shared by its HTTP app and its gRPC server (runtime.Runtime builds it).

    A record is (time, seconds, request id, (status line, headers), matched rule or Endpoint, path, method,
    remote, task, sequences, started, inference timing, sequences outside the task's domain)."""

    MAX_PENDING = 2000  # requests recorded before the request thread drains them itself

    def __init__(self, metrics: Metrics, pid: int, statistics: InferenceStatistics | None = None):
        self.metrics = metrics
        self.statistics = statistics
        if statistics is not None:
            statistics.pending = self.drain  # a statistics answer first counts what this worker answered
        self.pid = pid  # this worker's, since the runtime is built after fork
        self.new_id = request_ids()
        self._pending: list[tuple] = []
        self._lock = threading.Lock()  # guards the swap of _pending
        self._drain_lock = threading.RLock()  # one drain at a time; re-entered if the log handler drains
        metrics.pending = self.drain  # a scrape first counts the requests this worker answered
        flushing.register(self.drain)

    def add(self, record: tuple) -> None:
        with self._lock:
            pending = self._pending
            pending.append(record)
        if len(pending) >= self.MAX_PENDING:
            self.drain()

    def record(self, status: int, method: str | None, path: str, remote: str | None, seconds: float) -> None:
        """Count and log a request the server answered without the app (sync_worker.py: malformed HTTP)."""
        record = (
            time.time(),
            seconds,
            self.new_id(),
            (f"{status} ", [("Content-Length", "0")]),
            None,
            path or "",
            method,
            remote,
            "",
            0,
            0.0,
            None,
            0,
        )
        with self._lock:
            self._pending.append(record)

    def record_call(
        self,
        rid: str,
        endpoint: str,
        path: str,
        status: int,
        seconds: float,
        remote: str | None,
        task: str,
        sequences: int,
        started: float,
        timing: Any,
        outside: int = 0,
    ) -> None:
        """Count and log a call answered outside Flask (gRPC, method "gRPC"; `rid` from new_id()), with the status
        its HTTP twin would have had, under its own endpoint label; an inference call's `timing` goes to the
        statistics extension as an HTTP infer's does."""
        record = (
            time.time(),
            seconds,
            rid,
            (f"{status} ", ()),
            Endpoint(endpoint),
            path,
            "gRPC",
            remote,
            task,
            sequences,
            started,
            timing,
            outside,
        )
        with self._lock:
            self._pending.append(record)

    def drain(self) -> None:
        """Count and log the requests recorded since the last drain (the flushing thread calls this every
        50 ms, a /metrics scrape before it renders)."""
        with self._drain_lock:
            with self._lock:
                records, self._pending = self._pending, []
            if not records:
                return
            observe, count = self.metrics.observe, self.metrics.count_sequences
            statistics = self.statistics
            log = logs.access_enabled()
            pid = self.pid
            for now, seconds, rid, answer, rule, path, method, remote, task, sequences, started, timing, out in records:
                status, headers = answer or ("500", ())
                status = int(status[:3])
                observe(rule.endpoint if rule is not None else "unmatched", task, status, seconds)
                if sequences:
                    count(task, sequences, out)
                if timing is not None and statistics is not None:
                    statistics.record(task, timing, status, started, seconds, sequences, now)
                if log:
                    size = None
                    for name, value in headers:
                        if name == "Content-Length":
                            size = int(value)
                            break
                    logs.access(
                        {
                            "request_id": rid,
                            "pid": pid,
                            "method": method,
                            "path": path[:200],
                            "task": task,
                            "status": status,
                            "duration_ms": round(seconds * 1000, 3),
                            "bytes": size,
                            "remote": remote,
                        },
                        now,
                    )
            logs.flush_access()
            if statistics is not None:
                statistics.flush()
            self.metrics.flush()  # under gunicorn: into this worker's files, where other workers' scrapes read


def request_ids():
    """Request ids, 32 hex digits like uuid4().hex but without a system call per id: a random per-worker prefix
    (the recorder is built in each worker after fork) and a counter, so ids stay unique across workers and
    restarts."""
    prefix, counter = os.urandom(8).hex(), itertools.count()
    return lambda: f"{prefix}{next(counter):016x}"
