"""What every attack test measures beside its attackers: one normal client, and the goals it must meet
(tests/reliability/test_attacks.py, test_attacks_next.py)."""

from __future__ import annotations

import random
import time

from benchmarks.harness.load import Client, predict_call

TASK = "echo-lag"  # the normal client's task
LOADED_FACTOR = 1.5  # how much slower a loaded CI machine may run before a rate is compared
P99_LIMIT_MS, MAX_MS, MIN_RATE = 250, 1000, 0.5  # the goals: p99, the slowest request, the share of the rate kept


def normal_client(base_url: str, seconds: float) -> tuple[list, list[float]]:
    """One client on a kept-alive connection, requests back to back, for `seconds` (at most 100,000)."""
    rng, client = random.Random(0), Client(base_url, timeout=10)
    outcomes, latencies = [], []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and len(outcomes) < 100_000:
            call = predict_call(TASK, rng)
            sent = time.perf_counter()
            outcomes.append(client.send(call))
            latencies.append(time.perf_counter() - sent)
    finally:
        client.close()
    return outcomes, latencies
