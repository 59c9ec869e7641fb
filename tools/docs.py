"""The parts of README.md and docs/*.md that restate what the code computes, regenerated from the code.

    python -m tools.docs            # rewrite every generated part in place
    python -m tools.docs --check    # exit 1, with a diff, when a committed page differs (a test runs this)

A page marks a generated part with an HTML comment (invisible once rendered), in one of two forms:

    <!-- generated: NAME [ARG ...] -->          a block: the lines up to `<!-- end generated -->`
    ...
    <!-- end generated -->

    <!-- value: FILE.json KEY.PATH FORMAT -->0.66x<!-- /value -->     an inline figure read from a JSON file

Blocks (RENDERERS): `models` (each committed model's version, size and weights), `budget` (what
TOYSEQ_MAX_REQUEST_SECONDS admits per task), `over-budget TASK ROWS STEPS` (the service's own 422 text),
`v2-examples` (real v2 answers from the app), `peers-table FILE` and `peers-summary FILE` (a
`python -m benchmarks.peers` JSON), `perf-analyzer-table FILE` (a `python -m benchmarks.scenarios.perf_sweep` JSON),
`benchmark-runs` (every committed benchmark JSON under docs/, with its
command and date: a new JSON file is listed without any change here). An inline value takes any JSON file's
number at a dotted path (list items by index) and formats it with a Python format spec followed by literal
text (`.2fx` -> `0.66x`), so a new benchmark's figures can be quoted in prose without a new renderer.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("README.md", "docs/*.md")
BLOCK = re.compile(r"(<!-- generated: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)
VALUE = re.compile(r"(<!-- value: (?P<spec>[^>]*?) -->)(?P<body>.*?)(<!-- /value -->)")
FORMAT = re.compile(r"^(?P<spec>[<>^=+\- #0-9,_.]*[bcdeEfFgGnosxX%]?)(?P<suffix>.*)$")


class DocsError(Exception):
    """A marker that cannot be rendered: unknown name, missing file or key."""


def pages(root: Path = ROOT) -> list[Path]:
    return sorted({p for pattern in PAGES for p in root.glob(pattern)})


def render_page(text: str, root: Path = ROOT) -> str:
    def block(match: re.Match) -> str:
        name, *args = shlex.split(match.group("spec"))
        if name not in RENDERERS:
            raise DocsError(f"unknown generated block {name!r}; known: {', '.join(sorted(RENDERERS))}")
        body = RENDERERS[name](root, *args).rstrip("\n") + "\n"
        return match.group(1) + body + match.group(4)

    def value(match: re.Match) -> str:
        return match.group(1) + inline_value(root, match.group("spec")) + match.group(4)

    return VALUE.sub(value, BLOCK.sub(block, text))


def inline_value(root: Path, spec: str) -> str:
    try:
        file, path, fmt = shlex.split(spec)
    except ValueError:
        raise DocsError(f"a value marker needs FILE KEY.PATH FORMAT, got {spec!r}") from None
    value = _json(root, file)
    for key in path.split("."):
        try:
            value = value[int(key)] if isinstance(value, list) else value[key]
        except (KeyError, IndexError, ValueError, TypeError):
            raise DocsError(f"{file} has no {path!r} (stopped at {key!r})") from None
    parts = FORMAT.match(fmt)
    assert parts is not None  # the pattern matches any string
    return format(value, parts.group("spec")) + parts.group("suffix")


def _json(root: Path, file: str) -> dict:
    path = root / file
    if not path.is_file():
        raise DocsError(f"{file} does not exist")
    return json.loads(path.read_text())


# ---- blocks computed from the code and the committed models


def _predictors(root: Path):
    from service.core.manifest import discover
    from service.core.predictor import Predictor

    return [Predictor.load(folder) for folder in discover(root / "models")]


def models_table(root: Path) -> str:
    lines = [
        "| task | `model.onnx` sha256 | bytes | weights (cost model: bytes / 4) |",
        "|---|---|---|---|",
    ]
    for p in _predictors(root):
        size = (root / "models" / p.task / "model.onnx").stat().st_size
        lines.append(f"| `{p.task}` | `{p.sha256[:16]}...` | {size:,} | {p.cost.weights:,} |")
    return "\n".join(lines)


def budget_table(root: Path) -> str:
    """What one request may hold under the default TOYSEQ_MAX_REQUEST_SECONDS, at each task's longest input."""
    from service.server.config import Config

    config = Config()
    budget, most = config.max_request_seconds, config.max_batch
    lines = [
        f"| task | longest input | sequences per request (at most `TOYSEQ_MAX_BATCH`, {most:,}) "
        f"| x 100 steps | x 500 steps | x {config.max_steps:,} steps | steps for one sequence |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in _predictors(root):
        length = p.codec.input.max_length
        cells = [f"`{p.task}`", f"{length:,}", _fits(p.cost.largest(budget, length), most)]
        if p.rollout:
            cells += [_fits(p.cost.largest(budget, length, k), most) for k in (100, 500, config.max_steps)]
            cells.append(f"{min(p.cost.most_steps(budget, length), config.max_steps):,}")
        else:
            cells += ["-"] * 4
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fits(n: int, most: int) -> str:
    return f"{most:,} (`TOYSEQ_MAX_BATCH`)" if n >= most else f"{n:,}" if n else "none"


def over_budget(root: Path, task: str, rows: str, steps: str) -> str:
    """The 422 detail the service gives for such a request, from the service's own check."""
    from service.core.predictor import Predictor
    from service.server.config import Config
    from service.server.problems import OverBudget
    from service.server.protocol.checks import check_budget
    from service.server.store.registry import Limits

    p = Predictor.load(root / "models" / task)
    example = p.manifest["example"]["input"]
    try:
        check_budget(p, [example] * int(rows), int(steps) or None, Limits.of(Config()), [])
    except OverBudget as refused:
        return f"> {refused.message}"
    raise DocsError(f"{rows} x {task} x {steps} steps is within the budget: pick a larger example")


V2_EXAMPLES = (
    ("GET", "/v2/models", None),
    ("GET", "/v2/models/arith-next", None),
    (
        "POST",
        "/v2/models/arith-next/infer",
        {
            "id": "42",
            "inputs": [
                {
                    "name": "input",
                    "datatype": "INT64",
                    "shape": [2, 7],
                    "data": [100, 250, 300, 400, 500, 600, 700, 7, 5, 3, 1, -1, -3, -5],
                }
            ],
            "parameters": {"steps": 3, "priority": 1},
        },
    ),
    (
        "POST",
        "/v2/models/last-value/infer",
        {
            "inputs": [{"name": "input", "datatype": "INT64", "shape": [1, 5], "data": [3, 1, 4, 1, 5]}],
            "parameters": {"top_k": 2},
        },
    ),
    (
        "POST",
        "/v2/models/ramp/infer",
        {
            "inputs": [{"name": "input", "datatype": "FP64", "shape": [2, 3], "data": [1, 5, 2, 0.5, 0.75, 1.0]}],
            "outputs": [{"name": "output"}, {"name": "in_domain"}],
        },
    ),
)


def v2_examples(root: Path) -> str:
    """Each request through the app (create_app, the Flask test client) and its answer, as served."""
    from service import create_app

    client = create_app({"models_dir": str(root / "models"), "log_level": "warning"}).test_client()
    lines = ["```"]
    for method, path, body in V2_EXAMPLES:
        answer = client.open(path, method=method, json=body)
        if answer.status_code != 200:
            raise DocsError(f"{method} {path} answered {answer.status_code}: {answer.get_data(as_text=True)}")
        lines.append(f"{method} {path}")
        if body is not None:
            lines.append(json.dumps(body, separators=(",", ":")))
        lines += [f"-> {json.dumps(answer.get_json(), separators=(',', ':'))}", ""]
    return "\n".join(lines).rstrip("\n") + "\n```"


# ---- blocks computed from committed benchmark JSON


def peers_table(root: Path, file: str) -> str:
    from benchmarks.peers.report import table

    return table(_json(root, file), goals=False)


def peers_summary(root: Path, file: str) -> str:
    """README's table: toyseq against each peer, the median of the rounds' ratios with their range, requests/s and
    p99 at 1 and 100 sequences per request, cold start and idle memory. Figures only: what they mean is prose."""
    res = _json(root, file)

    def cell(r: dict | None, digits: int = 2) -> str:
        if r is None:
            return "-"
        return f"{r['median']:.{digits}f}x ({r['min']:.{digits}f}-{r['max']:.{digits}f})"

    lines = [
        "| toyseq / | 1 seq/request: req/s | p99 | 100 seq/request: req/s | p99 | cold start | idle RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for peer, r in res["ratios"].items():
        name = "bare Flask endpoint, same worker" if peer == "floor" else res.get("versions", {}).get(peer, peer)
        lines.append(
            f"| {name} | {cell(r['one_rps'])} | {cell(r.get('one_p99'))} | {cell(r['hundred_rps'])} "
            f"| {cell(r.get('hundred_p99'))} | {cell(r['cold_start'])} | {cell(r['idle_rss'])} |"
        )
    return "\n".join(lines)


def benchmark_runs(root: Path) -> str:
    """Every benchmark JSON committed under docs/: whatever its shape, its command, date and machine."""
    lines = ["| file | command | started | load average (start -> end) on cores |", "|---|---|---|---|"]
    for path in sorted((root / "docs").glob("*.json")):
        try:
            res = json.loads(path.read_text())
        except ValueError as err:
            raise DocsError(f"{path.name} is not JSON: {err}") from None
        if not isinstance(res, dict):
            continue
        machine = res.get("machine", {}) if isinstance(res.get("machine"), dict) else {}
        start, end = machine.get("load_average_start"), machine.get("load_average_end")
        load = f"{start[0]:.2f} -> {end[0]:.2f} on {machine.get('cores', '?')}" if start and end else "not recorded"
        command = f"`{res['command']}`" if res.get("command") else "not recorded"
        lines.append(
            f"| [`{path.name}`]({path.name}) | {command} | {machine.get('started', res.get('started', '?'))} | {load} |"
        )
    return "\n".join(lines)


def perf_analyzer_table(root: Path, file: str) -> str:
    """A `python -m benchmarks.scenarios.perf_sweep` JSON: throughput and latency per concurrency, HTTP beside gRPC."""
    res = _json(root, file)["results"]
    lines = [
        "| concurrency | HTTP infer/s | HTTP p50 / p99 ms | gRPC infer/s | gRPC p50 / p99 ms |",
        "|---|---|---|---|---|",
    ]
    for http, grpc in zip(res["http"], res["grpc"]):
        cells = [f"{r['throughput']:,.0f} | {r['p50_us'] / 1000:.1f} / {r['p99_us'] / 1000:.1f}" for r in (http, grpc)]
        lines.append(f"| {http['concurrency']:.0f} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


RENDERERS: dict[str, Callable[..., str]] = {
    "models": models_table,
    "budget": budget_table,
    "over-budget": over_budget,
    "v2-examples": v2_examples,
    "peers-table": peers_table,
    "peers-summary": peers_summary,
    "benchmark-runs": benchmark_runs,
    "perf-analyzer-table": perf_analyzer_table,
}


def differences(root: Path = ROOT) -> dict[Path, tuple[str, str]]:
    """Pages whose committed text differs from the generated text: path -> (committed, generated)."""
    out = {}
    for page in pages(root):
        text = page.read_text()
        generated = render_page(text, root)
        if generated != text:
            out[page] = (text, generated)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a page would change")
    args = parser.parse_args(argv)
    try:
        changed = differences()
    except DocsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for page, (old, new) in changed.items():
        name = str(page.relative_to(ROOT))
        if args.check:
            sys.stdout.writelines(
                difflib.unified_diff(old.splitlines(True), new.splitlines(True), name, name + " (generated)")
            )
        else:
            page.write_text(new)
            print(f"rewrote {name}")
    if args.check and changed:
        print(f"\n{len(changed)} page(s) differ from the code: run python -m tools.docs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
