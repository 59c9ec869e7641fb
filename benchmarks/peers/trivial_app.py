"""The trivial WSGI app `python -m benchmarks.scenarios.fronts` serves from each front: reads the body, answers a small JSON.
Imported by Granian in its own virtualenv too, so it needs orjson only."""

from __future__ import annotations

import orjson


def app(environ, start_response):
    body = orjson.dumps({"bytes": len(environ["wsgi.input"].read())})
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
