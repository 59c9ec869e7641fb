"""Where a committed arith-next model misses with one wrong value:

    python -m training.experiments.misses [--models-dir models] [--eval-seed 2026] [-n 20000]

Prints the one-wrong exact rate by the wrong value's position and by where in the window's range it
lies (0 = at the last value, 1 = at the true first value), on the same held-out stream evaluation uses.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from service.core.predictor import Predictor

from ..catalog import TASKS
from ..evaluation import DEFAULT_EVAL_SEED, EVAL_STREAM

BANDS = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0)


def located_misses(predictor: Predictor, rng: np.random.Generator, n: int) -> dict:
    """Per row: the wrong value's position, where it lies, and whether the answer was exact."""
    x, y = TASKS["arith-next"].generate(rng, n, 7, wrong=1.0)
    step = y - x[:, 6]  # the last value is never the wrong one
    clean = x[:, 6:7] - step[:, None] * np.arange(6, -1, -1)
    rows, pos = np.nonzero(x != clean)  # constant windows have no wrong value and drop out here
    where = (x[rows, pos] - clean[rows, 6]) / (clean[rows, 0] - clean[rows, 6])
    answers = np.asarray(predictor.predict(list(x[rows]))["outputs"])
    return {"pos": pos, "where": where, "exact": answers == y[rows]}


def table(found: dict) -> str:
    lines = [
        f"one wrong value: {found['exact'].mean():.4f} exact over {len(found['exact'])} windows",
        "position  exact   | exact by where the wrong value lies: "
        + "  ".join(f"[{a:.1f},{b:.1f})" for a, b in zip(BANDS, BANDS[1:])),
    ]
    band = np.clip(np.digitize(found["where"], BANDS) - 1, 0, len(BANDS) - 2)
    for p in range(6):
        at = found["pos"] == p
        cells = [found["exact"][at & (band == b)] for b in range(len(BANDS) - 1)]
        lines.append(
            f"{p:8d}  {found['exact'][at].mean():.4f}  | "
            + "  ".join(f"{c.mean():9.3f}" if len(c) else f"{'-':>9s}" for c in cells)
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--eval-seed", type=int, default=DEFAULT_EVAL_SEED)
    parser.add_argument("-n", type=int, default=20000)
    args = parser.parse_args(argv)
    predictor = Predictor.load(args.models_dir / "arith-next")
    print(table(located_misses(predictor, np.random.default_rng([EVAL_STREAM, args.eval_seed, 99]), args.n)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
