"""KServe model server custom model: the V1 protocol (POST /v1/models/<task>:predict with
{"instances": [[...], ...]}, answered {"predictions": [...]}) and, with --enable_grpc true, the Open Inference
Protocol over gRPC (ModelInfer: input "input" [batch, length] INT64, answered in output "output" as raw
contents, like toyseq's gRPC), both through service.core via `common.answer`.

    python -m benchmarks.peers.kserve_runtime --task echo-lag --http_port P --workers 2 ...
    (started by benchmarks.peers.servers)

With --workers > 1 KServe spawns its HTTP processes and pickles the registered model into each: the model
drops its onnxruntime session when pickled and loads its own in each process."""

from __future__ import annotations

import argparse

import grpc
import kserve
import numpy as np
import uvicorn
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from benchmarks.peers import common

_config_init = uvicorn.Config.__init__


def _loopback(self, *args, **kwargs):
    # KServe's REST server binds 0.0.0.0 with no option to change it; the benchmark serves 127.0.0.1 only.
    kwargs["host"] = "127.0.0.1"
    _config_init(self, *args, **kwargs)


uvicorn.Config.__init__ = _loopback
_grpc_server = grpc.aio.server


def _grpc_loopback(*args, **kwargs):
    # KServe's gRPC server listens on [::]:<port> with no option to change it: the benchmark serves 127.0.0.1 only.
    server = _grpc_server(*args, **kwargs)
    add_port = server.add_insecure_port
    server.add_insecure_port = lambda address: add_port(address.replace("[::]", "127.0.0.1"))
    return server


grpc.aio.server = _grpc_loopback


class ToyseqModel(kserve.Model):
    def __init__(self, name: str):
        super().__init__(name)
        self.predictor = None
        self.load()

    def load(self) -> bool:
        self.predictor = common.load()
        self.ready = True
        return self.ready

    def __getstate__(self):
        state = self.__dict__.copy()
        state["predictor"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.load()

    def predict(self, payload: dict | InferRequest, headers: dict | None = None) -> dict | InferResponse:
        if isinstance(payload, InferRequest):  # the gRPC (v2) path
            rows = payload.inputs[0].as_numpy().tolist()
            answers = np.array(common.answer(self.predictor, rows), dtype=np.int64)
            output = InferOutput(name="output", shape=list(answers.shape), datatype="INT64")
            output.set_data_from_numpy(answers, binary_data=True)
            return InferResponse(
                response_id=payload.id or "",
                model_name=self.name,
                infer_outputs=[output],
                use_binary_outputs=True,
            )
        return {"predictions": common.answer(self.predictor, payload["instances"])}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--task", required=True)
    args, _ = parser.parse_known_args()
    kserve.ModelServer().start([ToyseqModel(args.task)])
