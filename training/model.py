"""The sequence model every task uses: an input layer, an LSTM, and a head at every step (linear, or
one ReLU layer then linear).

Index-encoded tasks embed their tokens; feature-encoded tasks feed their features straight into the
LSTM. The head emits logits (class tasks) or one number (regression tasks) per step; the codec's
decoder picks the steps that carry the answer.
"""

from __future__ import annotations

import torch
from torch import nn

from service.core.codec import feature_width

from .config import ModelConfig


class SeqModel(nn.Module):
    def __init__(self, encoder: dict, out_width: int, cfg: ModelConfig):
        super().__init__()
        self.indexed = encoder["type"] == "index"
        if self.indexed:
            self.embed = nn.Embedding(encoder["classes"], cfg.embed)
            width = cfg.embed
        else:
            self.embed = None
            width = feature_width(encoder)
        self.lstm = nn.LSTM(width, cfg.hidden, num_layers=cfg.layers, batch_first=True)
        if cfg.head:
            self.head = nn.Sequential(nn.Linear(cfg.hidden, cfg.head), nn.ReLU(), nn.Linear(cfg.head, out_width))
        else:
            self.head = nn.Linear(cfg.hidden, out_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, seq] int64 indices, or [batch, seq, features] float32 -> [batch, seq, out_width]."""
        h, _ = self.lstm(self.embed(x) if self.indexed else x)
        return self.head(h)


def out_width(decoder: dict) -> int:
    return decoder["classes"] if decoder["type"] in ("class", "wrong-position") else 1
