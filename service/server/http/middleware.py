"""The WSGI middleware around Flask's wsgi_app that tags, times and records every HTTP request in one place,
with no Flask hooks (a before/after_request pair costs context lookups and proxies on every request). What a
record becomes (metrics, access line, statistics) is the recorder's business (observability/recorder.py)."""

from __future__ import annotations

import time
from typing import Any

from ..observability.recorder import REQUEST_ID, Recorder
from ..protocol import offload

_tame = REQUEST_ID.fullmatch


class Observe:
    """The request id (the client's X-Request-ID when tame, else a new one) is put in the environ as
    `toyseq.request_id` and added to the answer's headers; views name the task in `toyseq.task` (only once
    the name is a known task, so metric labels stay bounded). Time runs from the middleware's entry to the
    answer being built (the body itself is sent by the server after)."""

    def __init__(self, wsgi_app, recorder: Recorder):
        self.wsgi_app = wsgi_app
        self.recorder = recorder
        self.new_id = recorder.new_id
        self.record = recorder.record  # the sync worker counts its own refusals here (sync_worker.py)

    def __call__(self, environ: dict, start_response):
        started = time.perf_counter()
        rid = environ.get("HTTP_X_REQUEST_ID")
        if not rid or not _tame(rid):
            rid = self.new_id()
        environ["toyseq.request_id"] = rid
        # a request's own deadline (v2 `timeout`) runs from its arrival, kept when the worker re-runs it on its pool
        environ.setdefault("toyseq.started", started)
        answer: list[Any] = []

        def start(status: str, headers: list, exc_info=None):
            headers.append(("X-Request-ID", rid))
            answer[:] = status, headers
            return start_response(status, headers, exc_info)

        try:
            body = self.wsgi_app(environ, start)
        except offload.MoveToPool:
            raise  # not answered here: the worker runs it again on its pool, where it is counted
        except BaseException as exc:
            # Cut off inside the app: the worker timeout's SystemExit (gunicorn then answers 503, see
            # sync_worker.py) or an error from the server itself. Counted here, since the request never returns;
            # the worker's exit hook flushes the count.
            answer[:] = ("503" if isinstance(exc, SystemExit) else "500"), []
            self._record(environ, started, rid, answer)
            raise
        self._record(environ, started, rid, answer)
        return body

    def _record(self, environ: dict, started: float, rid: str, answer: list) -> None:
        if environ.get("toyseq.abandoned"):
            return  # the worker already answered (and counted) it: cut off by the worker timeout
        seconds = time.perf_counter() - started
        req = environ.pop("toyseq.request", None)  # Flask's request object (see app._Request); drops the cycle
        self.recorder.add(
            (
                time.time(),
                seconds,
                rid,
                answer,
                req.url_rule if req is not None else None,
                req.path if req is not None else environ.get("PATH_INFO", ""),
                environ.get("REQUEST_METHOD"),
                environ.get("REMOTE_ADDR"),
                environ.get("toyseq.task", ""),
                environ.get("toyseq.sequences", 0),
                started,
                environ.get("toyseq.inference"),  # statistics.Timing, set by the predict and infer routes
                environ.get("toyseq.outside", 0),  # of those sequences, how many were outside the task's domain
            )
        )
