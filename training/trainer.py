"""Train one task's SeqModel: seeded data, Adam with cosine decay, validation-based early stopping.

Data are raw sequences from the task's generator, turned into tensors and targets by the service's own
codec, so the model learns exactly the encoding it will be served with.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from service.core.codec import Batch, Codec

from .catalog import Task
from .model import SeqModel, out_width

TRAIN_STREAM, VALIDATION_STREAM = 0, 1  # evaluation draws from stream 2 (training/evaluation.py)


def rng_for(stream: int, seed: int) -> np.random.Generator:
    """Independent random streams: what evaluation draws is never drawn in training."""
    return np.random.default_rng([stream, seed])


def codec_for(task: Task) -> Codec:
    return Codec({"task": task.name, "input": task.input, "encoder": task.encoder, "decoder": task.decoder})


@dataclass
class TrainResult:
    model: SeqModel
    steps: int
    seconds: float
    best_val_loss: float
    history: dict = field(default_factory=lambda: {"step": [], "train": [], "val_step": [], "val": []})


class Trainer:
    def __init__(self, task: Task, seed: int = 0, progress: bool = True):
        self.task, self.seed, self.progress = task, seed, progress
        self.cfg = task.train
        self.codec = codec_for(task)
        self.lengths = task.train_lengths

    def batch(self, rng: np.random.Generator, size: int, length: int):
        """(model input, target) tensors for one generated batch of a single length."""
        extra = {k: v for k in ("wrong", "repeated", "balanced") if (v := getattr(self.cfg, k))}
        x, y = (self.task.train_generate or self.task.generate)(rng, size, length, **extra)
        feed, ctx = self.codec.encode(Batch(x, np.full(len(x), x.shape[1])))
        target = torch.from_numpy(self.codec.encode_target(y, ctx))
        if self.cfg.loss == "l1_unit":  # each row's weight: its unit, relative to the batch's mean unit
            unit = np.abs(ctx[1])
            target = (target, torch.from_numpy(unit / unit.mean()).float())
        return torch.from_numpy(feed), target

    def loss(self, model: SeqModel, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = self.codec.decoder.training_slice(model(inputs))
        if self.cfg.loss == "mse":
            return F.mse_loss(out[..., 0], target)
        if self.cfg.loss == "l1":  # pushes most residuals to exactly zero: what rounding needs
            return F.l1_loss(out[..., 0], target)
        if (
            self.cfg.loss == "l1_unit"
        ):  # L1 in the answer's own units: rounding tolerates 0.5 of them, whatever the unit
            target, unit = target
            return ((out[..., 0] - target).abs() * unit).mean()
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1))

    def validation_set(self) -> list:
        rng = rng_for(VALIDATION_STREAM, self.seed)
        lengths = np.unique(np.linspace(*self.lengths, self.cfg.val_lengths).round().astype(int))
        per = max(1, self.cfg.val_size // len(lengths))
        return [self.batch(rng, per, int(n)) for n in lengths]

    @torch.no_grad()
    def validate(self, model: SeqModel, val: list) -> float:
        """The validation loss; with select "max", the largest absolute error of any validation row (a
        regression whose answers are fed back in rollouts must be right at every length, not on average)."""
        model.eval()
        if self.cfg.select == "max":
            out = [self.codec.decoder.training_slice(model(x))[..., 0] for x, _ in val]
            loss = max(float((o - y).abs().max()) for o, (_, y) in zip(out, val))
        else:
            loss = float(np.mean([self.loss(model, x, y).item() for x, y in val]))
        model.train()
        return loss

    def run(self) -> TrainResult:
        torch.manual_seed(self.seed)
        rng = rng_for(TRAIN_STREAM, self.seed)
        model = SeqModel(self.task.encoder, out_width(self.task.decoder), self.task.model)
        opt = torch.optim.Adam(model.parameters(), lr=self.cfg.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.cfg.steps, eta_min=self.cfg.lr * 1e-3)
        val = self.validation_set()
        result = TrainResult(model, 0, 0.0, float("inf"))
        best_state, stale, start = None, 0, time.perf_counter()
        bar = tqdm(
            range(1, self.cfg.steps + 1),
            desc=self.task.name,
            disable=not self.progress,
            leave=False,
            dynamic_ncols=True,
        )
        for step in bar:
            parts = self.cfg.lengths_per_step
            lengths = rng.integers(self.lengths[0], self.lengths[1] + 1, parts)
            loss = sum(self.loss(model, *self.batch(rng, self.cfg.batch // parts, int(n))) for n in lengths) / parts
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip)
            opt.step()
            sched.step()
            result.history["step"].append(step)
            result.history["train"].append(loss.item())
            if step % self.cfg.eval_every and step != self.cfg.steps:
                continue
            val_loss = self.validate(model, val)
            result.history["val_step"].append(step)
            result.history["val"].append(val_loss)
            bar.set_postfix(loss=f"{loss.item():.2e}", val=f"{val_loss:.2e}")
            if val_loss < result.best_val_loss:
                result.best_val_loss, best_state, stale = val_loss, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
                if stale >= self.cfg.patience:
                    break
        result.steps = step
        result.seconds = time.perf_counter() - start
        model.load_state_dict(best_state)
        model.eval()
        return result
