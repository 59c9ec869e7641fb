"""How sure a classifier is on every input of its domain, for variants of its catalog recipe:

    python -m training.experiments.margins [--task sum-first-two] [--steps N] [--batch N] [--head N] [--seed 0]

Trains the task's catalog recipe with the given changes (one CPU thread, like `python -m training train`),
then scores every input of the task's fixed-length domain with the torch model and prints how many are
answered wrong and how many right by a margin (right class's logit minus the best other) under 1 and 2:
a model whose margins crowd near zero is one retrain away from a silent wrong answer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import torch

from service.core.codec import Batch

from ..catalog import TASKS
from ..evaluation import every_input_cases
from ..trainer import Trainer

CHUNK = 65536  # inputs scored per forward pass: bounds the logits held at once


def margins(trainer: Trainer, model: torch.nn.Module, xs: np.ndarray, truth: np.ndarray) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(xs), CHUNK):
            x = xs[i : i + CHUNK]
            feed, _ = trainer.codec.encode(Batch(x, np.full(len(x), x.shape[1])))
            logits = trainer.codec.decoder.training_slice(model(torch.from_numpy(feed))).reshape(len(x), -1).numpy()
            rows = np.arange(len(x))
            right = truth[i : i + CHUNK] - trainer.codec.decoder.low
            best = logits[rows, right].copy()
            logits[rows, right] = -np.inf
            out.append(best - logits.max(1))
    return np.concatenate(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="sum-first-two")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--head", type=int, help="ReLU head width (0: a linear head)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    task = TASKS[args.task]
    train = {k: v for k in ("steps", "batch") if (v := getattr(args, k)) is not None}
    model = {"head": args.head} if args.head is not None else {}
    task = dataclasses.replace(
        task, train=dataclasses.replace(task.train, **train), model=dataclasses.replace(task.model, **model)
    )
    torch.set_num_threads(1)
    trainer = Trainer(task, args.seed, progress=False)
    result = trainer.run()
    cases = every_input_cases(task, None, 0, 0)
    m = margins(trainer, result.model, np.stack(cases.inputs), np.asarray(cases.truth))
    report = {
        "task": task.name,
        "model": dataclasses.asdict(task.model),
        "steps": result.steps,
        "batch": task.train.batch,
        "seconds": round(result.seconds),
        "inputs": len(m),
        "wrong": int((m <= 0).sum()),
        "margin_under_1": int((m < 1).sum()),
        "margin_under_2": int((m < 2).sum()),
        "smallest_margin": round(float(m.min()), 3),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
