"""gRPC load from `h2load` (Debian package `nghttp2-client`, the nghttp2 project's HTTP/2 load generator, in C
like wrk): one fixed unary call, its protobuf message framed as gRPC frames it, sent over N HTTP/2 connections
with one call in flight on each: the same shape as wrk's N keep-alive connections on the REST side.

h2load reads HTTP statuses, not gRPC's (a failed call is HTTP 200 with a grpc-status trailer), so callers check
the answer first with a real gRPC client; the latency percentiles come from h2load's per-request log."""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")
INFER_PATH = "/inference.GRPCInferenceService/ModelInfer"


def available() -> bool:
    return shutil.which("h2load") is not None


def frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: not compressed, 4-byte big-endian length, the protobuf bytes."""
    return b"\0" + len(message).to_bytes(4, "big") + message


def run(
    target: str, message: bytes, seconds: float, connections: int = 8, threads: int = 2, path: str = INFER_PATH
) -> dict:
    """requests/s, p50/p99 in ms and error counts (as benchmarks.harness.wrk.run) for `message` sent to host:port."""
    if not available():
        raise RuntimeError("h2load is not installed (apt-get install -y nghttp2-client)")
    with tempfile.TemporaryDirectory(prefix="toyseq-h2load-") as tmp:
        body, log = Path(tmp) / "call.bin", Path(tmp) / "requests.log"
        body.write_bytes(frame(message))
        headers = [arg for header in GRPC_HEADERS for arg in ("-H", header)]
        done = subprocess.run(
            [
                "h2load",
                "-c",
                str(connections),
                "-t",
                str(min(threads, connections)),
                "-m",
                "1",
                "-D",
                str(max(1, round(seconds))),
                "-d",
                str(body),
                "--log-file",
                str(log),
                *headers,
                f"http://{target}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
        durations = sorted(int(line.split("\t")[2]) for line in log.read_text().splitlines() if line.count("\t") >= 2)
    counts = re.search(
        r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout",
        done.stdout,
    )
    finished = re.search(r"finished in ([\d.]+)s", done.stdout)
    if done.returncode != 0 or counts is None or finished is None:
        raise RuntimeError(f"h2load failed ({done.returncode}): {done.stdout[-1500:]} {done.stderr[-1500:]}")
    succeeded, failed, errored, timeouts = (int(counts.group(i)) for i in (3, 4, 5, 6))
    seconds_run = float(finished.group(1))
    # No call finished in time (a server's first calls can take longer than a smoke run's second): 0 req/s.
    durations = durations or [0]
    quantiles = statistics.quantiles(durations, n=100) if len(durations) > 1 else durations * 99
    return {
        "requests": succeeded,
        "seconds": round(seconds_run, 3),
        "requests_per_s": succeeded / seconds_run,
        "p50_ms": quantiles[49] / 1000,
        "p99_ms": quantiles[98] / 1000,
        "errors": errored + timeouts,
        "non_2xx": failed,
    }
