"""gunicorn's own log lines (start, worker boot and exit, timeouts, errors) as the same one-line JSON
objects as the app's, so that every line on stderr parses. Named in gunicorn_conf.py as `logger_class`."""

from __future__ import annotations

from gunicorn.glogging import Logger

from .logs import JsonFormatter


class JsonLogger(Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
