"""What every peer runtime shares with toyseq: the committed model loaded by service.core's Predictor (the
same manifest check, codec and onnxruntime session options: one intra-op thread, spinning off) and the
same encode/decode. Imported inside each peer's own virtualenv, with the repository root on PYTHONPATH;
needs only numpy, onnxruntime and jsonschema."""

from __future__ import annotations

import os
from pathlib import Path

from service.core.predictor import Predictor, SessionConfig


def model_dir() -> Path:
    return Path(os.environ["TOYSEQ_PEER_MODEL"])


def load() -> Predictor:
    """Called in each serving process after it starts (never before a fork)."""
    predictor = Predictor.load(model_dir(), SessionConfig(intra_op_threads=int(os.environ.get("TOYSEQ_THREADS", "1"))))
    predictor.warm_up()
    return predictor


def answer(predictor: Predictor, inputs: list) -> list:
    """The outputs toyseq's POST /tasks/<task>/predict returns for `inputs`."""
    return predictor.predict(predictor.codec.check(inputs))["outputs"]
