"""MLServer custom runtime: the V2 inference protocol (POST /v2/models/<task>/infer), one INT64 input
tensor of shape [sequences, length], answered by service.core through `common.answer`.

Started by benchmarks.peers.servers with a model-settings.json naming `benchmarks.peers.mlserver_runtime.ToyseqRuntime`."""

from __future__ import annotations

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from benchmarks.peers import common


class ToyseqRuntime(MLModel):
    async def load(self) -> bool:
        self.predictor = common.load()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = NumpyCodec.decode_input(payload.inputs[0]).tolist()
        outputs = common.answer(self.predictor, inputs)
        return InferenceResponse(
            model_name=self.name, id=payload.id, outputs=[NumpyCodec.encode_output("outputs", np.asarray(outputs))]
        )
