"""The framework's floor: a bare Flask app that parses the predict body with the service's JSON library
(orjson) and answers, nothing else. Served by the same gunicorn config as toyseq, so the two differ only
in what the service does per request.

    gunicorn -c python:service.server.gunicorn_conf 'benchmarks.floor:create_app()'
"""

from __future__ import annotations

import orjson
from flask import Flask, Response, request

from service.server.config import Config


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=Config.load().max_body_bytes)

    @app.post("/tasks/<name>/predict")
    def predict(name: str):
        body = orjson.loads(request.get_data(cache=False))
        return Response(orjson.dumps({"task": name, "outputs": [len(body["inputs"])]}), mimetype="application/json")

    @app.get("/readyz")
    def readyz():
        return {"status": "ready"}

    return app
