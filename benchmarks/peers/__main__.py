"""toyseq against its peers, serving the same committed model with the same encode/decode (service.core)
and the same process and thread counts: MLServer, KServe's model server and BentoML (each installed,
pinned, in its own virtualenv under ~/.cache/toyseq-peers), with the bare Flask floor under toyseq's own
gunicorn config and worker class.

    python -m benchmarks.peers [--rounds 3] [--seconds 5] [--only toyseq,granian,kserve,raw-floor,...] [--toyseq-env K=V ...]

Each round starts every server in turn (the order rotates from round to round), measures its cold start
(process start to the first right answer), checks its answers against service.core's Predictor, reads its
idle memory, then loads it with wrk (8 connections; one unmeasured second first) at 1 and at 100 sequences
per request, sampling memory under load, and stops it. Only one server runs at a time. Ratios are taken
within a round and their median (and spread) reported; the machine's load average is recorded beside them.
Writes peers.json and peers.png under --out. Needs wrk (apt-get install -y wrk) and the training extra
(matplotlib); the first run installs the peers (a few minutes).

"kserve" is KServe's V1 REST path with the handler a KServe user writes (np.asarray, one check, session.run,
argmax, tolist); "kserve-codec" the same path through toyseq's codec. "granian" is toyseq's own app
(service:create_app()) under Granian's WSGI server (2 workers, 1 blocking thread each), against which toyseq's own
worker is measured; "raw-floor" a no-framework httptools + uvloop server making the same model call.

toyseq-grpc and kserve-grpc are toyseq's and KServe's gRPC servers (inference.GRPCInferenceService) serving the
same model, called with the same ModelInferRequest (raw_input_contents) and loaded the same way, by h2load
(benchmarks/harness/h2load.py: 8 HTTP/2 connections, one call in flight on each; apt-get install -y nghttp2-client);
their ratios are toyseq-grpc against kserve-grpc and against toyseq's own REST.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

from benchmarks.harness import h2load, wrk
from benchmarks.harness.paths import MODELS_DIR
from service.core.predictor import Predictor

from . import envs, report
from .servers import Running, specs

TASK, LENGTH, BIG = "echo-lag", 10, 100
CONNECTIONS = 8
SERVERS = (
    "toyseq",
    "floor",
    "raw-floor",
    "granian",
    "kserve",
    "kserve-codec",
    "kserve-v2",
    "mlserver",
    "bentoml",
    "toyseq-grpc",
    "kserve-grpc",
)
PEERS = ("granian", "kserve", "kserve-codec", "kserve-v2", "mlserver", "bentoml", "kserve-grpc")
# peers served from another peer's virtualenv
VENVS = {"kserve-codec": "kserve", "kserve-v2": "kserve", "kserve-grpc": "kserve"}
GRPC = ("toyseq-grpc", "kserve-grpc")  # loaded over gRPC by h2load; compared with each other and toyseq's REST
GOALS = {  # toyseq / peer (or floor), from the issues (issue 30: KServe's users' handler, Granian, the raw floor)
    "one": {"kserve": 1.5, "granian": 1.1, "mlserver": 2.0, "bentoml": 2.0, "floor": 0.9},
    "hundred": {"kserve": 1.2, "granian": 1.1, "raw-floor": 0.8, "mlserver": 2.0, "bentoml": 2.0},
    "p99": ("kserve",),  # toyseq's p99 at most the peer's, at 1 and at 100 sequences
    "cold_start": 0.3,  # toyseq / peer at most
    "idle_rss": 0.5,
    # toyseq-grpc / other at least (issues 22, 30): KServe's gRPC side by side, and toyseq's own REST
    "grpc_one": {"kserve-grpc": 1.5, "toyseq": 1.0},
}


def inputs(count: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randint(0, 99) for _ in range(LENGTH)] for _ in range(count)]


class Sampler:
    """The largest memory reading of a server while a load runs (every 0.25 s)."""

    def __init__(self, server: Running):
        self.server, self.peak, self.stop = server, {"rss_mib": 0.0, "pss_mib": 0.0}, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(0.25):
            now = self.server.memory()
            for key in self.peak:
                self.peak[key] = max(self.peak[key], now[key])

    def finish(self) -> dict:
        self.stop.set()
        self.thread.join(5)
        return self.peak


def measure(name: str, spec, scratch: Path, seconds: float, expected: dict, bodies: dict) -> dict:
    server = Running(spec, scratch / name, scratch / f"{name}.log")
    try:
        one_in, big_in = bodies["one"][0], bodies["hundred"][0]
        check = (lambda data: True) if spec.outputs is None else (lambda data: spec.outputs(data) == expected["one"])
        cold = server.wait_answer(spec.body(one_in), check)
        if spec.outputs is not None:  # the answers first: a peer that answers wrong is not measured
            status, data = server.post(spec.body(big_in))
            got = spec.outputs(data) if status == 200 else None
            if got != expected["hundred"]:
                raise RuntimeError(f"{name} answered {status} {data[:300]!r}, not service.core's answers")
        time.sleep(2)
        idle = server.memory()
        result = {"cold_start_s": cold, "idle": idle, "load_average": os.getloadavg()[0]}
        sampler = Sampler(server)

        def run_load(body: bytes, duration: float) -> dict:
            if spec.grpc:
                return h2load.run(server.grpc_target, body, duration, CONNECTIONS, path=spec.path)
            return wrk.run(server.url, body, duration, CONNECTIONS)

        try:
            run_load(spec.body(one_in), 1)  # unmeasured warm-up
            for key, body_in in (("one", one_in), ("hundred", big_in)):
                cpu = server.cpu_seconds()
                result[key] = run_load(spec.body(body_in), seconds)
                # CPU the server's processes spent per answer: steadier than requests/s on a shared machine
                done = max(1, result[key]["requests"])
                result[key]["cpu_us_per_request"] = (server.cpu_seconds() - cpu) / done * 1e6
        finally:
            result["loaded"] = sampler.finish()
        return result
    except Exception as err:
        raise RuntimeError(f"{name}: {err}\n--- its log:\n{server.tail()}") from None
    finally:
        server.stop()


def ratios(rounds: list[dict], value, a: str, b: str) -> dict:
    """value(round result of one server) for a / b, per round; median, min and max."""
    per_round = [value(r[a]) / value(r[b]) if value(r[b]) else float("inf") for r in rounds if a in r and b in r]
    return {"median": statistics.median(per_round), "min": min(per_round), "max": max(per_round), "rounds": per_round}


def summarize(rounds: list[dict], names: list[str]) -> dict:
    def med(name, value):
        return statistics.median(value(r[name]) for r in rounds)

    servers = {}
    for name in names:
        servers[name] = {
            "one_rps": med(name, lambda x: x["one"]["requests_per_s"]),
            # the spread of the rounds, and the load average each round of this server started at
            "one_rps_range": [
                min(r[name]["one"]["requests_per_s"] for r in rounds),
                max(r[name]["one"]["requests_per_s"] for r in rounds),
            ],
            "hundred_rps_range": [
                min(r[name]["hundred"]["requests_per_s"] for r in rounds),
                max(r[name]["hundred"]["requests_per_s"] for r in rounds),
            ],
            "load_averages": [round(r[name]["load_average"], 2) for r in rounds],
            "one_p50_ms": med(name, lambda x: x["one"]["p50_ms"]),
            "one_p99_ms": med(name, lambda x: x["one"]["p99_ms"]),
            "one_cpu_us": med(name, lambda x: x["one"]["cpu_us_per_request"]),
            "hundred_cpu_us": med(name, lambda x: x["hundred"]["cpu_us_per_request"]),
            "hundred_rps": med(name, lambda x: x["hundred"]["requests_per_s"]),
            "hundred_p50_ms": med(name, lambda x: x["hundred"]["p50_ms"]),
            "hundred_p99_ms": med(name, lambda x: x["hundred"]["p99_ms"]),
            "cold_start_s": med(name, lambda x: x["cold_start_s"]),
            "idle_rss_mib": med(name, lambda x: x["idle"]["rss_mib"]),
            "idle_pss_mib": med(name, lambda x: x["idle"]["pss_mib"]),
            "loaded_rss_mib": med(name, lambda x: x["loaded"]["rss_mib"]),
            "loaded_pss_mib": med(name, lambda x: x["loaded"]["pss_mib"]),
            "processes": rounds[0][name]["idle"]["processes"],
            "errors": sum(x[name][k]["errors"] + x[name][k]["non_2xx"] for x in rounds for k in ("one", "hundred")),
        }
    out = {"servers": servers, "ratios": {}, "grpc_ratios": {}, "goals": []}
    if "toyseq-grpc" in names:
        for other in (n for n in ("kserve-grpc", "toyseq") if n in names):
            r = out["grpc_ratios"][other] = {
                "one_rps": ratios(rounds, lambda x: x["one"]["requests_per_s"], "toyseq-grpc", other),
                "hundred_rps": ratios(rounds, lambda x: x["hundred"]["requests_per_s"], "toyseq-grpc", other),
                "one_cpu": ratios(rounds, lambda x: x["one"]["cpu_us_per_request"], "toyseq-grpc", other),
            }
            goal = GOALS["grpc_one"][other]
            out["goals"].append(
                {
                    "what": f"gRPC 1 seq/request vs {other}",
                    "ratio": r["one_rps"]["median"],
                    "goal": f">= {goal}x",
                    "met": r["one_rps"]["median"] >= goal,
                }
            )
    if "toyseq" not in names:
        return out
    for other in (n for n in names if n != "toyseq" and n not in GRPC):
        r = out["ratios"][other] = {
            "one_rps": ratios(rounds, lambda x: x["one"]["requests_per_s"], "toyseq", other),
            "one_p99": ratios(rounds, lambda x: x["one"]["p99_ms"], "toyseq", other),
            "hundred_p99": ratios(rounds, lambda x: x["hundred"]["p99_ms"], "toyseq", other),
            "one_cpu": ratios(rounds, lambda x: x["one"]["cpu_us_per_request"], "toyseq", other),
            "hundred_cpu": ratios(rounds, lambda x: x["hundred"]["cpu_us_per_request"], "toyseq", other),
            "hundred_rps": ratios(rounds, lambda x: x["hundred"]["requests_per_s"], "toyseq", other),
            "cold_start": ratios(rounds, lambda x: x["cold_start_s"], "toyseq", other),
            "idle_rss": ratios(rounds, lambda x: x["idle"]["rss_mib"], "toyseq", other),
            "loaded_rss": ratios(rounds, lambda x: x["loaded"]["rss_mib"], "toyseq", other),
        }
        for key, kind in (("one", "one_rps"), ("hundred", "hundred_rps")):
            goal = GOALS[key].get(other)
            if goal:
                out["goals"].append(
                    {
                        "what": f"{key} seq/request vs {other}",
                        "ratio": r[kind]["median"],
                        "goal": f">= {goal}x",
                        "met": r[kind]["median"] >= goal,
                    }
                )
        if other in GOALS["p99"]:
            for key in ("one", "hundred"):
                ratio = r[f"{key}_p99"]["median"]
                out["goals"].append(
                    {
                        "what": f"{key} seq/request p99 vs {other}",
                        "ratio": ratio,
                        "goal": "<= 1.0x",
                        "met": ratio <= 1.0,
                    }
                )
        if other in PEERS and other not in VENVS and other != "granian":  # granian serves toyseq itself
            for key in ("cold_start", "idle_rss"):
                out["goals"].append(
                    {
                        "what": f"{key} vs {other}",
                        "ratio": r[key]["median"],
                        "goal": f"<= {GOALS[key]}x",
                        "met": r[key]["median"] <= GOALS[key],
                    }
                )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5, help="per wrk run")
    p.add_argument("--only", default=",".join(SERVERS), help=f"comma-separated subset of {','.join(SERVERS)}")
    p.add_argument("--workers", type=int, default=2, help="serving processes per server")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads per process")
    p.add_argument(
        "--toyseq-env",
        nargs="*",
        default=[],
        metavar="K=V",
        help="settings for toyseq (and for its app under granian), e.g. TOYSEQ_LOG_LEVEL=warning to turn its access lines off like the peers'",
    )
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results" / "peers")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(SERVERS)
    if unknown:
        p.error(f"unknown servers {sorted(unknown)}; choose from {','.join(SERVERS)}")
    if any(n not in GRPC for n in names) and not wrk.available():
        p.error("wrk is not installed (apt-get install -y wrk)")
    if any(n in GRPC for n in names) and not h2load.available():
        p.error("h2load is not installed (apt-get install -y nghttp2-client)")
    peers = sorted({VENVS.get(n, n) for n in names if n in PEERS})
    if peers:
        envs.install_all(peers, log=lambda m: print(m, file=sys.stderr, flush=True))

    started_load = os.getloadavg()
    rounds: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="toyseq-peers-") as tmp:
        scratch = Path(tmp)
        models_dir = scratch / "models"  # the one task only, for every server alike
        shutil.copytree(MODELS_DIR / TASK, models_dir / TASK)
        predictor = Predictor.load(models_dir / TASK)
        bodies = {"one": (inputs(1, 1),), "hundred": (inputs(BIG, 2),)}
        expected = {key: predictor.predict(predictor.codec.check(b[0]))["outputs"] for key, b in bodies.items()}
        all_specs = specs(
            TASK, models_dir, args.workers, args.threads, dict(kv.split("=", 1) for kv in args.toyseq_env)
        )
        for index in range(args.rounds):
            order = names[index % len(names) :] + names[: index % len(names)]
            result = {"order": order}
            for name in order:
                print(
                    f"[peers] round {index + 1}/{args.rounds}: {name} (load {os.getloadavg()[0]:.2f})",
                    file=sys.stderr,
                    flush=True,
                )
                result[name] = measure(name, all_specs[name], scratch / f"r{index}", args.seconds, expected, bodies)
            rounds.append(result)
    results = {
        "task": TASK,
        "length": LENGTH,
        "sequences": {"one": 1, "hundred": BIG},
        "connections": CONNECTIONS,
        "workers": args.workers,
        "onnxruntime_threads": args.threads,
        "seconds_per_run": args.seconds,
        "worker_class": os.environ.get("TOYSEQ_WORKER_CLASS", "loop"),
        "versions": {name: envs.PEERS[name][0] for name in peers},
        "machine": {
            "cores": os.cpu_count(),
            "load_average_start": started_load,
            "load_average_end": os.getloadavg(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "command": "python -m benchmarks.peers " + " ".join(argv if argv is not None else sys.argv[1:]),
        "rounds": rounds,
        **summarize(rounds, names),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peers.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    report.chart(results, args.out / "peers.png")
    print(report.table(results))
    print(f"\nresults: {args.out / 'peers.json'}  chart: {args.out / 'peers.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
