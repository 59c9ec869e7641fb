"""The benchmark results as a text table (Markdown, ready for the README) and as a PNG chart."""

from __future__ import annotations

import math
from pathlib import Path


def _goal(met) -> str:
    return "" if met is None else "met" if met else "MISSED"


def ratio(value: float, goal: float | None = None) -> str:
    """A ratio to two decimals that never reads as meeting a goal it misses: 0.7988 against 0.8 is 0.79x."""
    if goal and value < goal:
        value = math.floor(value * 100) / 100
    return f"{value:.2f}x"


def table(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"machine: {m['usable_cores']} cores, load average {m['load_average_start']:.1f} -> "
        f"{m.get('load_average_end', 0):.1f}; models: " + ", ".join(f"{k} {v}" for k, v in r["models"].items()),
        "",
        "| benchmark | toyseq | reference | ratio | goal |",
        "|---|---|---|---|---|",
    ]
    row = lines.append
    if "http" in r:
        h = r["http"]
        one, big = h["one_per_request"], h["batch_per_request"]
        t, f = one["toyseq"], one["floor"]
        row(
            f"| HTTP 1 seq/request ({h['task']}, {h['length']} values, wrk {h['connections']} conn) "
            f"| {t['requests_per_s']:,.0f} req/s, p50 {t['p50_ms']:.1f} ms, p99 {t['p99_ms']:.1f} ms "
            f"| floor {f['requests_per_s']:,.0f} req/s, p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms "
            f"| {ratio(one['ratio'], one['goal'])} | >= {one['goal']}x {_goal(one['met'])} |"
        )
        if "v2_one_per_request" in h:
            v2 = h["v2_one_per_request"]
            c = v2["v2"]
            row(
                f"| HTTP 1 seq/request, Open Inference Protocol v2 infer (JSON) "
                f"| {c['requests_per_s']:,.0f} req/s, p50 {c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms "
                f"| native {t['requests_per_s']:,.0f} req/s | {v2['ratio_to_native']:.2f}x native, "
                f"{v2['ratio_to_floor']:.2f}x floor | |"
            )
        row(
            f"| HTTP {big['sequences']:,} seq/request | {big['sequences_per_s']:,.0f} seq/s "
            f"(p50 {big['p50_ms']:.0f} ms, p99 {big['p99_ms']:.0f} ms) | | | >= {big['goal']:,} seq/s "
            f"{_goal(big['met'])} |"
        )
    if "runtime" in r:
        for x in r["runtime"]["rows"]:
            goal = f">= {x['goal']}x {_goal(x['met'])}" if x["goal"] else ""
            row(
                f"| runtime, batch {x['batch']:,} ({r['runtime']['task']}, length {x['length']}) "
                f"| onnxruntime path {x['onnxruntime_ms']:.3f} ms | torch eager {x['torch_eager_ms']:.3f} ms "
                f"| {ratio(x['speedup'], x['goal'])} | {goal} |"
            )
    if "rollout" in r:
        for x in r["rollout"]["rows"]:
            row(
                f"| rollout {x['steps']} steps x {x['sequences']:,} seq ({r['rollout']['task']}) "
                f"| {x['batched_ms']:.1f} ms | one by one {x['one_by_one_ms']:.1f} ms | {x['speedup']:.1f}x | |"
            )
    if "scaling" in r:
        for key in ("by_batch", "by_length"):
            for x in r["scaling"][key]:
                row(
                    f"| scaling {r['scaling']['task']}, batch {x['batch']:,} x length {x['length']:,} "
                    f"| {x['sequences_per_s']:,.0f} seq/s ({x['values_per_s']:,.0f} values/s) | | | |"
                )
    if "coldstart" in r:
        c = r["coldstart"]
        row(
            f"| cold start to /readyz 200 ({len(c['tasks'])} models, 2 workers) | {c['toyseq_s']:.2f} s "
            f"| floor {c['floor_s']:.2f} s | | |"
        )
    if "scoring" in r:
        s = r["scoring"]
        row(
            f"| batch scoring local ({s['task']}, {s['rows']:,} rows, start-up included) "
            f"| {s['local_rows_per_s']:,.0f} rows/s | one request per row {s['one_request_per_row_rows_per_s']:,.0f} "
            f"rows/s | {s['local_rows_per_s'] / s['one_request_per_row_rows_per_s']:.1f}x | |"
        )
        row(
            f"| batch scoring remote (--url, 4 concurrent) | {s['remote_rows_per_s']:,.0f} rows/s "
            f"| one request per row | {s['remote_rows_per_s'] / s['one_request_per_row_rows_per_s']:.1f}x | |"
        )
    return "\n".join(lines)


def chart(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    if "scaling" in r:
        for ax, key, label in (
            (axes[0], "by_batch", "batch size (length 10)"),
            (axes[1], "by_length", f"sequence length (batch {r['scaling']['by_length'][0]['batch']})"),
        ):
            rows = r["scaling"][key]
            xs = [x["batch" if key == "by_batch" else "length"] for x in rows]
            ax.loglog(xs, [x["sequences_per_s"] for x in rows], "o-", label="sequences/s")
            ax.loglog(xs, [x["values_per_s"] for x in rows], "s--", label="values/s")
            ax.set_xlabel(label)
            ax.set_title(f"{r['scaling']['task']}: throughput vs {key[3:]}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
    ratios = []
    if "http" in r:
        ratios.append(("HTTP 1 seq\nvs floor", r["http"]["one_per_request"]["ratio"], 0.8))
    for x in r.get("runtime", {}).get("rows", []):
        ratios.append((f"runtime b={x['batch']}\nvs torch", x["speedup"], x["goal"] or 0))
    for x in r.get("rollout", {}).get("rows", []):
        ratios.append((f"rollout n={x['sequences']}\nvs loop", x["speedup"], 0))
    ax = axes[2]
    if ratios:
        ax.bar(range(len(ratios)), [v for _, v, _ in ratios], color="tab:blue")
        for i, (_, v, goal) in enumerate(ratios):
            if goal:
                ax.hlines(goal, i - 0.4, i + 0.4, colors="tab:red", linestyles="dashed")
            ax.text(i, v, f"{v:.2f}x", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(ratios)), [n for n, _, _ in ratios], fontsize=7)
        ax.set_yscale("log")
        ax.set_title("ratios measured in this run (red: goal)")
    m = r["machine"]
    fig.suptitle(f"toyseq benchmarks ({r['mode']}), {m['usable_cores']} cores, load avg {m['load_average_start']:.1f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
