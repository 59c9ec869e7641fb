"""What a predict request will cost, known before any model work: the service refuses a request whose
estimate is over its budget (TOYSEQ_MAX_REQUEST_SECONDS) instead of running it into the worker timeout.

A request's work is counted in cells: one cell is one position of one sequence through the LSTM and its
output head, so a request of sequences of lengths L_i costs sum(L_i) cells, and a rollout of `steps` next
values costs that times `steps` (each step runs the whole window again). A cell's time grows with the model's
size: each weight is one multiply-add per cell. The model's weights are counted from model.onnx's size
(float32, 4 bytes each; the embedding table is counted too, which only overestimates). Per sequence and step
there is fixed Python and numpy work as well (encoding, decoding, the answer's JSON):

    cpu_seconds = 1e-9 * (cells * (NS_PER_CELL + NS_PER_CELL_WEIGHT * weights) + rows * steps * NS_PER_ROW_STEP
                          + steps * (NS_PER_STEP + NS_PER_STEP_WEIGHT * weights) + NS_PER_REQUEST)

with steps = 1 for a plain predict. The steps term is onnxruntime's cost per call, paid once per rollout step
even for one sequence (a 3-layer model's call costs more than a 1-layer one's); the last, the request's own.

The constants are CPU time of the whole request in the app (JSON in and out included), fitted by
`python -m benchmarks.scenarios.cost` on the reference machine (2 cores, see docs/cost.md) and raised so that the
estimate is at or above every measured request of its grid: the estimate errs on the side of refusing.

That padded bound answers "may this request run at all". The loop worker asks another question, "is this
request cheap enough to run inline on the event loop" (protocol/offload.py), and a padded answer sends requests
that cost 1.5 ms to its pool as if they cost 6 ms, paying a thread hand-off and GIL contention on each. So each
CostModel also has a `fitted()` twin: the same formula with the least-squares constants of the small requests
the inline question is about (`python -m benchmarks.scenarios.cost --inline`: requests of 1 to 1,000 sequences called
straight through the WSGI app, no test client, CPU time, no safety factor), which estimates a request's own
time rather than bounding it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Fitted by `python -m benchmarks.scenarios.cost` (docs/cost.md has the run, the grid and the load average).
NS_PER_CELL = 581.6
NS_PER_CELL_WEIGHT = 0.0825
NS_PER_ROW_STEP = 8970.0
NS_PER_STEP = 141_900.0
NS_PER_STEP_WEIGHT = 5.953
NS_PER_REQUEST = 1_399_000.0
BYTES_PER_WEIGHT = 4  # float32 weights in model.onnx

# The realistic estimate for the inline decision, in the order of CostModel's fields: least squares over the
# small-request grid of `python -m benchmarks.scenarios.cost --inline` (docs/cost.md has the run), no safety factor.
FITTED = (
    FIT_NS_PER_CELL,
    FIT_NS_PER_CELL_WEIGHT,
    FIT_NS_PER_ROW_STEP,
    FIT_NS_PER_STEP,
    FIT_NS_PER_STEP_WEIGHT,
    FIT_NS_PER_REQUEST,
) = (655.3, 0.03028, 0.0, 118_200.0, 1.231, 196_800.0)


def weights_of(model_path: str | os.PathLike) -> int:
    """The model's weights, counted from its file's size."""
    return os.path.getsize(model_path) // BYTES_PER_WEIGHT


@dataclass(frozen=True)
class CostModel:
    weights: int  # of the task's model
    ns_per_cell: float = NS_PER_CELL
    ns_per_cell_weight: float = NS_PER_CELL_WEIGHT
    ns_per_row_step: float = NS_PER_ROW_STEP
    ns_per_step: float = NS_PER_STEP
    ns_per_step_weight: float = NS_PER_STEP_WEIGHT
    ns_per_request: float = NS_PER_REQUEST

    def fitted(self) -> CostModel:
        """The same model's realistic estimate (FITTED): what a request costs, not a bound to refuse by. The
        inline decision's estimate; never the refusal's."""
        return CostModel(self.weights, *FITTED)

    @property
    def ns_per_cell_of_model(self) -> float:
        return self.ns_per_cell + self.ns_per_cell_weight * self.weights

    def seconds(self, rows: int, values: int, steps: int | None = None) -> float:
        """Estimated CPU seconds of a request of `rows` sequences holding `values` values in all, rolled out
        `steps` steps (None: a plain predict)."""
        repeat = steps or 1
        return 1e-9 * (
            values * repeat * self.ns_per_cell_of_model
            + rows * repeat * self.ns_per_row_step
            + repeat * (self.ns_per_step + self.ns_per_step_weight * self.weights)
            + self.ns_per_request
        )

    def largest(self, budget: float, length: int, steps: int | None = None) -> int:
        """The most sequences of `length` values a request may hold within `budget` seconds."""
        fixed = self.seconds(0, 0, steps)
        per_row = self.seconds(1, length, steps) - fixed
        return max(0, int((budget - fixed) // per_row)) if per_row > 0 else 0

    def most_steps(self, budget: float, length: int) -> int:
        """The most rollout steps one sequence of `length` values may take within `budget` seconds."""
        per_step = self.seconds(1, length, 2) - self.seconds(1, length, 1)
        return max(0, int((budget - 1e-9 * self.ns_per_request) // per_step))
