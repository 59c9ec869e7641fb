"""Batch scoring at scale (issue 17): the local engine vs the Ray engine on this machine, in one run.

    nice python -m benchmarks.scenarios.ray_scoring [--rows 1000000] [--task echo-lag] [--formats parquet,jsonl]
                                          [--rounds 2] [--models-dir models]

1. writes `--rows` random rows for the task (lengths min..30) as JSONL and as Parquet (row groups of
   8192), and the same first 1,000 rows as a tiny file of each format;
2. per format, alternating the engines round by round (the machine is shared: alternation spreads
   other people's load over both), runs `toyseq-score` as a subprocess:
   - local: `toyseq-score TASK FILE -o OUT` (one process, a thread per core);
   - ray:   `toyseq-score TASK FILE -o DIR --engine ray` (starts its own local Ray with every core),
   and the same on the tiny file: its wall time is the start-up (Python, model, Ray, actors), so
   rows / (wall - start-up) is the rate once started;
   peak RSS is the peak of the summed RSS of the command and every process it started (Ray's GCS,
   raylet and workers: shared pages count once per process, so this overstates Ray);
3. measures single-core CPU costs per row of each stage on a sample, in this process: reading and
   parsing the file, checking + the model (LocalBackend.answer), writing the answers;
4. prints every figure with its spread over rounds, the load average before and after, and a worked
   estimate for 100M rows on N nodes from the Ray engine's per-core rate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from service.core.manifest import load
from service.scoring import formats as rows_mod
from service.scoring.engine import LOCAL_CHUNK_ROWS, LocalBackend

from .scoring import write_rows

ROOT = Path(__file__).resolve().parents[2]
TINY = 1_000
GOAL_RATIO = 0.7


def tree_rss_mib(root: int, cpu: dict[int, float]) -> float:
    """Summed VmRSS of `root` and all its descendants, from /proc; records each one's CPU seconds so
    far (user + system) in `cpu`."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu[pid] = max(cpu.get(pid, 0.0), (int(fields[11]) + int(fields[12])) / tick)
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total / 1024


