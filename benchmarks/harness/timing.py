"""Timing helpers shared by the in-process benchmarks, and the run sizes (full, quick, smoke)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """How long and how big each benchmark runs; `smoke` keeps every script exercised in seconds."""

    http_seconds: float  # per wrk run
    http_rounds: int  # A B pairs
    timed_seconds: float  # per in-process measurement
    runtime_batches: tuple[int, ...]
    rollout_counts: tuple[int, ...]
    rollout_loop_seconds: float  # bound on the one-by-one rollout loop
    scaling_batches: tuple[int, ...]
    scaling_lengths: tuple[int, ...]
    scaling_length_batch: int
    cold_starts: int
    scoring_rows: int
    scoring_sample: int


FULL = Sizes(
    10,
    3,
    2.0,
    (1, 4096),
    (1, 1000),
    20.0,
    (1, 10, 100, 1000, 10000),
    (5, 10, 50, 100, 500, 1000),
    100,
    3,
    200_000,
    2000,
)
QUICK = Sizes(
    4, 2, 0.7, (1, 4096), (1, 1000), 5.0, (1, 10, 100, 1000, 10000), (5, 10, 50, 100, 500, 1000), 100, 2, 50_000, 500
)
SMOKE = Sizes(1, 1, 0.05, (1, 64), (1, 20), 0.3, (1, 10, 100), (5, 50), 10, 1, 500, 20)


def seconds_per_call(fn: Callable[[], object], budget: float, min_calls: int = 3) -> float:
    """Median wall time of one call: calls `fn` (after one warm-up) until `budget` seconds and `min_calls` pass.
    The median shrugs off the pauses a shared, noisy machine inserts."""
    fn()
    times = []
    started = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - started < budget:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
