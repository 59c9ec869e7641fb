"""KServe model server custom model. TOYSEQ_KSERVE_HANDLER=user (the "kserve" peer) is the V1 handler as a KServe
user writes it (KServe's own custom-model examples): `np.asarray(instances, dtype=np.int64)`, one shape and range
check, `session.run`, `argmax(-1)[:, 1:]`, `.tolist()`, on an onnxruntime session opened with toyseq's options
(1 intra-op thread, spinning off). TOYSEQ_KSERVE_HANDLER=codec ("kserve-codec") answers through service.core's codec
instead, as toyseq does: the V1 protocol (POST /v1/models/<task>:predict with
{"instances": [[...], ...]}, answered {"predictions": [...]}), KServe's fastest REST path, and the V2 protocol
on the same server (POST /v2/models/<task>/infer, one INT64 input tensor [batch, length] answered as one INT64
output tensor), both through service.core via `common.answer`; with --enable_grpc true also the V2 protocol over
gRPC (ModelInfer, answered in raw_output_contents like toyseq's gRPC answers a raw request).

    python -m benchmarks.peers.kserve_runtime --task echo-lag --http_port P --workers 2 ...
    (started by benchmarks.peers.servers)

With --workers > 1 KServe spawns its HTTP processes and pickles the registered model into each: the model
drops its onnxruntime session when pickled and loads its own in each process."""

from __future__ import annotations

import argparse
import os
import uuid

import grpc
import kserve
import numpy as np
import uvicorn
from kserve import InferOutput, InferRequest, InferResponse
from kserve.errors import InvalidInput

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


class UserModel(kserve.Model):
    """What a KServe user writes for this model: the instances as one int64 array, checked once, run, argmax."""

    def __init__(self, name: str):
        super().__init__(name)
        self.session = None
        self.load()

    def load(self) -> bool:
        predictor = common.load()  # the manifest check and the session options toyseq uses; only the session kept
        self.session, self.input_name = predictor.session, predictor.input_name
        spec = predictor.manifest["input"]
        self.low, self.high, self.skip = spec["low"], spec["high"], predictor.manifest["decoder"].get("skip", 0)
        self.ready = True
        return self.ready

    def __getstate__(self):
        state = self.__dict__.copy()
        state["session"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.load()

    def predict(self, payload, headers: dict | None = None):
        try:
            x = np.asarray(payload["instances"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidInput(f"instances must be rows of integers: {err}") from None
        if x.ndim != 2 or x.size == 0 or x.min() < self.low or x.max() > self.high:
            raise InvalidInput(f"instances must be a [batch, length] array of integers in {self.low}..{self.high}")
        logits = self.session.run(None, {self.input_name: x})[0]
        return {"predictions": logits.argmax(-1)[:, self.skip :].tolist()}


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

    def predict(self, payload, headers: dict | None = None):
        if isinstance(payload, InferRequest):  # V2, over REST or gRPC (raw contents on gRPC)
            raw = bool(payload.from_grpc)
            outputs = np.asarray(common.answer(self.predictor, payload.inputs[0].as_numpy().tolist()), dtype=np.int64)
            tensor = InferOutput(name="output", shape=list(outputs.shape), datatype="INT64")
            tensor.set_data_from_numpy(outputs, binary_data=raw)
            # KServe's V2 REST answer must carry a string id; a request without one has none to echo
            return InferResponse(
                model_name=self.name,
                infer_outputs=[tensor],
                response_id=payload.id or uuid.uuid4().hex,
                use_binary_outputs=raw,
            )
        return {"predictions": common.answer(self.predictor, payload["instances"])}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--task", required=True)
    args, _ = parser.parse_known_args()
    model = UserModel if os.environ.get("TOYSEQ_KSERVE_HANDLER", "user") == "user" else ToyseqModel
    kserve.ModelServer().start([model(args.task)])
