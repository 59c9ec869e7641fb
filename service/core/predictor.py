"""A task's predictor: its manifest, codec and onnxruntime session, answering batches of sequences.

The one predict path in toyseq: the HTTP service, the batch scorer and training's evaluation all call
`Predictor.predict`, so what is evaluated is exactly what is served.

    from service.core.predictor import Predictor
    p = Predictor.load("models/echo-lag")
    p.predict(p.codec.check([[5, 3, 8]]))     # -> {"outputs": [[5, 3]], "in_domain": [True]}

A large batch of mixed lengths is answered in several onnxruntime calls of rows sorted by length (see
Predictor._plan); the answers are the same as one call's, in input order.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from . import manifest as manifest_mod
from .codec import Batch, Checked, Codec
from .cost import CostModel, weights_of
from .domain import Domain

# Cells (rows x padded length x output width) one onnxruntime call may produce: bounds the memory
# of a request with long echo sequences; typical batches need a single call.
DEFAULT_CELL_BUDGET = 8_000_000

# Splitting a batch into onnxruntime calls (Predictor._plan). Cells here are rows x padded length.
# Calls of about a thousand cells keep the LSTM's per-step buffers in the core's cache, fewer than ~32 rows
# waste the matrix products, and each call has a fixed overhead (docs/performance.md has the figures).
CALL_CELLS = 1024
MIN_CALL_ROWS = 32
CALL_OVERHEAD_CELLS = 64
SMALL_CELLS = 512  # a batch this small (padded) is one call: sorting would not pay for itself
UNIFORM_CELLS = 4 * CALL_CELLS  # rows of one length: one call up to this many cells, then CALL_CELLS calls


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

    def session(self, path: str | os.PathLike) -> ort.InferenceSession:
        """The one way toyseq opens a model: the service, the scorer, export checks and evaluation."""
        return ort.InferenceSession(str(path), self.options(), providers=["CPUExecutionProvider"])


class Predictor:
    def __init__(self, manifest: dict, session: ort.InferenceSession, cell_budget: int = DEFAULT_CELL_BUDGET):
        self.manifest = manifest
        self.task = manifest["task"]
        self.codec = Codec(manifest)
        self.domain = Domain.of(manifest)  # which inputs are of the task's kind: every answer's in_domain
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
        # What a request will cost (service/core/cost.py); `load` counts the weights from model.onnx.
        self.cost = CostModel(0)
        self.inline_cost = self.cost.fitted()  # the realistic estimate: is it cheap enough for the event loop
        self._extras = getattr(self.codec.decoder, "extras", None)

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike,
        session_config: SessionConfig = SessionConfig(),
        cell_budget: int = DEFAULT_CELL_BUDGET,
    ) -> Predictor:
        """Validate the folder's manifest and model hash, then open an onnxruntime session on it."""
        folder = Path(folder)
        manifest = manifest_mod.load(folder)
        try:
            session = session_config.session(folder / manifest_mod.MODEL_FILE)
        except Exception as err:  # onnxruntime raises its own exception types for a corrupt file
            raise manifest_mod.ManifestError(
                f"onnxruntime cannot load {manifest_mod.MODEL_FILE}: {str(err).splitlines()[0][:200]}"
            ) from None
        predictor = cls(manifest, session, cell_budget)
        predictor.cost = CostModel(weights_of(folder / manifest_mod.MODEL_FILE))
        predictor.inline_cost = predictor.cost.fitted()
        return predictor

    def warm_up(self) -> None:
        """Run the worked example once so the first request does not pay for lazy initialisation."""
        self.predict(self.codec.check([self.manifest["example"]["input"]]))

    def run(self, batch: Batch) -> tuple[np.ndarray, Any]:
        feed, ctx = self.codec.encode(batch)
        return self.session.run(self._output_names, {self.input_name: feed}, self._run_options)[0], ctx

    def predict(
        self, sequences: Checked, steps: int | None = None, top_k: int | None = None, arrays: bool = False
    ) -> dict:
        """Answer checked sequences (numpy arrays, see Codec.check), in order.

        steps: roll out that many next values per sequence, each fed back into a sliding window.
        top_k: also return the k most likely values with probabilities (class tasks only).
        Every result ends with `in_domain`: per sequence, whether it is of the task's kind (service/core/domain.py);
        outside it the answer is the model's, but has no meaning.
        arrays: "outputs" may be one numpy array (rows of equal length, answered in one call) instead of lists, for
        a caller that writes it with orjson's numpy support (the HTTP and gRPC answers): the same values, with
        no Python object made per value.
        """
        plan = self._plan(sequences)
        if plan is None:  # the common case: one call, answers come back in order, nothing to scatter
            outputs, tops, extras = self._answer(_batch(sequences), steps, top_k, arrays)
        else:
            gather, calls = plan
            done: list[Any] = []
            done_tops: list[Any] = []
            done_extras: dict[str, list[Any]] = {}
            for rows in calls:
                answers, call_tops, call_extras = self._answer(gather(rows), steps, top_k)
                done.extend(answers)
                if call_tops is not None:
                    done_tops.extend(call_tops)
                for key, values in call_extras.items():
                    done_extras.setdefault(key, []).extend(values)
            # the calls hold the rows in length order: put the answers back in input order
            positions = np.empty(len(sequences), dtype=np.int64)
            positions[np.concatenate(calls)] = np.arange(len(sequences))
            where = positions.tolist()
            outputs = list(map(done.__getitem__, where))
            tops = list(map(done_tops.__getitem__, where)) if top_k else None
            extras = {key: list(map(values.__getitem__, where)) for key, values in done_extras.items()}
        result: dict[str, Any] = {"outputs": outputs}
        if top_k:
            result["top_k"] = tops
        result.update(extras)
        result["in_domain"] = self.domain.check(sequences)
        return result

    def _answer(
        self, batch: Batch, steps: int | None, top_k: int | None, arrays: bool = False
    ) -> tuple[Any, list | None, dict]:
        """One chunk's answers (top-k lists, and what else the decoder reports), in the batch's row order.
        The decoder's extras (e.g. arith-next's wrong_position) describe the input window, not the rollout."""
        out, ctx = self.run(batch)
        extras = self._extras(out, batch) if self._extras else {}
        if steps:
            answers = self._roll(out, batch, ctx, steps, arrays)
        else:
            answers = self.codec.decode(out, batch, ctx, arrays)
        return answers, (self.codec.top_k(out, batch, top_k) if top_k else None), extras

    def _roll(self, out: np.ndarray, batch: Batch, ctx: Any, steps: int, arrays: bool = False) -> Any:
        """k steps cost k onnxruntime calls for the whole chunk, never k x rows."""
        columns = []
        for step in range(steps):
            if step:
                out, ctx = self.run(batch)
            values = self.codec.next_values(out, batch, ctx)
            columns.append(values)
            batch = batch.slide(values)
        rolled = np.stack(columns, axis=1)
        return rolled if arrays else rolled.tolist()

    def _plan(self, sequences: Checked) -> tuple[Callable[[np.ndarray], Batch], list[np.ndarray]] | None:
        """How to split a batch into onnxruntime calls: None for one call of the whole batch (one row,
        rows of one length, or few cells), else a function that builds a call's Batch from row indices
        and the row indices of each call.

        A row's outputs do not depend on the other rows of its call nor on padding after its end (the
        LSTM runs forward), so rows are sorted by length and cut into calls that pad little: a call
        holds rows of one length, plus shorter ones when padding them wastes less than a call of their
        own would cost, and about CALL_CELLS cells (rows x padded length), the size that runs fastest."""
        n = len(sequences)
        if n == 1:
            return None
        if n * self.codec.input.max_length <= SMALL_CELLS:
            return None  # few cells even at the longest allowed length: skip measuring
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=n)
        longest = int(lengths.max())
        if n * longest <= SMALL_CELLS:
            return None
        shortest = int(lengths.min())
        if shortest == longest and n * longest <= UNIFORM_CELLS and n * longest * self.out_width <= self.cell_budget:
            return None
        order = np.argsort(lengths, kind="stable")
        ordered = lengths[order]
        ends = [*(np.flatnonzero(np.diff(ordered)) + 1).tolist(), n]
        cells = np.cumsum(ordered).tolist()  # real cells of the first k rows in length order
        ordered = ordered.tolist()
        calls, start = [], 0
        for end in ends:
            length = ordered[end - 1]
            if end < n:
                # carry the rows so far into the next length's call when that pads fewer cells than a
                # call costs
                waste = (end - start) * ordered[end] - (cells[end - 1] - (cells[start - 1] if start else 0))
                if waste <= CALL_OVERHEAD_CELLS:
                    continue
            per_call = max(MIN_CALL_ROWS, CALL_CELLS // length)
            per_call = max(1, min(per_call, self.cell_budget // (length * self.out_width)))
            count = end - start
            if count <= per_call:
                calls.append(order[start:end])
            else:
                calls.extend(np.array_split(order[start:end], -(-count // per_call)))
            start = end
        if len(calls) == 1:
            return None
        return _gatherer(sequences, lengths), calls


def top_k_classes(predictor: Predictor) -> int:
    """How many classes `top_k` may ask for on this task; 0 when the task does not support top_k."""
    m = predictor.manifest
    if not predictor.codec.is_class or m["output"]["kind"] == "echo":
        return 0
    return int(m["decoder"]["classes"])


def _batch(sequences: Checked) -> Batch:
    """Batch.of, without its length scan and stack for the most common requests: one sequence, or rows of
    one length already in one array (what Codec.check returns for them)."""
    if isinstance(sequences, np.ndarray):
        return Batch(sequences, np.full(len(sequences), sequences.shape[1], dtype=np.int64))
    if len(sequences) == 1:
        seq = sequences[0]
        return Batch(seq[None, :], np.array([len(seq)], dtype=np.int64))
    return Batch.of(sequences)


def _gatherer(sequences: Checked, lengths: np.ndarray) -> Callable[[np.ndarray], Batch]:
    """A function building the Batch of the given rows (sorted by length) by indexing into one array
    of all values: no per-row copies. Padding is zero, as in Batch.of."""
    flat = sequences.reshape(-1) if isinstance(sequences, np.ndarray) else np.concatenate(sequences)
    first = sequences[0]
    if isinstance(first, np.ndarray) and flat.dtype != first.dtype:
        flat = flat.astype(first.dtype)
    starts = np.cumsum(lengths) - lengths

    def gather(rows: np.ndarray) -> Batch:
        row_lengths = lengths[rows]
        width = int(row_lengths[-1])
        steps = np.arange(width)
        index = starts[rows][:, None] + steps
        if row_lengths[0] == width:
            return Batch(flat[index], row_lengths)
        padding = steps >= row_lengths[:, None]
        index[padding] = 0
        x = flat[index]
        x[padding] = 0
        return Batch(x, row_lengths)

    return gather
