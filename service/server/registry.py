"""The served models: a Registry of Predictors loaded in each worker (after gunicorn forks), warmed
before the worker answers.

Task names from URLs are only ever looked up in the registry's dict of names discovered at start-up,
so no request can make the service open a path.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ..core import manifest as manifest_mod
from ..core.capabilities import Capabilities
from ..core.predictor import Predictor, SessionConfig
from .config import Config
from .errors import NotFound, TaskUnavailable

log = logging.getLogger("toyseq.runtime")


class StartupError(RuntimeError):
    """Strict mode: a model could not be loaded, so the service refuses to start."""


@dataclass(frozen=True)
class Limits:
    max_batch: int
    max_steps: int
    max_top_k: int  # 0: the task's number of classes
    max_rollout_values: int
    max_request_seconds: float = 0.5  # estimated CPU seconds (service/core/cost.py)

    @classmethod
    def of(cls, config: Config) -> Limits:
        return cls(
            config.max_batch, config.max_steps, config.max_top_k, config.max_rollout_values, config.max_request_seconds
        )

    def capabilities(self, predictor: Predictor) -> Capabilities:
        return Capabilities.of(predictor, self.max_steps, self.max_top_k)


class Registry:
    def __init__(self, predictors: dict[str, Predictor], unavailable: dict[str, str], load_seconds: float = 0.0):
        self.predictors = predictors
        self.unavailable = unavailable  # task -> reason, safe to show to clients
        self.load_seconds = load_seconds

    @classmethod
    def load(
        cls, models_dir: str | Path, session_config: SessionConfig, strict: bool = False, on_failure=None
    ) -> Registry:
        """Load and warm every model folder under `models_dir`; a bad one is recorded with its reason
        (or, when strict, stops start-up)."""
        started = time.perf_counter()
        predictors, unavailable = {}, {}
        for folder in manifest_mod.discover(Path(models_dir)):
            name = folder.name
            try:
                predictor = Predictor.load(folder, session_config)
                predictor.warm_up()
                predictors[name] = predictor
            except Exception as err:  # a bad model must never take the other tasks down
                reason = _client_safe(err, folder)
                log.error("task %s is unavailable: %s", name, reason)
                if strict:
                    raise StartupError(f"task {name} cannot be served: {reason}") from None
                unavailable[name] = reason
                if on_failure:
                    on_failure(name)
        if strict and not predictors:
            raise StartupError(f"no models found in {models_dir}")
        return cls(predictors, unavailable, time.perf_counter() - started)

    @property
    def ready(self) -> bool:
        """Ready to take traffic: at least one task serves. A broken task answers 503 with its reason and is
        named by the readiness answers, but does not take the others out of a load balancer (TOYSEQ_STRICT=1
        is the setting for "every model or nothing": it refuses to start instead)."""
        return bool(self.predictors)

    @property
    def names(self) -> list[str]:
        return sorted({*self.predictors, *self.unavailable})

    def get(self, name: str) -> Predictor:
        predictor = self.predictors.get(name)
        if predictor is not None:
            return predictor
        if name in self.unavailable:
            raise TaskUnavailable(
                f"task {name} is unavailable: {self.unavailable[name]}",
                extra={"task": name, "reason": self.unavailable[name]},
            )
        known = ", ".join(self.names) or "none"
        raise NotFound(f"unknown task {_quote(name)}; known tasks: {known}", extra={"tasks": self.names})


def _client_safe(err: Exception, folder: Path) -> str:
    """The reason without filesystem paths (onnxruntime quotes the file it failed to open)."""
    if isinstance(err, manifest_mod.ManifestError):
        reason = str(err)
    else:
        reason = f"{type(err).__name__} while loading: {str(err).splitlines()[0][:200] if str(err) else ''}"
    replacements = {
        str(folder.resolve()): folder.name,
        str(folder): folder.name,
        str(folder.resolve().parent): "<models>",
    }
    for path in sorted(replacements, key=len, reverse=True):
        if len(path) > 1:
            reason = reason.replace(path, replacements[path])
    return reason


def _quote(name: str) -> str:
    return repr(name if len(name) <= 60 else name[:57] + "...")
