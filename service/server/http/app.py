"""The app factory: the worker's Runtime (settings from defaults <- TOYSEQ_ env <- `config` mapping, the models
loaded in this process; runtime.py), one blueprint per concern, and the WSGI middleware that tags, times and
records every request (middleware.py).

    gunicorn -c python:service.server.gunicorn_conf 'service:create_app()'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Request
from flask.sessions import NullSession, SessionInterface
from werkzeug.routing import Map

from ..runtime import Runtime
from . import errors
from .middleware import Observe

EXTENSION = "toyseq"  # app.extensions[EXTENSION] is the app's Runtime


def create_app(config: Mapping[str, Any] | None = None, runtime: Runtime | None = None) -> Flask:
    """The Flask app over `runtime`, or over a new one built from `config` (defaults <- TOYSEQ_* <- config)."""
    runtime = runtime or Runtime.build(config)
    app = _Flask(__name__)
    app.request_class = _Request
    app.session_interface = _NoSessions()
    app.config.update(
        MAX_CONTENT_LENGTH=runtime.config.max_body_bytes,
        DEBUG=False,
        PROPAGATE_EXCEPTIONS=False,
        TRAP_HTTP_EXCEPTIONS=False,
    )
    app.extensions[EXTENSION] = runtime
    errors.register(app)
    app.wsgi_app = Observe(app.wsgi_app, runtime.recorder)  # type: ignore[method-assign]

    from .routes import docs, health, playground, predict, tasks, v1, v2, v2_extensions

    for module in (predict, tasks, health, docs, playground, v1, v2_extensions, v2):
        app.register_blueprint(module.blueprint(runtime))
    return app


def runtime_of(app) -> Runtime:
    """The Runtime of a toyseq app, or of a WSGI wrapper that keeps it as .app / .application (gunicorn's)."""
    for _ in range(4):
        extensions = getattr(app, "extensions", None)
        if extensions is not None and EXTENSION in extensions:
            return extensions[EXTENSION]
        app = getattr(app, "app", None) or getattr(app, "application", None)
    raise RuntimeError("not a toyseq app (service:create_app())")


class _Map(Map):
    """No redirects from routing: werkzeug answers `/static//x` (merge_slashes) and a missing trailing slash
    (strict_slashes) with a 308 whose Location it builds from the request's Host header, which a client
    controls. Without them such paths simply match or get 404."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("merge_slashes", False)
        kwargs.setdefault("strict_slashes", False)
        super().__init__(*args, **kwargs)


class _Flask(Flask):
    url_map_class = _Map


class _NoSessions(SessionInterface):
    """The service keeps no sessions: one shared read-only null session (it refuses writes) instead of a
    new one per request, and nothing to save."""

    null = NullSession()

    def open_session(self, app, request):
        return self.null

    def save_session(self, app, session, response):
        pass


class _Request(Request):
    """Flask's request, left in the environ for Observe to read its matched rule and path once Flask is done
    (Flask clears environ["werkzeug.request"] when the request context pops)."""

    def __init__(self, environ: dict, *args, **kwargs):
        super().__init__(environ, *args, **kwargs)
        environ["toyseq.request"] = self
