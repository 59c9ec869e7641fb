"""The service's settings: defaults, overridden by TOYSEQ_* environment variables, overridden by a mapping
passed to `create_app(config)` (tests). gunicorn_conf.py reads the same variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

PREFIX = "TOYSEQ_"
GRPC_MODES = ("sync", "aio", "loop")
EMPTY_TURNS_OFF = ("grpc_bind",)  # settings whose empty variable means "off" rather than "the default"
WORKER_CLASSES = {"loop": "service.server.loop.worker.LoopWorker", "sync": "sync"}
MODEL_CONTROL_MODES = ("none", "explicit")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# Booleans as people write them, Kubernetes manifests included ("true", not only "1").
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
# What a value of each type must look like, for the message that refuses one.
KINDS = {"int": "a whole number", "float": "a number", "bool": "one of " + ", ".join(TRUE + FALSE)}


class ConfigError(ValueError):
    """A setting that cannot be used; start-up stops with this message."""


@dataclass(frozen=True)
class Config:
    models_dir: str = "models"
    bind: str = "127.0.0.1:8000"
    workers: int = 2
    threads: int = 1  # onnxruntime intra-op threads per worker: workers x threads <= cores
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch: int = 10_000
    max_steps: int = 1_000
    max_top_k: int = 0  # 0: up to the task's number of classes
    max_rollout_values: int = 2_000_000  # sequences x steps in one request; bounds its time
    # Estimated CPU seconds of one predict (service/core/cost.py); larger requests get 422 before any work.
    # The estimate errs high (the largest accepted requests measure 0.2-0.35 s of CPU) and 0.5 s leaves a
    # tenfold margin: two such requests beside a busy process on 2 shared cores finish in under 5 s of wall
    # time, far inside TOYSEQ_TIMEOUT (docs/cost.md).
    max_request_seconds: float = 0.5
    log_level: str = "info"
    api_key: str = ""  # empty: predict is open
    strict: bool = False  # True: any bad model stops start-up
    timeout: int = 30  # gunicorn: a worker silent this long is killed and replaced
    graceful_timeout: int = 30  # gunicorn: how long SIGTERM waits for in-flight requests
    keepalive: int = 2  # seconds an idle kept-alive connection stays open
    # The worker model (gunicorn_conf.py): "loop" is toyseq's event-loop worker (service/server/loop/worker.py):
    # whole requests read on the loop, cheap ones run there, heavy ones on a pool of `request_threads`;
    # "sync" is gunicorn's sync worker (one request at a time per worker, no keep-alive, no slow-client
    # protection), kept for comparisons.
    worker_class: str = "loop"
    request_threads: int = 2  # loop: heavy requests one worker runs at once, on its pool
    # loop: a predict estimated (service/core/cost.py) at up to this many CPU seconds runs on the event loop
    inline_seconds: float = 0.005
    worker_connections: int = 1000  # loop: open connections one worker holds, kept-alive or arriving
    read_timeout: int = 10  # loop: seconds to send a whole request (and to take an answer) before the drop
    keepalive_requests: int = 100  # loop: requests per connection before "Connection: close"; 0: no limit
    reuse_port: bool = False  # each worker listens on its own SO_REUSEPORT socket; the kernel spreads connections
    # The Open Inference Protocol over gRPC, served by every worker beside HTTP (service/server/grpc/);
    # empty: off. "sync" is grpc.server with a thread pool (the default: its stalled-stream defences, a read timeout
    # and a thread budget, are the ones docs/security.md lists); "loop" is grpc.aio on the loop worker's own event
    # loop, calls inline like HTTP requests (grpc/on_loop.py; "aio" under the sync worker), the fastest; "aio"
    # grpc.aio on a loop thread of its own (all measured in docs/performance.md).
    grpc_bind: str = "127.0.0.1:8001"
    grpc_mode: str = "sync"
    limit_request_line: int = 4094
    limit_request_fields: int = 100
    # The model repository extension (repository.py), after Triton's --model-control-mode: "none" refuses
    # load and unload (403); "explicit" allows them (with the API key when one is set). Every folder is
    # loaded at start-up either way.
    model_control: str = "none"
    model_control_timeout: float = 10.0  # seconds a load or unload waits for every worker to apply it
    # Where the workers coordinate loads (control.py). gunicorn_conf.py makes one per server when unset;
    # empty outside gunicorn: a load then changes only the process that took it.
    control_dir: str = ""

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Config:
        """Defaults <- TOYSEQ_<FIELD> environment variables <- `overrides` (keys: field names, any case)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(PREFIX + f.name.upper())
            if raw is not None and (raw != "" or f.name in EMPTY_TURNS_OFF):
                values[f.name] = _convert(f.name, f.type, raw)
        for key, value in (overrides or {}).items():
            name = key.lower().removeprefix(PREFIX.lower())
            if name not in {f.name for f in fields(cls)}:
                raise ConfigError(f"unknown setting {key!r}")
            kind = next(f.type for f in fields(cls) if f.name == name)
            values[name] = _convert(name, kind, value) if isinstance(value, str) else value
        config = replace(cls(), **values)
        config.check()
        return config

    def check(self) -> None:
        for name in (
            "workers",
            "threads",
            "max_body_bytes",
            "max_batch",
            "max_steps",
            "max_rollout_values",
            "timeout",
            "limit_request_fields",
            "request_threads",
            "worker_connections",
            "read_timeout",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{PREFIX}{name.upper()} must be at least 1")
        if not self.inline_seconds >= 0:  # also refuses NaN
            raise ConfigError(f"{PREFIX}INLINE_SECONDS must be 0 (every predict on the pool) or more")
        if not self.max_request_seconds > 0:  # also refuses NaN
            raise ConfigError(f"{PREFIX}MAX_REQUEST_SECONDS must be more than 0")
        if self.model_control not in MODEL_CONTROL_MODES:
            raise ConfigError(f"{PREFIX}MODEL_CONTROL must be one of {', '.join(MODEL_CONTROL_MODES)}")
        if not self.model_control_timeout > 0:
            raise ConfigError(f"{PREFIX}MODEL_CONTROL_TIMEOUT must be more than 0")
        if self.worker_class not in WORKER_CLASSES:
            raise ConfigError(
                f"{PREFIX}WORKER_CLASS={self.worker_class} is not accepted; use one of {', '.join(WORKER_CLASSES)}"
            )
        if self.grpc_mode not in GRPC_MODES:
            raise ConfigError(f"{PREFIX}GRPC_MODE={self.grpc_mode} is not accepted; use one of {', '.join(GRPC_MODES)}")
        if self.log_level.lower() not in LOG_LEVELS:
            raise ConfigError(f"{PREFIX}LOG_LEVEL={self.log_level} is not accepted; use one of {', '.join(LOG_LEVELS)}")
        if self.keepalive_requests < 0:
            raise ConfigError(f"{PREFIX}KEEPALIVE_REQUESTS must be 0 (no limit) or more")
        if self.max_top_k < 0:
            raise ConfigError(f"{PREFIX}MAX_TOP_K must be 0 (no limit) or more")
        # A bearer token is printable ASCII (RFC 6750); other bytes reach WSGI as latin-1 and could never match.
        if self.api_key and not (self.api_key.isascii() and self.api_key.isprintable() and " " not in self.api_key):
            raise ConfigError(f"{PREFIX}API_KEY must be printable ASCII without spaces")


def _convert(name: str, kind: Any, raw: str) -> Any:
    kind = kind if isinstance(kind, str) else kind.__name__
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.strip().lower() in TRUE:
                return True
            if raw.strip().lower() in (*FALSE, ""):
                return False
            raise ValueError(raw)
        return raw
    except ValueError:
        raise ConfigError(f"{PREFIX}{name.upper()}={raw} is not accepted; use {KINDS[kind]}") from None
