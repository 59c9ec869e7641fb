"""Prometheus metrics. Under gunicorn (PROMETHEUS_MULTIPROC_DIR set by gunicorn_conf.py before any worker
imports prometheus_client) every worker writes its own files and /metrics sums them all; elsewhere (tests,
flask run) an app gets its own single-process registry."""
from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

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
        self.requests = Counter("toyseq_requests", "HTTP requests answered, by endpoint, task and status",
                                ["endpoint", "task", "status"], registry=own)
        self.latency = Histogram("toyseq_request_duration_seconds", "Time to answer a request, by endpoint and task",
                                 ["endpoint", "task"], buckets=LATENCY_BUCKETS, registry=own)
        self.sequences = Counter("toyseq_sequences_predicted", "Sequences answered by predict, by task",
                                 ["task"], registry=own)
        self.load_failures = Counter("toyseq_model_load_failures", "Model folders a worker could not load, "
                                     "by task (each worker counts its own attempt)", ["task"], registry=own)

        self._children: dict[tuple, tuple] = {}  # labels() costs a lock and lookups; the label sets are few
        self._sequences: dict[str, Counter] = {}

    def observe(self, endpoint: str, task: str, status: int, seconds: float) -> None:
        key = (endpoint, task, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(endpoint, task, str(status)),
                                              self.latency.labels(endpoint, task))
        children[0].inc()
        children[1].observe(seconds)

    def count_sequences(self, task: str, count: int) -> None:
        child = self._sequences.get(task)
        if child is None:
            child = self._sequences[task] = self.sequences.labels(task)
        child.inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
