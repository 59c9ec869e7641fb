"""A task's predictor: its manifest, codec and onnxruntime session, answering batches of sequences.

The one predict path in toyseq: the HTTP service, the batch scorer and training's evaluation all call
`Predictor.predict`, so what is evaluated is exactly what is served.

    from service.predictor import Predictor
    p = Predictor.load("models/echo-lag")
    p.predict([[5, 3, 8]])            # -> {"outputs": [[5, 3]]}
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from . import manifest as manifest_mod
from .codec import Batch, Codec

# Cells (rows x padded length x output width) one onnxruntime call may produce: bounds the memory
# of a request with long echo sequences; typical batches need a single call.
DEFAULT_CELL_BUDGET = 8_000_000


@dataclass(frozen=True)
class SessionConfig:
    intra_op_threads: int = 1
    inter_op_threads: int = 1

    def options(self) -> ort.SessionOptions:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.intra_op_threads
        opts.inter_op_num_threads = self.inter_op_threads
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle spinning threads would burn the CPU other gunicorn workers need.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.log_severity_level = 3
        return opts


class Predictor:
    def __init__(self, manifest: dict, session: ort.InferenceSession, cell_budget: int = DEFAULT_CELL_BUDGET):
        self.manifest = manifest
        self.task = manifest["task"]
        self.codec = Codec(manifest)
        self.session = session
        self.input_name = manifest["onnx"]["inputs"][0]["name"]
        self.output_name = manifest["onnx"]["outputs"][0]["name"]
        width = manifest["onnx"]["outputs"][0]["shape"][-1]
        self.out_width = width if isinstance(width, int) else 1
        self.cell_budget = cell_budget
        self.rollout = manifest["output"]["rollout"]
        self.sha256 = manifest["onnx"]["sha256"]
        self._output_names = [self.output_name]
        self._run_options = ort.RunOptions()  # made once: run() would build a default one per call

    @classmethod
    def load(cls, folder: str | os.PathLike, session_config: SessionConfig = SessionConfig(),
             cell_budget: int = DEFAULT_CELL_BUDGET) -> "Predictor":
        """Validate the folder's manifest and model hash, then open an onnxruntime session on it."""
        folder = Path(folder)
        manifest = manifest_mod.load(folder)
        try:
            session = ort.InferenceSession(str(folder / manifest_mod.MODEL_FILE), session_config.options(),
                                           providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for a corrupt file
            raise manifest_mod.ManifestError(f"onnxruntime cannot load {manifest_mod.MODEL_FILE}: "
                                             f"{str(err).splitlines()[0][:200]}") from None
        return cls(manifest, session, cell_budget)

    def warm_up(self) -> None:
        """Run the worked example once so the first request does not pay for lazy initialisation."""
        self.predict(self.codec.check([self.manifest["example"]["input"]]))

    def run(self, batch: Batch) -> tuple[np.ndarray, Any]:
        feed, ctx = self.codec.encode(batch)
        return self.session.run(self._output_names, {self.input_name: feed}, self._run_options)[0], ctx

    def predict(self, sequences: list, steps: int | None = None, top_k: int | None = None) -> dict:
        """Answer checked sequences (numpy arrays, see Codec.check), in order.

        steps: roll out that many next values per sequence, each fed back into a sliding window.
        top_k: also return the k most likely values with probabilities (class tasks only).
        """
        chunks = self._chunks(sequences)
        if chunks is None:  # the common case: one call, answers come back in order, nothing to scatter
            outputs, tops = self._answer(_batch(sequences), steps, top_k)
        else:
            outputs, tops = [None] * len(sequences), [None] * len(sequences)
            for rows in chunks:
                answers, chunk_tops = self._answer(Batch.of([sequences[i] for i in rows]), steps, top_k)
                for i, answer in zip(rows.tolist(), answers):
                    outputs[i] = answer
                for i, top in zip(rows.tolist(), chunk_tops or ()):
                    tops[i] = top
        result = {"outputs": outputs}
        if top_k:
            result["top_k"] = tops
        return result

    def _answer(self, batch: Batch, steps: int | None, top_k: int | None) -> tuple[list, list | None]:
        """One chunk's answers (and top-k lists), in the batch's row order."""
        out, ctx = self.run(batch)
        answers = self.codec.decode(out, batch, ctx) if not steps else self._roll(out, batch, ctx, steps)
        return answers, (self.codec.decoder.top_k(out, batch, top_k) if top_k else None)

    def _roll(self, out: np.ndarray, batch: Batch, ctx: Any, steps: int) -> list:
        """k steps cost k onnxruntime calls for the whole chunk, never k x rows."""
        columns = []
        for step in range(steps):
            if step:
                out, ctx = self.run(batch)
            values = self.codec.next_values(out, batch, ctx)
            columns.append(values)
            batch = batch.slide(values)
        return np.stack(columns, axis=1).tolist()

    def _chunks(self, sequences: list) -> list[np.ndarray] | None:
        """Row indices per onnxruntime call, rows sorted by length so that each call pads little; None
        when the whole padded batch fits the cell budget (one call, the common case)."""
        if len(sequences) * self.codec.input.max_length * self.out_width <= self.cell_budget:
            return None  # fits even at the longest allowed length: skip measuring
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        if len(sequences) * int(lengths.max()) * self.out_width <= self.cell_budget:
            return None
        order = np.argsort(lengths, kind="stable")
        chunks, start = [], 0
        while start < len(order):
            stop = start + 1
            while stop < len(order) and (stop + 1 - start) * lengths[order[stop]] * self.out_width <= self.cell_budget:
                stop += 1
            chunks.append(order[start:stop])
            start = stop
        return chunks


def _batch(sequences: list[np.ndarray]) -> Batch:
    """Batch.of, without its length scan and stack for the most common request: one sequence."""
    if len(sequences) == 1:
        seq = sequences[0]
        return Batch(seq[None, :], np.array([len(seq)], dtype=np.int64))
    return Batch.of(sequences)
