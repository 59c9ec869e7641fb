"""The served models: a Registry of Predictors loaded in each worker (after gunicorn forks), warmed
before the worker answers.

What the registry serves is one immutable Snapshot (predictors, unavailable tasks, what routes derive from
them), replaced whole when a model is loaded or unloaded (service/server/store/repository.py). A request reads
`registry.current` once and uses that snapshot's predictor from start to end, so a swap never mixes two
models in one answer, and routes need no lock.

Task names from URLs are only ever looked up in the snapshot's dicts of names discovered in the models
folder, so no request can make the service open a path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.core import manifest as manifest_mod
from service.core.capabilities import Capabilities
from service.core.predictor import Predictor, SessionConfig

from ..config import Config
from ..problems import NotFound, TaskUnavailable

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


@dataclass(frozen=True)
class Snapshot:
    """What one worker serves at one moment. Never changed once published: a load builds a new one."""

    predictors: Mapping[str, Predictor]
    unavailable: Mapping[str, str]  # task -> reason, safe to show to clients
    unloaded: frozenset[str] = frozenset()  # unloaded on request: unavailable, but not a readiness failure
    # Each task's version number as Triton numbers them (FIRST_VERSION for the model found at start-up, the next
    # for each model loaded since): the last number given, kept while the task is unloaded; absent for a task
    # never served (a folder that failed at start-up or appeared since: its first load is FIRST_VERSION).
    versions: Mapping[str, int] = field(default_factory=dict)
    # Tasks loaded with a configuration that overrides a limit (Triton's load with `config`: max_batch_size):
    # their Limits. Every other task uses the service's.
    limits: Mapping[str, Limits] = field(default_factory=dict)
    # Answers the routes derive from the predictors (rendered metadata, ...), built on first use per snapshot.
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def names(self) -> list[str]:
        return sorted({*self.predictors, *self.unavailable})

    @property
    def failed(self) -> dict[str, str]:
        """Tasks that could not be loaded (unloaded ones excepted): what makes the service not ready."""
        return {t: r for t, r in self.unavailable.items() if t not in self.unloaded}

    def version(self, name: str) -> str:
        """The task's version as the Open Inference Protocol spells it: a decimal string ("1")."""
        return str(self.versions.get(name, FIRST_VERSION))

    def derived(self, key: str, build: Callable[[Snapshot], Any]) -> Any:
        """`build(self)`, computed once per snapshot (two threads may both build it: the first one stored wins)."""
        value = self.memo.get(key)
        if value is None:
            value = self.memo.setdefault(key, build(self))
        return value


class Registry:
    def __init__(self, predictors: dict[str, Predictor], unavailable: dict[str, str], load_seconds: float = 0.0):
        self.current = Snapshot(dict(predictors), dict(unavailable), versions=dict.fromkeys(predictors, FIRST_VERSION))
        self.load_seconds = load_seconds
        self._swap = threading.Lock()  # one swap at a time; readers never take it

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
                reason = client_safe(err, folder)
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
        return bool(self.current.predictors)

    @property
    def predictors(self) -> Mapping[str, Predictor]:
        return self.current.predictors

    @property
    def unavailable(self) -> Mapping[str, str]:
        return self.current.unavailable

    @property
    def names(self) -> list[str]:
        return self.current.names

    def get(self, name: str) -> Predictor:
        return lookup(self.current, name)

    def serve(self, name: str, predictor: Predictor, version: int, limits: Limits | None = None) -> Snapshot:
        """Publish a snapshot in which `name` is answered by `predictor` as `version`, under `limits` when its
        load overrode the service's (else the service's); requests already running keep theirs."""
        with self._swap:
            old = self.current
            predictors = {**old.predictors, name: predictor}
            unavailable = {t: r for t, r in old.unavailable.items() if t != name}
            versions = {**old.versions, name: version}
            overridden = {t: lim for t, lim in old.limits.items() if t != name}
            if limits is not None:
                overridden[name] = limits
            self.current = Snapshot(predictors, unavailable, old.unloaded - {name}, versions, overridden)
            return self.current

    def withdraw(self, name: str, reason: str) -> Snapshot:
        """Publish a snapshot in which `name` is unloaded (503 with `reason`), not served."""
        with self._swap:
            old = self.current
            predictors = {t: p for t, p in old.predictors.items() if t != name}
            limits = {t: lim for t, lim in old.limits.items() if t != name}
            self.current = Snapshot(
                predictors, {**old.unavailable, name: reason}, old.unloaded | {name}, old.versions, limits
            )
            return self.current


# Versions are numbered as Triton numbers a model's versions, so that its tools (perf_analyzer parses them with
# std::stoll; its statistics are keyed by them) work unchanged: the model each worker loads at start-up is
# version 1, and each model loaded through the repository extension takes the next number, agreed by every worker
# (store/control.py). The model file's sha256 still names the exact model (native answers, v2 parameters).
FIRST_VERSION = 1
SHORT_SHA = 12  # hex digits of a model file's sha256 shown where the whole is too long (log lines, messages)


def short_sha(sha256: str) -> str:
    return sha256[:SHORT_SHA]


def lookup(snapshot: Snapshot, name: str) -> Predictor:
    """The task's predictor in `snapshot`, or the error a client should see: 404 unknown, 503 unavailable."""
    predictor = snapshot.predictors.get(name)
    if predictor is not None:
        return predictor
    if name in snapshot.unavailable:
        reason = snapshot.unavailable[name]
        raise TaskUnavailable(f"task {name} is unavailable: {reason}", extra={"task": name, "reason": reason})
    known = ", ".join(snapshot.names) or "none"
    raise NotFound(f"unknown task {_quote(name)}; known tasks: {known}", extra={"tasks": snapshot.names})


def client_safe(err: Exception, folder: Path) -> str:
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
