"""What one pod needs and serves: a gunicorn server as the Deployment runs it (TOYSEQ_WORKERS=2, THREADS=1,
every committed model), its memory when ready and after load (RSS and PSS, master + workers: PSS counts shared
pages once, as the pod's cgroup does), and the CPU it spends per request under wrk load, one echo-lag
sequence per request, native predict and v2 infer. CPU per request gives the requests/s one core serves,
which sizes the pod's CPU request and the HPA's target (docs/kubernetes.md).

    python -m benchmarks.pod [--seconds S] [--connections N]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import orjson

from tests.support.load import children
from tests.support.server import Server

from . import load
from .http import TASK, body, v2_body

TICKS = os.sysconf("SC_CLK_TCK")


def processes(server: Server) -> list[int]:
    return [server.proc.pid, *children(server.proc.pid)]


def memory(server: Server) -> dict:
    """MiB summed over the master and its workers."""
    rss = pss = 0
    for pid in processes(server):
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return {"rss_mib": round(rss / 1024, 1), "pss_mib": round(pss / 1024, 1), "processes": len(processes(server))}


def cpu_seconds(server: Server) -> float:
    total = 0
    for pid in processes(server):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def measure(server: Server, path: str, payload: bytes, seconds: float, connections: int) -> dict:
    load.run(server.url + path, payload, 1, connections)  # unmeasured warm-up
    before = cpu_seconds(server)
    result = load.run(server.url + path, payload, seconds, connections)
    used = cpu_seconds(server) - before
    cpu_ms = 1000 * used / max(result["requests"], 1)
    return {**result, "cpu_seconds": round(used, 2), "cpu_ms_per_request": round(cpu_ms, 3),
            "requests_per_core_s": round(1000 / cpu_ms) if cpu_ms else None}


def run(models_dir: Path, seconds: float, connections: int, log_dir: Path) -> dict:
    env = {"TOYSEQ_WORKERS": "2", "TOYSEQ_THREADS": "1", "TOYSEQ_LOG_LEVEL": "warning"}
    with Server(log_dir / "pod.log", env, models_dir) as server:
        ready = memory(server)
        native = measure(server, f"/tasks/{TASK}/predict", body(1), seconds, connections)
        v2 = measure(server, f"/v2/models/{TASK}/infer", v2_body(1), seconds, connections)
        loaded = memory(server)
    return {"workers": 2, "threads": 1, "connections": connections, "models": sorted(p.name for p in models_dir.iterdir()
                                                                                      if (p / "manifest.json").exists()),
            "memory_ready": ready, "memory_after_load": loaded, "native": native, "v2": v2,
            "cores": len(os.sched_getaffinity(0)), "load_average": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.pod", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--models", type=Path, default=Path("models"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.models.resolve(), args.seconds, args.connections, Path(tmp))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
