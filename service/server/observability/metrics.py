"""Prometheus metrics. Under gunicorn (PROMETHEUS_MULTIPROC_DIR set by gunicorn_conf.py before any worker
imports prometheus_client) every worker writes its own files and /metrics sums them all; elsewhere (tests,
flask run) an app gets its own single-process registry.

Requests update plain in-memory tallies (dict increments: no lock, no mmap write); `flush()` adds what
changed since the last flush to the Prometheus values. The app's middleware (service/app.py, Observe) owns
both: it counts the requests it recorded and flushes, every 50 ms on the flushing thread
(service/flushing.py), at exit, and before /metrics renders. So a worker's own counts are exact in its
answer, and under gunicorn a scrape served by one worker sees the others' requests at most 50 ms late.
"""
from __future__ import annotations

import os
import threading
from bisect import bisect_left

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BOUNDS = (*LATENCY_BUCKETS, float("inf"))


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
        self.requests = Counter("toyseq_requests", "HTTP requests answered, by endpoint, task and status",
                                ["endpoint", "task", "status"], registry=own)
        self.latency = Histogram("toyseq_request_duration_seconds", "Time to answer a request, by endpoint and task",
                                 ["endpoint", "task"], buckets=LATENCY_BUCKETS, registry=own)
        self.sequences = Counter("toyseq_sequences_predicted", "Sequences answered by predict, by task",
                                 ["task"], registry=own)
        self.load_failures = Counter("toyseq_model_load_failures", "Model folders a worker could not load, "
                                     "by task (each worker counts its own attempt)", ["task"], registry=own)

        # Running totals since start, written by the request thread only: (endpoint, task, status) -> count,
        # (endpoint, task) -> [count per bucket..., sum of seconds], task -> sequences.
        self._requests: dict[tuple, int] = {}
        self._latency: dict[tuple, list] = {}
        self._sequences: dict[str, int] = {}
        # What flush() has already added to the Prometheus values, per key.
        self._flushed: dict[tuple, object] = {}
        self.pending = None  # called before a render: counts what the app has recorded but not yet counted
        self._flush_lock = threading.Lock()  # the request thread (scrape) and the flushing thread may both flush

    def observe(self, endpoint: str, task: str, status: int, seconds: float) -> None:
        key = (endpoint, task, status)
        requests = self._requests
        requests[key] = requests.get(key, 0) + 1
        tally = self._latency.get(key[:2])
        if tally is None:
            tally = self._latency[key[:2]] = [0] * len(_BOUNDS) + [0.0]
        tally[bisect_left(_BOUNDS, seconds)] += 1  # the first bucket whose bound is >= seconds, as Prometheus
        tally[-1] += seconds

    def count_sequences(self, task: str, count: int) -> None:
        sequences = self._sequences
        sequences[task] = sequences.get(task, 0) + count

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
            for key, total in list(self._sequences.items()):
                delta = total - flushed.get(("s", key), 0)
                if delta:
                    self.sequences.labels(key).inc(delta)
                    flushed[("s", key)] = total
            for key, tally in list(self._latency.items()):
                now = tally[:]  # one copy: the request thread may be adding to it
                before = flushed.get(("l", key))
                if before == now:
                    continue
                before = before or [0] * len(now)
                child = self.latency.labels(*key)
                # Histogram keeps one value per bucket and the sum; observe() has no batched form.
                for i, bucket in enumerate(child._buckets):
                    if now[i] != before[i]:
                        bucket.inc(now[i] - before[i])
                child._sum.inc(now[-1] - before[-1])
                flushed[("l", key)] = now

    def render(self) -> bytes:
        if self.pending is not None:
            self.pending()
        self.flush()
        return generate_latest(self.registry)
