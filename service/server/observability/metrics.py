"""Prometheus metrics. Under gunicorn (PROMETHEUS_MULTIPROC_DIR set by gunicorn_conf.py before any worker
imports prometheus_client) every worker writes its own files and /metrics sums them all; elsewhere (tests,
flask run) an app gets its own single-process registry.

Requests update plain in-memory tallies (dict increments: no lock, no mmap write); `flush()` adds what
changed since the last flush to the Prometheus values. The app's middleware (service/server/http/app.py, Observe) owns
both: it counts the requests it recorded and flushes, every 50 ms on the flushing thread
(observability/flushing.py), at exit, and before /metrics renders. So a worker's own counts are exact in its
answer, and under gunicorn a scrape served by one worker sees the others' requests at most 50 ms late.
"""

from __future__ import annotations

import os
import threading

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    path = os.environ.get(MULTIPROC_ENV)
    return path if path and os.path.isdir(path) else None


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        self.multiprocess = multiprocess_dir() is not None
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(self.registry)
            own = None  # values live in the shared files; the collector above reads them all
        else:
            own = self.registry
        self.requests = Counter(
            "toyseq_requests",
            "HTTP requests answered, by endpoint, task and status",
            ["endpoint", "task", "status"],
            registry=own,
        )
        self.latency = Histogram(
            "toyseq_request_duration_seconds",
            "Time to answer a request, by endpoint and task",
            ["endpoint", "task"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.sequences = Counter(
            "toyseq_sequences_predicted", "Sequences answered by predict, by task", ["task"], registry=own
        )
        # The contract monitor: inputs answered, by task and whether each was of the task's kind
        # (service/core/domain.py); a rising share of in_domain="false" means clients send what a model was not
        # built for (docs/operations.md has the alert).
        self.domain = Counter(
            "toyseq_domain_inputs",
            "Inputs answered (native predict, v2 infer over HTTP and gRPC), by task and whether each was in the "
            "task's domain",
            ["task", "in_domain"],
            registry=own,
        )
        self.load_failures = Counter(
            "toyseq_model_load_failures",
            "Model folders a worker could not load, by task (each worker counts its own attempt)",
            ["task"],
            registry=own,
        )

        # Written by the request thread only: running totals (endpoint, task, status) -> count and
        # task -> sequences; (endpoint, task) -> the durations not yet flushed.
        self._requests: dict[tuple, int] = {}
        self._latency: dict[tuple, list[float]] = {}
        self._sequences: dict[str, int] = {}
        self._domain: dict[tuple[str, str], int] = {}  # (task, "true"|"false") -> inputs in / outside its domain
        # What flush() has already added to the Prometheus values, per key.
        self._flushed: dict[tuple, int] = {}
        self.pending = None  # called before a render: counts what the app has recorded but not yet counted
        self._flush_lock = threading.Lock()  # the request thread (scrape) and the flushing thread may both flush

    def observe(self, endpoint: str, task: str, status: int, seconds: float) -> None:
        key = (endpoint, task, status)
        requests = self._requests
        requests[key] = requests.get(key, 0) + 1
        durations = self._latency.get(key[:2])
        if durations is None:
            durations = self._latency[key[:2]] = []
        durations.append(seconds)

    def count_sequences(self, task: str, count: int, outside: int = 0) -> None:
        """`count` inputs answered for `task`, `outside` of them outside its domain."""
        sequences = self._sequences
        sequences[task] = sequences.get(task, 0) + count
        domain = self._domain
        if count > outside:
            key = (task, "true")
            domain[key] = domain.get(key, 0) + count - outside
        if outside:
            key = (task, "false")
            domain[key] = domain.get(key, 0) + outside

    def flush(self) -> None:
        """Add the counts since the last flush to the Prometheus values (the mmap files under gunicorn).
        Reads the tallies without stopping the request thread: a count it misses is taken next time."""
        with self._flush_lock:
            flushed = self._flushed
            for key, total in list(self._requests.items()):
                delta = total - flushed.get(("r", key), 0)
                if delta:
                    self.requests.labels(key[0], key[1], str(key[2])).inc(delta)
                    flushed[("r", key)] = total
            for task, total in list(self._sequences.items()):
                delta = total - flushed.get(("s", task), 0)
                if delta:
                    self.sequences.labels(task).inc(delta)
                    flushed[("s", task)] = total
            for key, total in list(self._domain.items()):
                delta = total - flushed.get(("d", key), 0)
                if delta:
                    self.domain.labels(*key).inc(delta)
                    flushed[("d", key)] = total
            for key, durations in list(self._latency.items()):
                # A copy, then a delete of exactly the copied head: each is atomic under the GIL, so a
                # duration the request thread appends meanwhile stays for the next flush.
                taken = durations[:]
                if taken:
                    del durations[: len(taken)]
                    child = self.latency.labels(*key)
                    for seconds in taken:
                        child.observe(seconds)

    def render(self) -> bytes:
        if self.pending is not None:
            self.pending()
        self.flush()
        return generate_latest(self.registry)
