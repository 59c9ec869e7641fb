"""What one worker serves with, built once per process without any web framework: the settings, the registry
of loaded models, metrics, Triton's statistics, the repository that loads and unloads models, the Open
Inference Protocol's service and the request recorder. The Flask app (http/app.py) and the gRPC servicer
(grpc/servicer.py) are both handed the same Runtime, so a model load, a counter or a statistic is one object
whichever transport a request came in on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.core.predictor import SessionConfig

from .config import Config
from .observability import logs
from .observability.metrics import Metrics
from .observability.recorder import Recorder
from .protocol.statistics import Statistics
from .protocol.v2 import Service
from .store.registry import Limits, Registry
from .store.repository import Repository

log = logging.getLogger("toyseq.runtime")


@dataclass
class Runtime:
    config: Config
    registry: Registry
    metrics: Metrics
    limits: Limits
    statistics: Statistics
    repository: Repository
    protocol: Service  # the Open Inference Protocol's answers, for its HTTP routes and its gRPC service
    recorder: Recorder  # records requests of both transports into the same logs, metrics and statistics

    @classmethod
    def build(cls, config: Config | Mapping[str, Any] | None = None) -> Runtime:
        """Load the models into this process (a gunicorn worker, after fork: onnxruntime sessions are not
        fork-safe, so each worker gets its own) and wire what serves them."""
        settings = config if isinstance(config, Config) else Config.load(config)
        logs.setup(settings.log_level)
        metrics = Metrics()
        statistics = Statistics(metrics)
        registry = Registry.load(
            settings.models_dir,
            SessionConfig(intra_op_threads=settings.threads),
            strict=settings.strict,
            on_failure=lambda task: metrics.load_failures.labels(task).inc(),
        )
        log.info(
            "models loaded",
            extra={
                "fields": {
                    "pid": os.getpid(),
                    "tasks": sorted(registry.predictors),
                    "unavailable": registry.unavailable,
                    "seconds": round(registry.load_seconds, 3),
                }
            },
        )
        repository = Repository(registry, settings, on_failure=lambda task: metrics.load_failures.labels(task).inc())
        limits = Limits.of(settings)
        recorder = Recorder(metrics, os.getpid(), statistics)
        runtime = cls(settings, registry, metrics, limits, statistics, repository, Service(registry, limits), recorder)
        repository.start()  # follows the loads and unloads other workers publish (store/control.py)
        return runtime
