"""Train, export and evaluate toyseq's tasks.

    python -m training train [TASK ...] [--seed 0] [--jobs 2]   # all tasks when none is named
    python -m training evaluate [TASK ...] [--eval-seed N]      # re-measure the committed models
    python -m training evaluate TASK --record                   # ... and write the figures into its manifest

Exits 1 when a gate is not met (a model that fails is never written to models/), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from service.core import manifest as manifest_mod
from service.core.predictor import Predictor

from .catalog import TASKS
from .evaluation import DEFAULT_EVAL_SEED, DEFAULT_N, evaluate


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate}")
    helps = {
        "train": "train, export and gate-check tasks; write each model that passes to models/<task>/",
        "evaluate": "re-measure committed models on their task's evaluation suite (exit 1 if a gate fails)",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("tasks", nargs="*", metavar="TASK", help=f"any of: {', '.join(TASKS)} (default: all)")
        p.add_argument("--models-dir", type=Path, default=Path("models"))
        p.add_argument(
            "--eval-seed",
            type=int,
            default=DEFAULT_EVAL_SEED,
            help="seed of the held-out evaluation data (training never draws from it)",
        )
        p.add_argument("-n", type=int, default=DEFAULT_N, help="held-out sequences per gate")
    sub.choices["evaluate"].add_argument(
        "--record",
        action="store_true",
        help="write the measured suite into each model's manifest (a model whose suite changed but whose "
        "weights did not need not be retrained); the model file is untouched",
    )
    train = sub.choices["train"]
    train.add_argument("--seed", type=int, default=0, help="training seed: the same seed gives the same metrics")
    train.add_argument("--jobs", type=int, default=2, help="tasks trained side by side, one CPU thread each")
    args = parser.parse_args(argv)
    unknown = [t for t in args.tasks if t not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
    args.tasks = args.tasks or list(TASKS)
    return args


TRAINING_EXTRA = "pip install -e '.[training]'"


def report(task: str, gates: list[dict]) -> bool:
    for g in gates:
        report_gate(task, g)
    return all(g["passed"] for g in gates)


def report_gate(task: str, g: dict, seconds: float | None = None) -> None:
    mark = "ok  " if g["passed"] else "FAIL"
    metric = g["metric"] + (f" ({g['steps']} steps)" if g.get("steps") else "")
    took = f" {seconds:.1f} s" if seconds is not None else ""
    print(
        f"  {mark} {task:15s} {g.get('category', ''):32s} {metric:28s} {g['value']:<12.6g} "
        f"(gate {g['op']} {g['threshold']:g}, n={g['n']}, eval seed {g['eval_seed']}){took}",
        flush=True,
    )


def train(args) -> int:
    try:
        from .pipeline import train_task  # torch is imported only when training
    except ModuleNotFoundError as err:
        print(
            f"python -m training train needs {err.name}, which is not installed: install the training "
            f"extra with `{TRAINING_EXTRA}` (evaluate needs only the service's dependencies)",
            file=sys.stderr,
        )
        return 2

    jobs = max(1, min(args.jobs, len(args.tasks)))
    started = time.perf_counter()
    rows, failed = [], []
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        # costliest first, so no long task starts last and runs alone
        order = sorted(args.tasks, key=lambda t: -TASKS[t].work)
        futures = {
            pool.submit(train_task, TASKS[t], args.models_dir, args.seed, args.eval_seed, args.n, jobs == 1): t
            for t in order
        }
        print(
            f"training {len(order)} {_plural(len(order), 'task')}, {jobs} at a time (costliest first: "
            f"{', '.join(order)}); each is reported as it finishes",
            flush=True,
        )
        for future in as_completed(futures):
            name = futures[future]
            try:
                rows.append(future.result())
            except Exception as err:  # one task's failed export must not cost the others their report
                failed.append(name)
                print(f"{name}: failed, nothing written to models/: {type(err).__name__}: {err}", file=sys.stderr)
                continue
            print(
                f"{name}: {rows[-1]['steps']} steps in {rows[-1]['seconds']:.0f} s "
                f"({len(rows) + len(failed)} of {len(order)} done, {time.perf_counter() - started:.0f} s so far)",
                flush=True,
            )
    rows.sort(key=lambda row: order.index(row["task"]))
    ok = not failed
    for row in rows:
        ok &= report(row["task"], row["gates"])
        if not row["passed"]:
            print(
                f"{row['task']}: a gate was not met; the committed model is unchanged, the rejected one is in "
                f"{row['saved_to']}",
                file=sys.stderr,
            )
    print(f"trained {len(rows)} task(s) in {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


def evaluate_committed(args) -> int:
    """Each category's line as soon as it is measured (the whole run takes over a minute), then a summary."""
    ok = True
    started = time.perf_counter()
    categories = sum(len(TASKS[name].suite) for name in args.tasks)
    done = 0
    for name in args.tasks:
        predictor = Predictor.load(args.models_dir / name)
        print(f"{name}: {len(TASKS[name].suite)} categories from {args.models_dir / name}", flush=True)
        clock = [time.perf_counter()]

        def progress(gate: dict, task: str = name, clock: list[float] = clock) -> None:
            nonlocal done
            done += 1
            now = time.perf_counter()
            report_gate(task, gate, now - clock[0])
            clock[0] = now

        gates = evaluate(TASKS[name], predictor, args.eval_seed, args.n, progress=progress)
        ok &= all(g["passed"] for g in gates)
        if args.record:
            record(args.models_dir / name, gates)
    print(
        f"evaluated {len(args.tasks)} {_plural(len(args.tasks), 'task')} ({done} of {categories} categories) "
        f"in {time.perf_counter() - started:.0f} s: {'every gate met' if ok else 'a gate was NOT met'}",
        flush=True,
    )
    return 0 if ok else 1


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else noun + "s"


def record(folder: Path, gates: list[dict]) -> None:
    """Replace the manifest's gates by `gates`, measured on its unchanged model."""
    path = folder / manifest_mod.MANIFEST_FILE
    manifest = json.loads(path.read_text())
    task = TASKS[manifest["task"]]
    if (manifest["encoder"], manifest["decoder"]) != (task.encoder, task.decoder):
        raise SystemExit(f"{manifest['task']}: the catalog's encoder or decoder differs from the model's: retrain it")
    manifest["gates"] = gates
    manifest["domain"] = task.domain  # declared by the catalog, as a retrained model's would be
    manifest["input"].pop("evaluated_on", None)
    manifest_mod.validate(manifest)
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    return train(args) if args.command == "train" else evaluate_committed(args)


if __name__ == "__main__":
    sys.exit(main())
