"""Loss curves, because people would rather look than read."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def loss_curve(history: dict, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    train = np.asarray(history["train"])
    window = max(1, len(train) // 50)
    smooth = np.convolve(train, np.ones(window) / window, mode="valid")
    ax.plot(history["step"][window - 1 :], smooth, label=f"training (mean of {window} steps)", lw=1)
    ax.plot(history["val_step"], history["val"], "o-", ms=3, label="validation")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
