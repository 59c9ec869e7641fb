"""What one pod needs and serves: a gunicorn server as the Deployment runs it (TOYSEQ_WORKERS=2, THREADS=1,
every committed model), its memory when ready and after load (RSS and PSS, master + workers: PSS counts shared
pages once, as the pod's cgroup does), and the CPU it spends per request under wrk load, one echo-lag
sequence per request, native predict and v2 infer in alternating rounds (A B A B, so that the machine's
drifting load hits both alike). CPU per request gives the requests/s one core serves, which sizes the pod's
CPU request and the HPA's target (docs/kubernetes.md).

    python -m benchmarks.scenarios.pod [--rounds N] [--seconds S] [--connections N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import orjson

from benchmarks.harness import wrk
from benchmarks.harness.load import children, memory_mib
from benchmarks.harness.server import Server

from .http import TASK, body, v2_body

TICKS = os.sysconf("SC_CLK_TCK")


def processes(server: Server) -> list[int]:
    return [server.proc.pid, *children(server.proc.pid)]


def memory(server: Server) -> dict:
    """MiB summed over the master and its workers."""
    return memory_mib(processes(server))


def cpu_seconds(server: Server) -> float:
    total = 0
    for pid in processes(server):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def measure(server: Server, path: str, payload: bytes, seconds: float, connections: int) -> dict:
    before = cpu_seconds(server)
    result = wrk.run(server.url + path, payload, seconds, connections)
    return {**result, "cpu_seconds": cpu_seconds(server) - before}


def combine(runs: list[dict]) -> dict:
    requests, seconds = sum(r["requests"] for r in runs), sum(r["seconds"] for r in runs)
    cpu = sum(r["cpu_seconds"] for r in runs)
    cpu_ms = 1000 * cpu / max(requests, 1)
    return {
        "requests": requests,
        "requests_per_s": round(requests / seconds, 1),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "errors": sum(r["errors"] + r["non_2xx"] for r in runs),
        "cpu_seconds": round(cpu, 2),
        "cpu_ms_per_request": round(cpu_ms, 3),
        "requests_per_core_s": round(1000 / cpu_ms) if cpu_ms else None,
        "rounds_requests_per_s": [round(r["requests_per_s"]) for r in runs],
    }


def run(models_dir: Path, rounds: int, seconds: float, connections: int, log_dir: Path) -> dict:
    env = {"TOYSEQ_WORKERS": "2", "TOYSEQ_THREADS": "1", "TOYSEQ_LOG_LEVEL": "warning"}
    paths = {"native": (f"/tasks/{TASK}/predict", body(1)), "v2": (f"/v2/models/{TASK}/infer", v2_body(1))}
    runs: dict[str, list] = {"native": [], "v2": []}
    with Server(log_dir / "pod.log", env, models_dir) as server:
        ready = memory(server)
        for path, payload in paths.values():  # unmeasured warm-up
            wrk.run(server.url + path, payload, 1, connections)
        for _ in range(rounds):
            for name, (path, payload) in paths.items():
                runs[name].append(measure(server, path, payload, seconds, connections))
        loaded = memory(server)
    native, v2 = combine(runs["native"]), combine(runs["v2"])
    return {
        "workers": 2,
        "threads": 1,
        "connections": connections,
        "rounds": rounds,
        "seconds": seconds,
        "models": sorted(p.name for p in models_dir.iterdir() if (p / "manifest.json").exists()),
        "memory_ready": ready,
        "memory_after_load": loaded,
        "native": native,
        "v2": v2,
        "cores": len(os.sched_getaffinity(0)),
        "load_average": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scenarios.pod", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--models", type=Path, default=Path("models"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.models.resolve(), args.rounds, args.seconds, args.connections, Path(tmp))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
