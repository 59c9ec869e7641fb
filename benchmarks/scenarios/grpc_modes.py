"""toyseq's gRPC server run two ways, side by side in alternating rounds: "sync" (grpc.server, a thread pool)
and "aio" (grpc.aio on an event loop in its own thread) — TOYSEQ_GRPC_MODE — both in every gunicorn worker
beside HTTP, loaded by h2load (benchmarks/harness/h2load.py: 8 connections, one call in flight on each) with
echo-lag ModelInfer calls of 1 and of 100 sequences in raw_input_contents.

    python -m benchmarks.scenarios.grpc_modes [--rounds 3] [--seconds 5] [--modes sync,aio,loop,rest]

"loop" is grpc.aio on the loop worker's own event loop (TOYSEQ_GRPC_MODE=loop, grpc/on_loop.py); "rest" is not a gRPC
mode but the same server's REST predict of the same rows under wrk (8 connections), for gRPC's ratio to REST.

Prints requests/s and p50/p99 per mode and the aio/sync ratio (median of the rounds). Needs h2load
(apt-get install -y nghttp2-client).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import orjson

from benchmarks.harness import h2load, wrk
from benchmarks.harness.paths import MODELS_DIR
from benchmarks.harness.server import Server

TASK, LENGTH, CONNECTIONS, MODES = "echo-lag", 10, 8, ("sync", "aio", "loop")


def infer_message(task: str, rows: list[list[int]]) -> bytes:
    """A serialized ModelInferRequest as tritonclient.grpc sends it: the input in raw_input_contents."""
    from service.server.grpc.generated import grpc_service_pb2 as pb

    array = np.array(rows, dtype="<i8")
    request = pb.ModelInferRequest(model_name=task, raw_input_contents=[array.tobytes()])
    request.inputs.add(name="input", datatype="INT64", shape=list(array.shape))
    return request.SerializeToString()


def rows(count: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randint(0, 99) for _ in range(LENGTH)] for _ in range(count)]


def check(target: str, message: bytes, count: int) -> None:
    """One real call first: h2load sees HTTP statuses only."""
    import grpc

    from service.server.grpc.generated import grpc_service_pb2 as pb

    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            h2load.INFER_PATH, request_serializer=None, response_deserializer=pb.ModelInferResponse.FromString
        )
        answer = call(message, timeout=30)
        if answer.outputs[0].shape[0] != count:
            raise RuntimeError(f"unexpected answer {answer}")


def measure(mode: str, seconds: float, scratch: Path) -> dict:
    env = {"TOYSEQ_GRPC_MODE": "sync" if mode == "rest" else mode, "TOYSEQ_LOG_LEVEL": "warning"}
    with Server(scratch / f"{mode}.log", env, MODELS_DIR, grpc=mode != "rest") as server:
        result = {}
        if mode == "rest":
            for key, count in (("one", 1), ("hundred", 100)):
                body = orjson.dumps({"inputs": rows(count, count)})
                url = f"{server.url}/tasks/{TASK}/predict"
                wrk.run(url, body, 1, CONNECTIONS)  # unmeasured warm-up
                result[key] = wrk.run(url, body, seconds, CONNECTIONS)
            return result
        assert server.grpc_target is not None
        for key, count in (("one", 1), ("hundred", 100)):
            message = infer_message(TASK, rows(count, count))
            check(server.grpc_target, message, count)
            h2load.run(server.grpc_target, message, 1, CONNECTIONS)  # unmeasured warm-up
            result[key] = h2load.run(server.grpc_target, message, seconds, CONNECTIONS)
        return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scenarios.grpc_modes", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated: sync, aio, loop, rest")
    args = p.parse_args(argv)
    modes = tuple(args.modes.split(","))
    if not h2load.available():
        p.error("h2load is not installed (apt-get install -y nghttp2-client)")
    rounds = []
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="toyseq-grpc-modes-") as tmp:
        for index in range(args.rounds):
            order = modes[index % len(modes) :] + modes[: index % len(modes)]
            rounds.append({mode: measure(mode, args.seconds, Path(tmp)) for mode in order})
            print(f"[grpc_modes] round {index + 1}/{args.rounds} (load {os.getloadavg()[0]:.2f})", file=sys.stderr)
    print(f"{TASK}, h2load {CONNECTIONS} connections, {args.rounds} rounds of {args.seconds:g} s, 2 workers")
    print("| mode | 1 seq req/s | p50 / p99 ms | 100 seq req/s | p50 / p99 ms |\n|---|---|---|---|---|")
    for mode in modes:

        def med(key, field, mode=mode):
            return statistics.median(r[mode][key][field] for r in rounds)

        print(
            f"| {mode} | {med('one', 'requests_per_s'):,.0f} | {med('one', 'p50_ms'):.2f} / {med('one', 'p99_ms'):.2f} "
            f"| {med('hundred', 'requests_per_s'):,.0f} | {med('hundred', 'p50_ms'):.2f} / {med('hundred', 'p99_ms'):.2f} |"
        )
    for mode in modes[1:]:
        for key in ("one", "hundred"):
            per_round = [r[mode][key]["requests_per_s"] / r[modes[0]][key]["requests_per_s"] for r in rounds]
            print(
                f"{mode} / {modes[0]}, {key} sequence(s) per request: {statistics.median(per_round):.2f}x "
                f"({min(per_round):.2f}-{max(per_round):.2f})"
            )
    print(f"load average {load_start:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
