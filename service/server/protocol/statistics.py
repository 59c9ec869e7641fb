"""The Open Inference Protocol's statistics extension (Triton's shape): per model version, how many inference
requests succeeded and failed and how long their parts took, summed over every gunicorn worker.

A request's parts, measured by the predict and infer routes on the request's own clock (`Timing`):

- queue: from the app receiving the request to the start of reading its body (routing, the API key, the
  model lookup). toyseq has no scheduler queue: each worker runs a request as soon as it has read it.
- compute_input: reading the body and checking it into arrays,
- compute_infer: the predictor's onnxruntime calls (and rollouts),
- compute_output: rendering the answer, up to the app handing it to the server.

So for successes queue + compute_* = success, to the nanosecond. Failures count only their total (`fail`), as
Triton's do. inference_count counts sequences (Triton's batch elements), execution_count predictor calls.

Counts are kept like the request metrics (observability/metrics.py): the app's middleware records each
finished request in memory, its flushing thread adds them to Prometheus counters every 50 ms, and under
gunicorn those live in the PROMETHEUS_MULTIPROC_DIR files, which `read` sums over all workers (a worker that
exited still counts). They also appear in /metrics as toyseq_inference_*.

Only versions being served are reported: a model replaced by `load` starts again from zero under its new
version (Triton does the same), so `GET /v2/models/<m>/stats` always has exactly one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter

from prometheus_client import Counter, Gauge

from ..observability.metrics import Metrics
from ..problems import NotFound
from ..store.registry import Snapshot, lookup

KINDS = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


class Timing:
    """One inference request's clock, kept in the WSGI environ ("toyseq.inference") by the route that ran it.
    Created when the route has its model (and the version number it is served as, a decimal string): input starts
    then; the route sets `infer` and `output`."""

    __slots__ = ("version", "input", "infer", "output")

    def __init__(self, version: str):
        self.version = version
        self.input = perf_counter()
        self.infer = 0.0
        self.output = 0.0


class Statistics:
    def __init__(self, metrics: Metrics):
        own = None if metrics.multiprocess else metrics.registry
        labels = ["task", "version", "kind"]
        self._count = Counter(
            "toyseq_inference_requests", "Inference requests by task, model version and part", labels, registry=own
        )
        self._ns = Counter(
            "toyseq_inference_duration_ns",
            "Cumulative nanoseconds by task, model version and part (statistics extension)",
            labels,
            registry=own,
        )
        self._sequences = Counter(
            "toyseq_inference_sequences", "Sequences answered, by task and version", ["task", "version"], registry=own
        )
        self._executions = Counter(
            "toyseq_inference_executions", "Predictor calls, by task and version", ["task", "version"], registry=own
        )
        self._last = Gauge(
            "toyseq_last_inference_ms",
            "Time of the last inference request, ms since the epoch, by task and version",
            ["task", "version"],
            registry=own,
            multiprocess_mode="max",
        )
        self._reader = metrics.registry  # own values, or every worker's files (MultiProcessCollector)
        # Written by the middleware's drain only (one at a time): (task, version) -> running totals, one list
        # per model version so that a request costs one dict lookup: [success count, success ns, fail count,
        # fail ns, queue ns, compute_input ns, compute_infer ns, compute_output ns, sequences].
        self._tally: dict[tuple[str, str], list[int]] = {}
        self._flushed: dict[tuple[str, str], list[int]] = {}  # what flush() has added to the Prometheus values
        self._last_ms: dict[tuple[str, str], int] = {}
        self.pending: Callable[[], None] | None = None  # the middleware's drain: records what it holds

    def record(
        self, task: str, timing: Timing, status: int, started: float, seconds: float, sequences: int, now: float
    ):
        """One finished inference request: `started` and `seconds` are the middleware's (app entry, total)."""
        key = (task, timing.version)
        tally = self._tally.get(key)
        if tally is None:
            tally = self._tally[key] = [0] * 9
        total = int(seconds * 1e9)
        if status < 400 and timing.output:
            queue = int((timing.input - started) * 1e9)
            compute_input = int((timing.infer - timing.input) * 1e9)
            compute_infer = int((timing.output - timing.infer) * 1e9)
            tally[0] += 1
            tally[1] += total
            tally[4] += queue
            tally[5] += compute_input
            tally[6] += compute_infer
            # The remainder, so that the parts add up to the total exactly.
            tally[7] += max(0, total - queue - compute_input - compute_infer)
            tally[8] += sequences
        else:
            tally[2] += 1
            tally[3] += total
        self._last_ms[key] = int(now * 1000)

    def flush(self) -> None:
        """Add what was recorded since the last flush to the Prometheus values (the middleware's drain)."""
        for key, tally in list(self._tally.items()):
            done = self._flushed.get(key) or [0] * 9
            delta = [now - before for now, before in zip(tally, done, strict=True)]
            if not any(delta):
                continue
            task, version = key
            successes = delta[0]
            parts = [("success", successes, delta[1]), ("fail", delta[2], delta[3])]
            parts += [(kind, successes, delta[i]) for i, kind in enumerate(KINDS[2:], start=4)]
            for kind, count, ns in parts:
                if count:
                    self._count.labels(task, version, kind).inc(count)
                    self._ns.labels(task, version, kind).inc(ns)
            if successes:
                self._executions.labels(task, version).inc(successes)
                self._sequences.labels(task, version).inc(delta[8])
            self._flushed[key] = list(tally)
        for (task, version), ms in list(self._last_ms.items()):
            self._last.labels(task, version).set(ms)
        self._last_ms.clear()

    def totals(self) -> dict[tuple[str, str], dict]:
        """(task, version) -> Triton's model_stats fields, summed over every worker."""
        if self.pending is not None:
            self.pending()
        totals: dict[tuple[str, str], dict] = {}
        for family in self._reader.collect():
            if not family.name.startswith(("toyseq_inference_", "toyseq_last_inference")):
                continue
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                key = (sample.labels.get("task", ""), sample.labels.get("version", ""))
                entry = totals.get(key)
                if entry is None:
                    entry = totals[key] = _empty()
                value = int(sample.value)
                if family.name == "toyseq_inference_requests":
                    entry["inference_stats"][sample.labels["kind"]]["count"] += value
                elif family.name == "toyseq_inference_duration_ns":
                    entry["inference_stats"][sample.labels["kind"]]["ns"] += value
                elif family.name == "toyseq_inference_sequences":
                    entry["inference_count"] += value
                elif family.name == "toyseq_inference_executions":
                    entry["execution_count"] += value
                elif family.name == "toyseq_last_inference_ms":
                    entry["last_inference"] = max(entry["last_inference"], value)
        return totals

    def model_stats(self, snapshot: Snapshot, name: str | None = None, version: str | None = None) -> dict:
        """The statistics extension's answer: every served model, or one (404 unknown, 503 unavailable; a
        version other than the one served is 404)."""
        if name is None:
            names = sorted(snapshot.predictors)
        else:
            lookup(snapshot, name)
            current = snapshot.version(name)
            if version is not None and version != current:
                raise NotFound(f"model {name} has no version {version[:40]!r}; its version is {current}")
            names = [name]
        totals = self.totals()
        stats = []
        for task in names:
            served = snapshot.version(task)
            entry = totals.get((task, served)) or _empty()
            stats.append({"name": task, "version": served, **entry})
        return {"model_stats": stats}


def _empty() -> dict:
    parts = {kind: {"count": 0, "ns": 0} for kind in KINDS}
    # toyseq has no response cache: Triton reports these as zero when its cache is off.
    parts.update({"cache_hit": {"count": 0, "ns": 0}, "cache_miss": {"count": 0, "ns": 0}})
    return {
        "last_inference": 0,
        "inference_count": 0,
        "execution_count": 0,
        "inference_stats": parts,
        "batch_stats": [],
        "memory_usage": [],
    }
