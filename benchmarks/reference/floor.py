"""The framework's floor: a bare Flask app that makes the same onnxruntime call as toyseq's predict and
nothing else (no checks, no metrics, no access lines): orjson in, the task's Predictor, orjson out. Served by
the same gunicorn config and worker as toyseq, so the two differ only in what the service itself adds.

    TOYSEQ_MODELS_DIR=models gunicorn -c python:service.server.gunicorn_conf 'benchmarks.reference.floor:create_app()'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
from flask import Flask, Response, request

from service.core.predictor import Predictor, SessionConfig
from service.server.config import Config


def create_app() -> Flask:
    config = Config.load()
    predictors = {
        folder.name: Predictor.load(folder, SessionConfig(intra_op_threads=config.threads))
        for folder in sorted(Path(config.models_dir).iterdir())
        if (folder / "manifest.json").exists()
    }
    app = Flask(__name__)

    @app.post("/tasks/<name>/predict")
    def predict(name: str):
        predictor = predictors[name]
        dtype = np.int64 if predictor.manifest["input"]["dtype"] == "int" else np.float64
        arrays = [np.asarray(row, dtype=dtype) for row in orjson.loads(request.get_data(cache=False))["inputs"]]
        return Response(orjson.dumps(predictor.predict(arrays)), mimetype="application/json")

    @app.get("/readyz")
    def readyz():
        return {"status": "ready"}

    return app
