"""Soak: a real gunicorn (2 workers) under 16 concurrent clients mixing every committed task and request kind.
Zero 5xx, zero dropped connections, every answer right, worker memory flat.

    TOYSEQ_SOAK_SECONDS=60 .venv/bin/python -m pytest tests/reliability/test_soak.py -s   # full length
"""

from __future__ import annotations

import pytest

from benchmarks.harness.load import (
    ORACLES,
    children,
    drive,
    mixed_calls,
    rss_bytes,
    seconds_from_env,
)

SECONDS = seconds_from_env("TOYSEQ_SOAK_SECONDS", 8)
CLIENTS = 16
MAX_REQUESTS = 2_000_000
MAX_GROWTH_MB = 50


@pytest.mark.slow
def test_soak_mixed_load_is_all_correct_and_memory_stays_flat(gunicorn_server, tasks):
    assert set(tasks) <= set(ORACLES), f"no oracle for {set(tasks) - set(ORACLES)}"
    server = gunicorn_server()
    make = mixed_calls(tasks)
    # A short warm-up first, so one-off allocations (arenas, caches, metric children) are not counted as growth.
    warm = drive(server.base_url, make, CLIENTS, seconds=2, max_requests=400, seed=1)
    assert warm.count("ok") == warm.sent, warm.failures()
    workers = children(server.proc.pid)
    assert len(workers) == 2
    before = {pid: rss_bytes(pid) for pid in workers}

    tally = drive(server.base_url, make, CLIENTS, seconds=SECONDS, max_requests=MAX_REQUESTS, seed=2)

    after = {pid: rss_bytes(pid) for pid in workers}
    growth_mb = {pid: (after[pid] - before[pid]) / 2**20 for pid in workers}
    print(
        f"\nsoak: {tally.summary()}\nkinds {dict(tally.by_kind())}\n"
        f"worker RSS MB before {[round(b / 2**20, 1) for b in before.values()]} "
        f"after {[round(a / 2**20, 1) for a in after.values()]} growth {[round(g, 1) for g in growth_mb.values()]}"
    )
    assert tally.sent > CLIENTS * 10, tally.summary()
    assert not [s for s in tally.by_status() if s >= 500], tally.failures()
    assert tally.count("dropped") == 0 and tally.count("refused") == 0, tally.failures()
    assert tally.count("ok") == tally.sent, tally.failures()
    kinds = set(tally.by_kind())
    assert {"predict", "invalid", "tasks", "metrics", "task", "unknown"} <= kinds
    if any(ORACLES[t].rollout for t in tasks):
        assert "rollout" in kinds
    if any(ORACLES[t].classes for t in tasks):
        assert "top_k" in kinds
    assert children(server.proc.pid) == workers, "a worker was replaced during the soak"
    assert max(growth_mb.values()) < MAX_GROWTH_MB, growth_mb