def timed(args: list[str], timeout: float) -> tuple[float, float, float]:
    """(wall seconds, peak summed RSS MiB, CPU seconds) of one command, sampling its process tree every
    0.2 s (CPU a process used in its last 0.2 s before exiting is missed: a small undercount)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    peak = [0.0]
    cpu: dict[int, float] = {}

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_mib(proc.pid, cpu))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        sys.exit(f"{' '.join(args[2:6])}... still running after {timeout:.0f} s: stopped")
    wall = time.perf_counter() - started
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return wall, peak[0], sum(cpu.values())


def command(engine: str, task: str, path: Path, out: Path, models_dir: Path) -> list[str]:
    args = [
        sys.executable,
        "-m",
        "service.scoring",
        task,
        str(path),
        "-o",
        str(out),
        "--models-dir",
        str(models_dir),
        "-q",
    ]
    return args + (["--engine", "ray"] if engine == "ray" else [])


def write_parquet(jsonl: Path, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open(jsonl, "rb") as f, pq.ParquetWriter(path, pa.schema([("inputs", pa.list_(pa.int64()))])) as writer:
        for chunk in rows_mod.read_jsonl(f, LOCAL_CHUNK_ROWS):
            writer.write_table(pa.table({"inputs": pa.array(chunk.sequences, pa.list_(pa.int64()))}))


def stage_costs(task: str, models_dir: Path, path: Path, fmt: str, rows: int) -> dict[str, float]:
    """Microseconds of one core per row for reading, checking + model, and writing, on the first `rows`."""
    backend = LocalBackend.load(task, models_dir, workers=1)
    chunks = []
    started = time.process_time()
    with open(path, "rb") as f:
        if fmt == "parquet":
            from service.scoring.parquet import ParquetInput

            source = ParquetInput(f).chunks(LOCAL_CHUNK_ROWS)
        else:
            source = rows_mod.reader(fmt, f, LOCAL_CHUNK_ROWS)
        for chunk in source:
            chunks.append(chunk)
            if sum(map(len, chunks)) >= rows:
                break
    read = time.process_time() - started
    started = time.process_time()
    answers = [backend.answer(chunk) for chunk in chunks]
    model = time.process_time() - started
    started = time.process_time()
    if fmt == "parquet":
        import io

        from service.scoring.parquet import ParquetSink, output_schema

        sink = ParquetSink(io.BytesIO(), output_schema(backend.output, None, False, None))
        for chunk, answer in zip(chunks, answers):
            sink.write(chunk, answer)
        sink.close()
    else:
        write = rows_mod.writer(fmt)
        for chunk, answer in zip(chunks, answers):
            write(chunk, answer)
    written = time.process_time() - started
    backend.close()
    n = sum(map(len, chunks))
    return {"read": 1e6 * read / n, "model": 1e6 * model / n, "write": 1e6 * written / n}


def spread(values: list[float], fmt: str = ",.0f") -> str:
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}..{format(max(values), fmt)})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scenarios.ray_scoring", description=__doc__.split("\n")[0])
    p.add_argument("--task", default="echo-lag")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--formats", default="parquet,jsonl")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--models-dir", type=Path, default=Path(os.environ.get("TOYSEQ_MODELS_DIR", ROOT / "models")))
    p.add_argument("--timeout", type=float, default=1200.0, help="seconds at most for one command")
    args = p.parse_args(argv)
    models_dir = args.models_dir.resolve()
    manifest = load(models_dir / args.task)
    cores = len(os.sched_getaffinity(0))
    formats = args.formats.split(",")
    load_start = os.getloadavg()
    print(
        f"task {args.task}, {args.rows:,} rows, {cores} cores, {args.rounds} rounds; load average "
        f"{load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} at start"
    )
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="toyseq-ray-bench-") as tmp:
        tmp = Path(tmp)
        write_rows(tmp / "rows.jsonl", manifest, args.rows)
        write_rows(tmp / "tiny.jsonl", manifest, TINY)
        if "parquet" in formats:
            write_parquet(tmp / "rows.jsonl", tmp / "rows.parquet")
            write_parquet(tmp / "tiny.jsonl", tmp / "tiny.parquet")
        for fmt in formats:
            size = (tmp / f"rows.{fmt}").stat().st_size / 2**20
            print(f"\n== {fmt}: {size:.1f} MiB input")
            costs = stage_costs(args.task, models_dir, tmp / f"rows.{fmt}", fmt, min(args.rows, 100_000))
            print(
                f"one core, microseconds per row: read {costs['read']:.1f}, check + model {costs['model']:.1f}, "
                f"write {costs['write']:.1f}"
            )
            res = results[fmt] = {
                e: {"wall": [], "startup": [], "rate": [], "rss": [], "per_cpu": []} for e in ("local", "ray")
            }
            for round_no in range(args.rounds):
                order = ("local", "ray") if round_no % 2 == 0 else ("ray", "local")
                for engine in order:
                    n = len(os.listdir(tmp))
                    tiny, _, tiny_cpu = timed(
                        command(engine, args.task, tmp / f"tiny.{fmt}", tmp / f"o{n}t", models_dir), args.timeout
                    )
                    wall, rss, cpu = timed(
                        command(engine, args.task, tmp / f"rows.{fmt}", tmp / f"o{n}", models_dir), args.timeout
                    )
                    r = res[engine]
                    r["wall"].append(wall)
                    r["startup"].append(tiny)
                    r["rate"].append(args.rows / max(wall - tiny, 1e-9))
                    r["rss"].append(rss)
                    # too few rows to tell the run from its start-up: no figure rather than a wild one
                    r["per_cpu"].append(args.rows / (cpu - tiny_cpu) if cpu - tiny_cpu >= 1 else float("nan"))
                    print(
                        f"  round {round_no + 1} {engine:5}: {wall:6.1f} s, start-up {tiny:5.1f} s, "
                        f"{args.rows / max(wall - tiny, 1e-9):9,.0f} rows/s once started, "
                        f"{r['per_cpu'][-1]:7,.0f} rows per CPU-s once started ({cpu:.0f} CPU-s, start-up "
                        f"{tiny_cpu:.0f}), peak RSS {rss:6.0f} MiB, load {os.getloadavg()[0]:.2f}"
                    )
            for engine in ("local", "ray"):
                r = res[engine]
                print(
                    f"{engine:5} {fmt:7} rows/s once started {spread(r['rate'])}; whole run "
                    f"{spread([args.rows / w for w in r['wall']])} rows/s; start-up {spread(r['startup'], '.1f')} s; "
                    f"peak RSS {spread(r['rss'])} MiB; rows per CPU-s once started {spread(r['per_cpu'])}"
                )
            ratios = [ray / local for ray, local in zip(res["ray"]["rate"], res["local"]["rate"])]
            cpu_ratios = [ray / local for ray, local in zip(res["ray"]["per_cpu"], res["local"]["per_cpu"])]
            print(
                f"ray / local once started, by round: rows/s {', '.join(f'{x:.2f}' for x in ratios)}; "
                f"rows per CPU-s {', '.join(f'{x:.2f}' for x in cpu_ratios)} (goal >= {GOAL_RATIO})"
            )
            # A core of its own scores rows per CPU-second: on a shared machine wall-clock rates measure the
            # other tenants too, so the estimate scales the CPU-time rate.
            per_core = statistics.median(res["ray"]["per_cpu"])
            print(
                f"estimate, 100M rows of {fmt} ({size * 1e8 / args.rows / 1024:.1f} GiB) at the Ray engine's "
                f"{per_core:,.0f} rows per CPU-second, linear in cores (plus start-up, "
                f"~{statistics.median(res['ray']['startup']):.0f} s here):"
            )
            for nodes, node_cores in ((1, cores), (10, 16), (50, 16), (100, 16)):
                seconds = 1e8 / (nodes * node_cores * per_core)
                print(
                    f"  {nodes:3} node(s) x {node_cores:2} cores: {seconds / 60:7.1f} min "
                    f"({nodes * node_cores * per_core:,.0f} rows/s)"
                )
            total = sum(costs.values())
            print(
                f"  per core the time goes to: check + model {costs['model'] / total:.0%}, read {costs['read'] / total:.0%}, "
                f"write {costs['write'] / total:.0%}"
            )
    load_end = os.getloadavg()
    print(f"\nload average {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
