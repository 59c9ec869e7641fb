"""Typed model and training configuration, with the defaults most tasks use."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    embed: int = 16  # embedding width, for tasks whose encoder emits class indices
    hidden: int = 64  # LSTM hidden size
    layers: int = 1
    head: int = 0  # width of a ReLU layer between the LSTM and the output; 0: a linear head


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000  # upper bound; early stopping usually ends sooner
    batch: int = 128
    lr: float = 3e-3
    lengths: tuple[int, int] = (0, 0)  # training length range; (0, 0): the task's fixed length
    lengths_per_step: int = 1  # a step's batch is split over this many random lengths (each trains every length)
    loss: str = "cross_entropy"  # or "mse", "l1" or "l1_unit" (see Trainer.loss) for tasks that answer a number
    wrong: float = 0.0  # arith-next: share of training rows with one wrong value
    balanced: float = 0.0  # sum-first-two: share of training rows whose sum is drawn uniformly (see catalog)
    repeated: float = 0.0  # copy-first: share of training rows that are a first value, then another repeated
    eval_every: int = 100  # steps between validation checks
    patience: int = 8  # validation checks without improvement before stopping
    val_size: int = 2048
    val_lengths: int = 4  # validation lengths, spread over the training length range
    select: str = "mean"  # the checkpoint kept: lowest mean validation loss, or "max" (see Trainer.validate)
    grad_clip: float = 1.0
