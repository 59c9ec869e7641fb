"""Did a change cost the request check speed? The native JSON path's check of one body, two revisions in one
process, rounds alternating, so that the machine's load falls on both alike (CPU time, best round).

    python -m benchmarks.scenarios.check --before REV [--rows 100] [--task arith-next] [--rounds 15]

The `before` revision's service/ is exported with `git archive` and imported as a package of another name;
the `after` side is this tree. Each side loads the task's model from its own tree's models/ and answers the
same body; the answers must be equal. Three figures per side, in microseconds per request:
    parse        orjson.loads + parse_predict (the body's check into arrays)
    parse+batch  and the Batch the predictor feeds onnxruntime (what the check's arrays cost downstream)
    end to end   and the prediction itself
    v2 binary    openinference.parse_infer of the same rows as one INT64 binary tensor (tritonclient's default)
"""

from __future__ import annotations

import argparse
import importlib
import random
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import orjson

from benchmarks.harness.paths import ROOT

BEFORE_PACKAGE = "service_before"


def export(rev: str, dest: Path) -> Path:
    """The revision's service/ and models/<task> as dest/service_before and dest/models."""
    archive = subprocess.run(["git", "archive", rev, "service", "models"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    (dest / "service").rename(dest / BEFORE_PACKAGE)
    return dest


def side(package: str, models: Path, task: str):
    predictor_mod = importlib.import_module(f"{package}.core.predictor")
    parsing = _module(package, "protocol.checks", "parsing")
    registry = _module(package, "store.registry", "registry")
    oip = _module(package, "protocol.v2", "openinference")
    predictor = predictor_mod.Predictor.load(models / task)
    limits = registry.Limits(max_batch=100_000, max_steps=1000, max_top_k=0, max_rollout_values=10_000_000)
    return predictor_mod, parsing, oip, predictor, limits


def _module(package: str, name: str, before_layers: str):
    """A server module of either layout: the layered one, or the flat one revisions before it had."""
    try:
        return importlib.import_module(f"{package}.server.{name}")
    except ModuleNotFoundError:
        return importlib.import_module(f"{package}.server.{before_layers}")


def binary_request(raw: bytes) -> tuple[bytes, bytes]:
    """The rows of a native body as a v2 request with one INT64 binary tensor: (JSON part, binary part)."""
    rows = orjson.loads(raw)["inputs"]
    data = b"".join(int(v).to_bytes(8, "little", signed=True) for row in rows for v in row)
    tensor = {"name": "input", "datatype": "INT64", "shape": [len(rows), len(rows[0])]}
    header = {"inputs": [{**tensor, "parameters": {"binary_data_size": len(data)}}]}
    return orjson.dumps(header), data


def body(task_rows: int, seed: int = 0) -> bytes:
    """Progressions of 7 integers (arith-next's window), clean, at varied starts and steps."""
    rng = random.Random(seed)
    starts = ((rng.randint(-1000, 1000), rng.randint(-50, 50)) for _ in range(task_rows))
    return orjson.dumps({"inputs": [[a + d * i for i in range(7)] for a, d in starts]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="git revision to compare with (e.g. main)")
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--task", default="arith-next")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    raw = body(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        before_root = export(args.before, Path(tmp))
        sys.path.insert(0, str(before_root))
        sys.path.insert(0, str(ROOT))  # this tree's service/, whatever is installed
        sides = {
            "before": side(BEFORE_PACKAGE, before_root / "models", args.task),
            "after": side("service", ROOT / "models", args.task),
        }
        cases = {}
        header, data = binary_request(raw)
        for label, (predictor_mod, parsing, oip, predictor, limits) in sides.items():

            def parse(parsing=parsing, p=predictor, limits=limits):
                return parsing.parse_predict(p, orjson.loads(raw), limits)

            cases[label, "parse"] = parse
            cases[label, "parse+batch"] = lambda parse=parse, m=predictor_mod: m._batch(parse()[0])
            cases[label, "end to end"] = lambda parse=parse, p=predictor: p.predict(parse()[0])
            model = oip.Model(predictor, limits)
            cases[label, "v2 binary"] = lambda oip=oip, model=model: oip.parse_infer(model, header, data)
        if cases["before", "end to end"]() != cases["after", "end to end"]():
            print("the two revisions answer differently", file=sys.stderr)
            return 1
        best = dict.fromkeys(cases, float("inf"))
        for _ in range(args.rounds):
            for key, call in cases.items():
                number = 20 if key[1] == "end to end" else 300
                seconds = timeit.timeit(call, number=number, timer=time.process_time) / number
                best[key] = min(best[key], seconds * 1e6)
    print(f"{args.task}, {args.rows} sequences, CPU microseconds per request (best of {args.rounds} rounds)")
    for what in ("parse", "parse+batch", "end to end", "v2 binary"):
        b, a = best["before", what], best["after", what]
        print(f"  {what:12s} before {b:9.1f}  after {a:9.1f}  after/before {a / b:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
