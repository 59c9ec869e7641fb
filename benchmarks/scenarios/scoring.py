"""Batch scoring speed: local `toyseq-score` vs one request per row to a running service.

    python -m benchmarks.scenarios.scoring [--rows 200000] [--task echo-lag] [--models-dir models] [--sample 2000]

1. writes a JSONL file of `--rows` random sequences for the task (lengths 2..30 for echo-lag);
2. times `python -m service.scoring TASK FILE -o /dev/null` (a subprocess, start-up included);
3. starts gunicorn on 127.0.0.1 with the same models and sends `--sample` of the rows one request per
   row (keep-alive client, one at a time), then the whole file through `toyseq-score --url`;
4. prints rows/s for each and the ratios, all measured in this one run.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from benchmarks.harness.server import Server
from benchmarks.harness.timing import Sizes
from service.core.manifest import load
from service.core.predictor import Predictor, SessionConfig
from service.scoring.client import Client
from service.scoring.engine import LOCAL_CHUNK_ROWS

ROOT = Path(__file__).resolve().parents[2]
TARGET_ROWS_PER_S = 50_000
TARGET_RATIO = 5.0


def write_rows(path: Path, manifest: dict, rows: int, seed: int = 0) -> list[list]:
    """Random valid rows (lengths min..min(max, 30)); returns the first 20,000 (samples)."""
    spec = manifest["input"]
    rng = random.Random(seed)
    low, high = int(spec["low"]), int(spec["high"])
    lo, hi = spec["min_length"], min(spec["max_length"], max(spec["min_length"], 30))
    head = []
    with open(path, "wb") as f:
        for i in range(rows):
            seq = [rng.randint(low, high) for _ in range(rng.randint(lo, hi))]
            if i < 20_000:
                head.append(seq)
            f.write(orjson.dumps(seq) + b"\n")
    return head


def busy_cpu_seconds() -> float | None:
    """CPU seconds every process on the machine has used since boot (Linux /proc/stat), else None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def cli(*args: str, env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one `toyseq-score` run."""
    return cli_and_others(*args, env=env)[:2]


def cli_and_others(*args: str, env: dict | None = None) -> tuple[float, float, float | None]:
    """(wall seconds, CPU seconds, CPU seconds other processes used meanwhile) of one `toyseq-score` run."""
    before, busy = resource.getrusage(resource.RUSAGE_CHILDREN), busy_cpu_seconds()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "service.scoring", *args, "-o", os.devnull, "-q"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stderr=subprocess.PIPE,
    )
    if done.returncode != 0:
        sys.exit(f"service.scoring.cli failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    wall = time.perf_counter() - started
    after, busy_after = resource.getrusage(resource.RUSAGE_CHILDREN), busy_cpu_seconds()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, None if busy is None or busy_after is None else max(0.0, busy_after - busy - cpu)


def inference_ceiling(models_dir: Path, task: str, rows: list[list]) -> float:
    """Rows per CPU-second of Predictor.predict alone (one thread, on checked rows in the scorer's chunks):
    with C cores no scorer can beat C times this, whatever it does around inference."""
    predictor = Predictor.load(models_dir / task, SessionConfig(intra_op_threads=1))
    chunks = [predictor.codec.check(rows[i : i + LOCAL_CHUNK_ROWS]) for i in range(0, len(rows), LOCAL_CHUNK_ROWS)]
    predictor.predict(chunks[-1])
    started = time.process_time()
    for arrays in chunks:
        predictor.predict(arrays)
    return len(rows) / (time.process_time() - started)


def start_gunicorn(models_dir: Path, workers: int, log: Path) -> Server:
    return Server(log, {"TOYSEQ_WORKERS": workers, "TOYSEQ_LOG_LEVEL": "warning"}, models_dir)


def per_row(url: str, task: str, rows: list[list], budget_s: float) -> tuple[int, float]:
    """One request per row, one at a time, until the rows or the time budget run out."""
    client = Client(url)
    started = time.perf_counter()
    sent = 0
    for seq in rows:
        client.predict(task, [seq])
        sent += 1
        if time.perf_counter() - started > budget_s:
            break
    return sent, time.perf_counter() - started


SUITE_TASK = "echo-lag"


def run(models_dir: Path, sizes: Sizes, tmp: Path) -> dict:
    """The suite's scoring section (`python -m benchmarks`): the steps of `main`, sized by the run."""
    task, rows = SUITE_TASK, sizes.scoring_rows
    path = tmp / "rows.jsonl"
    head = write_rows(path, load(models_dir / task), rows)
    local_s, local_cpu = cli(task, str(path), "--models-dir", str(models_dir))
    with start_gunicorn(models_dir, 2, tmp / "scoring-gunicorn.log") as server:
        sent, per_row_s = per_row(server.url, task, head[: sizes.scoring_sample], sizes.http_seconds * 2)
        remote_s, _ = cli(task, str(path), "--url", server.url, "--concurrency", "4")
    return {
        "task": task,
        "rows": rows,
        "lengths": "2..30",
        "local_rows_per_s": rows / local_s,
        "local_seconds": local_s,
        "local_cpu_seconds": local_cpu,
        "remote_rows_per_s": rows / remote_s,
        "remote_seconds": remote_s,
        "one_request_per_row_rows_per_s": sent / per_row_s,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scenarios.scoring", description=__doc__.split("\n")[0])
    p.add_argument("--task", default="echo-lag")
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--models-dir", type=Path, default=Path(os.environ.get("TOYSEQ_MODELS_DIR", ROOT / "models")))
    p.add_argument("--sample", type=int, default=2_000, help="rows sent one request each (bounded sample)")
    p.add_argument("--budget", type=float, default=30.0, help="seconds at most for the per-row sample")
    p.add_argument("--server-workers", type=int, default=2)
    args = p.parse_args(argv)
    models_dir = args.models_dir.resolve()
    manifest = load(models_dir / args.task)
    cores = len(os.sched_getaffinity(0))
    load1 = os.getloadavg()[0]
    print(f"task {args.task}, {args.rows:,} rows, {cores} cores, load average {load1:.2f} at start")

    with tempfile.TemporaryDirectory(prefix="toyseq-bench-") as tmp:
        path = Path(tmp) / "rows.jsonl"
        head = write_rows(path, manifest, args.rows)
        print(f"input: {path.stat().st_size / 2**20:.1f} MiB JSONL")

        local_s, local_cpu, others = cli_and_others(args.task, str(path), "--models-dir", str(models_dir))
        local_rate = args.rows / local_s
        print(
            f"local   toyseq-score                {local_rate:10,.0f} rows/s  ({local_s:.2f} s, start-up included; "
            f"{local_cpu:.2f} CPU-s = {args.rows / local_cpu:,.0f} rows per CPU-s)"
        )
        if others is not None:
            print(
                f"        other processes meanwhile: {others:.2f} CPU-s ({others / local_s / cores:.0%} of the cores)"
            )
        ceiling = inference_ceiling(models_dir, args.task, head)
        print(
            f"ceiling inference alone             {ceiling * cores:10,.0f} rows/s  "
            f"({ceiling:,.0f} rows per CPU-s x {cores} cores, {len(head):,} rows)"
        )

        with start_gunicorn(models_dir, args.server_workers, Path(tmp) / "gunicorn.log") as server:
            url = server.url
            sent, per_row_s = per_row(url, args.task, head[: args.sample], args.budget)
            per_row_rate = sent / per_row_s
            print(
                f"remote  one request per row         {per_row_rate:10,.0f} rows/s  ({sent:,} rows in {per_row_s:.2f} s)"
            )
            remote_s, _ = cli(args.task, str(path), "--url", url, "--concurrency", str(2 * args.server_workers))
            remote_rate = args.rows / remote_s
            print(f"remote  toyseq-score --url          {remote_rate:10,.0f} rows/s  ({remote_s:.2f} s)")

    ratio = local_rate / per_row_rate
    print(
        f"local / one-request-per-row: {ratio:.1f}x (target >= {TARGET_RATIO:g}x); "
        f"remote chunked / per-row: {remote_rate / per_row_rate:.1f}x"
    )
    print(
        f"local rows/s target >= {TARGET_ROWS_PER_S:,}: {'met' if local_rate >= TARGET_ROWS_PER_S else 'NOT met'}; "
        f"load average now {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
