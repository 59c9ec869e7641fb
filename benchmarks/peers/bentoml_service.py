"""BentoML service: POST /predict with toyseq's own body ({"inputs": [[...], ...]}), answered
{"outputs": [...]} through service.core via `common.answer`.

    bentoml serve benchmarks.peers.bentoml_service:Toyseq --host 127.0.0.1 --port P   (benchmarks.peers.servers)"""

from __future__ import annotations

import os

import bentoml

from benchmarks.peers import common


@bentoml.service(
    workers=int(os.environ.get("TOYSEQ_WORKERS", "2")), logging={"access": {"enabled": False}}, traffic={"timeout": 30}
)
class Toyseq:
    def __init__(self) -> None:
        self.predictor = common.load()

    @bentoml.api
    def predict(self, inputs: list[list[int]]) -> dict:
        return {"outputs": common.answer(self.predictor, inputs)}
