"""Where a worker's time goes under load: py-spy samples one gunicorn worker while wrk sends echo-lag
requests, and the samples are summed per function (inclusive) and per thread role.

    pip install py-spy==0.4.3
    python -m benchmarks.scenarios.profile [toyseq|floor] [--sequences 1] [--seconds 8]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.harness import wrk
from benchmarks.harness.load import children
from benchmarks.harness.server import FLOOR_APP, TOYSEQ_APP, Server

from .http import body


def summarize(raw: Path, top: int) -> str:
    inclusive, leaves, roles, total = collections.Counter(), collections.Counter(), collections.Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        count, frames = int(count), stack.split(";")
        total += count
        names = [f.split(" (")[0] for f in frames]
        leaves[names[-1]] += count
        if "Front._pool_thread" in names:  # the loop worker (service/server/loop/)
            roles["loop worker: pool threads (requests moved off the loop)"] += count
        elif "LoopWorker.run" in names:
            roles["loop worker: event loop (accept, framing, inline requests, answers)"] += count
        elif "ThreadWorker.handle" in names:
            roles["request threads"] += count
        elif any(n.endswith("wait_for_and_dispatch_events") or n == "ThreadWorker.run" for n in names):
            roles["main loop (accept, receive, keep-alive)"] += count
        elif any("flush" in n or n == "_loop" for n in names):
            roles["flushing thread (access log, metrics)"] += count
        else:
            roles["other"] += count
        for name in set(names):
            inclusive[name] += count
    lines = [f"{total} samples (threads not idle)", "by thread:"]
    lines += [f"  {v / total:6.1%}  {k}" for k, v in roles.most_common()]
    lines += ["functions, inclusive:"]
    lines += [f"  {v / total:6.1%}  {k}" for k, v in inclusive.most_common(top)]
    lines += ["functions, self (the frame on top when sampled):"]
    lines += [f"  {v / total:6.1%}  {k}" for k, v in leaves.most_common(top // 2)]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scenarios.profile", description=__doc__.split("\n")[0])
    p.add_argument("app", choices=("toyseq", "floor"), nargs="?", default="toyseq")
    p.add_argument("--sequences", type=int, default=1)
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--top", type=int, default=40)
    args = p.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.txt"
        with Server(Path(tmp) / "server.log", app=TOYSEQ_APP if args.app == "toyseq" else FLOOR_APP) as server:
            time.sleep(2)  # both workers up
            pid = children(server.proc.pid)[0]
            result = {}
            loader = threading.Thread(
                target=lambda: result.update(
                    wrk.run(server.url + "/tasks/echo-lag/predict", body(args.sequences), args.seconds + 3, 8)
                )
            )
            loader.start()
            time.sleep(1)
            subprocess.run(
                [
                    spy,
                    "record",
                    "-p",
                    str(pid),
                    "-d",
                    str(args.seconds),
                    "-r",
                    "200",
                    "-f",
                    "raw",
                    "-o",
                    str(raw),
                    "--nonblocking",
                ],
                check=True,
                capture_output=True,
            )
            loader.join()
        print(f"{args.app}, {args.sequences} sequence(s)/request: {result.get('requests_per_s', 0):,.0f} req/s")
        print(summarize(raw, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
