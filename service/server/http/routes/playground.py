"""GET / (the playground page) and GET /tasks/<name>/training.png (each task's training curve).

The page is static HTML/CSS/JS shipped in service/server/http/static/ and served by Flask's own /static route; it reads
GET /tasks and calls the predict endpoint like any client. Training curves are read once per worker, for
the task names the registry discovered at start-up: a URL's name is only ever a key into that dict, never
part of a path, and the picture always belongs to the model this worker serves.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Blueprint, Response, current_app, request

from ...problems import NotFound
from ...runtime import Runtime
from ...store.registry import lookup

PAGE = "playground.html"
CURVE = "training.png"
# The page loads nothing but its own files; scripts and styles from anywhere else are refused.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def blueprint(runtime: Runtime) -> Blueprint:
    bp = Blueprint("playground", __name__)
    registry = runtime.registry
    models_dir = Path(runtime.config.models_dir)

    @bp.get("/")
    def page():
        response = current_app.send_static_file(PAGE)
        response.headers.update(PAGE_HEADERS)
        response.headers["Cache-Control"] = "no-cache"
        return response

    @bp.get("/tasks/<name>/training.png")
    def training_curve(name: str):
        snapshot = registry.current
        curve = snapshot.derived("playground.curves", lambda s: _curves(models_dir, s.names)).get(name)
        if curve is None:
            if name not in snapshot.names:
                lookup(snapshot, name)  # raises the 404 naming the known tasks
            raise NotFound(f"task {name} has no training curve", extra={"task": name})
        request.environ["toyseq.task"] = name
        body, etag = curve
        response = Response(body, mimetype="image/png", headers={"Cache-Control": "no-cache"})
        response.set_etag(etag)
        return response.make_conditional(request)

    return bp


def _curves(models_dir: Path, names: list[str]) -> dict[str, tuple[bytes, str]]:
    """{task: (png bytes, etag)} for every discovered task whose folder holds a training curve."""
    curves = {}
    for name in names:  # folder names found by manifest.discover at start-up
        try:
            body = (models_dir / name / CURVE).read_bytes()
        except OSError:
            continue
        curves[name] = (body, hashlib.sha256(body).hexdigest()[:32])
    return curves
