"""The peers benchmark as a Markdown table (ratios with their spread across rounds) and a PNG chart."""

from __future__ import annotations

from pathlib import Path


def _spread(r: dict | None) -> str:
    return "-" if r is None else f"{r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f})"


def table(res: dict, goals: bool = True) -> str:
    """The run's tables; `goals` adds the checks against the issues' goals (the console's, not the docs')."""
    m = res["machine"]
    lines = [
        f"{res['task']}, {res['length']} values/sequence, wrk {res['connections']} connections, "
        f"{res['workers']} processes x {res['onnxruntime_threads']} onnxruntime thread, "
        f"{len(res['rounds'])} rounds of {res['seconds_per_run']:.0f} s; load average "
        f"{m['load_average_start'][0]:.2f} -> {m['load_average_end'][0]:.2f} on {m['cores']} cores; "
        + ", ".join(res["versions"].values()),
        "",
        "| server | 1 seq: req/s | p50 / p99 ms | CPU µs/req | 100 seq: req/s | p50 / p99 ms | CPU µs/req "
        "| cold start s | idle RSS (PSS) MiB | loaded RSS MiB | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in res["servers"].items():
        lines.append(
            f"| {name} | {s['one_rps']:,.0f}{_range(s.get('one_rps_range'))} | {s['one_p50_ms']:.2f} / "
            f"{s['one_p99_ms']:.2f} | {_cpu(s, 'one')} "
            f"| {s['hundred_rps']:,.0f}{_range(s.get('hundred_rps_range'))} | {s['hundred_p50_ms']:.1f} / "
            f"{s['hundred_p99_ms']:.1f} "
            f"| {_cpu(s, 'hundred')} "
            f"| {s['cold_start_s']:.2f} | {s['idle_rss_mib']:.0f} ({s['idle_pss_mib']:.0f}) "
            f"| {s['loaded_rss_mib']:.0f} | {s['errors']} |"
        )
    loads = [
        f"{name} {', '.join(f'{x:.1f}' for x in s['load_averages'])}"
        for name, s in res["servers"].items()
        if s.get("load_averages")
    ]
    if loads:
        lines += [
            "",
            "req/s: median of the rounds (min-max). Load average as each server's rounds began: "
            + "; ".join(loads)
            + ".",
        ]
    if res["ratios"]:
        lines += [
            "",
            "toyseq / other, median of the rounds (min-max):",
            "",
            "| vs | 1 seq req/s | 1 seq p99 | 1 seq CPU/req | 100 seq req/s | 100 seq p99 | 100 seq CPU/req "
            "| cold start | idle RSS | loaded RSS |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in res["ratios"].items():
            lines.append(
                f"| {name} | {_spread(r['one_rps'])} | {_spread(r.get('one_p99'))} | {_spread(r.get('one_cpu'))} "
                f"| {_spread(r['hundred_rps'])} | {_spread(r.get('hundred_p99'))} | {_spread(r.get('hundred_cpu'))} "
                f"| {_spread(r['cold_start'])} | {_spread(r['idle_rss'])} | {_spread(r['loaded_rss'])} |"
            )
    if res.get("grpc_ratios"):
        lines += [
            "",
            "toyseq-grpc / other, median of the rounds (min-max):",
            "",
            "| vs | 1 seq req/s | 100 seq req/s | 1 seq server CPU/request |",
            "|---|---|---|---|",
        ]
        for name, r in res["grpc_ratios"].items():
            lines.append(
                f"| {name} | {_spread(r['one_rps'])} | {_spread(r['hundred_rps'])} | {_spread(r['one_cpu'])} |"
            )
    if goals and res["goals"]:
        lines += ["", "| goal | ratio | target | |", "|---|---|---|---|"]
        for g in res["goals"]:
            lines.append(f"| {g['what']} | {g['ratio']:.2f}x | {g['goal']} | {'met' if g['met'] else 'MISSED'} |")
    return "\n".join(lines)


def _range(pair: list | None) -> str:
    return "" if not pair else f" ({pair[0]:,.0f}-{pair[1]:,.0f})"


def _cpu(server: dict, key: str) -> str:
    value = server.get(f"{key}_cpu_us")  # runs before CPU was measured have none
    return "-" if value is None else f"{value:,.0f}"


def chart(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(res["servers"])
    panels = (
        ("one_rps", "req/s, 1 sequence/request"),
        ("hundred_rps", "req/s, 100 sequences/request"),
        ("cold_start_s", "cold start, s"),
        ("idle_rss_mib", "idle RSS, MiB"),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 4))
    colors = ["tab:green" if n.startswith("toyseq") else "tab:gray" if n == "floor" else "tab:blue" for n in names]
    for ax, (key, title) in zip(axes, panels):
        values = [res["servers"][n][key] for n in names]
        ax.bar(range(len(names)), values, color=colors)
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_title(title, fontsize=10)
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:,.0f}" if v >= 10 else f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    m = res["machine"]
    fig.suptitle(
        f"toyseq vs peers: {res['task']}, {res['workers']} processes, wrk {res['connections']} conn, "
        f"medians of {len(res['rounds'])} rounds, load avg {m['load_average_start'][0]:.1f} -> "
        f"{m['load_average_end'][0]:.1f} ({m['cores']} cores)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
