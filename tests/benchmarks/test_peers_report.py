"""The peers benchmark's results shape, as `tools.docs` renders it: rounds of measurements summarized by the
benchmark's own `summarize` (ratios per round, their median and range, p50/p99 at 1 and 100 sequences, the load
each round ran at), the table of docs/performance.md and the README's summary, which holds figures only."""

from __future__ import annotations

import json

from benchmarks.peers.__main__ import summarize
from benchmarks.peers.report import table
from tools import docs


def measured(rps_one: float, rps_hundred: float, p99: float, load: float) -> dict:
    def run(rps: float) -> dict:
        return {"requests_per_s": rps, "p50_ms": p99 / 4, "p99_ms": p99, "cpu_us_per_request": 1e6 / rps}

    return {
        "cold_start_s": 1.0,
        "idle": {"rss_mib": 200.0, "pss_mib": 120.0, "processes": 3},
        "loaded": {"rss_mib": 210.0, "pss_mib": 125.0},
        "load_average": load,
        "one": run(rps_one) | {"errors": 0, "non_2xx": 0, "requests": int(rps_one)},
        "hundred": run(rps_hundred) | {"errors": 0, "non_2xx": 0, "requests": int(rps_hundred)},
    }


def results() -> dict:
    names = ["toyseq", "granian", "kserve", "raw-floor"]
    rounds = [
        {"order": names, "toyseq": measured(4000, 1000, 5.0, 1.0), "granian": measured(3500, 900, 6.0, 1.1)}
        | {"kserve": measured(2500, 800, 6.0, 1.2), "raw-floor": measured(9000, 1300, 3.0, 1.3)},
        {"order": names, "toyseq": measured(4200, 1100, 4.0, 1.5), "granian": measured(3600, 950, 5.0, 1.4)}
        | {"kserve": measured(2600, 850, 5.0, 1.3), "raw-floor": measured(9100, 1350, 3.0, 1.2)},
        {"order": names, "toyseq": measured(3900, 1050, 6.0, 1.6), "granian": measured(3700, 1000, 7.0, 1.7)}
        | {"kserve": measured(2400, 820, 7.0, 1.8), "raw-floor": measured(8800, 1250, 3.5, 1.9)},
    ]
    machine = {"cores": 2, "load_average_start": [1.0], "load_average_end": [1.9], "started": "2026-12-06T13:10:00"}
    head = {"task": "echo-lag", "length": 10, "connections": 8, "workers": 2, "onnxruntime_threads": 1}
    head |= {"seconds_per_run": 5, "versions": {"granian": "granian==2.8.0", "kserve": "kserve==0.21.0"}}
    return (
        head
        | {"machine": machine, "command": "python -m benchmarks.peers", "rounds": rounds}
        | summarize(rounds, names)
    )


def test_the_summary_has_rounds_spread_p99_and_load():
    res = results()
    granian = res["ratios"]["granian"]
    assert [round(x, 3) for x in granian["one_rps"]["rounds"]] == [
        round(4000 / 3500, 3),
        round(4200 / 3600, 3),
        round(3900 / 3700, 3),
    ]
    assert granian["hundred_p99"]["rounds"] == [5 / 6, 4 / 5, 6 / 7] and granian["hundred_p99"]["median"] == 5 / 6
    assert res["servers"]["toyseq"]["one_rps_range"] == [3900, 4200]
    assert res["servers"]["kserve"]["load_averages"] == [1.2, 1.3, 1.8]
    goals = {g["what"]: g for g in res["goals"]}
    assert goals["hundred seq/request p99 vs kserve"]["met"] is True  # 5/6, 4/5, 6/7: under KServe's p99
    assert "hundred seq/request vs raw-floor" in goals and "one seq/request vs granian" in goals


def test_the_docs_render_it_with_figures_only(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "peers.json").write_text(json.dumps(results()))
    summary = docs.peers_summary(tmp_path, "docs/peers.json")
    assert "| granian==2.8.0 | 1.14x (1.05-1.17) |" in summary and "| kserve==0.21.0 |" in summary
    assert "goal" not in summary.lower() and "met" not in summary.lower()
    full = table(json.loads((tmp_path / "docs" / "peers.json").read_text()))
    assert "| granian |" in full and "load average 1.00 -> 1.90 on 2 cores" in full
