"""The served models: a Registry of Predictors loaded in each worker (after gunicorn forks), warmed
before the worker answers, and the validation of a predict request against a task and the limits.

Task names from URLs are only ever looked up in the registry's dict of names discovered at start-up,
so no request can make the service open a path.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import manifest as manifest_mod
from .codec import MAX_PROBLEMS, InputError, Problem
from .config import Config
from .errors import InvalidRequest, NotFound, TaskUnavailable
from .predictor import Predictor, SessionConfig, top_k_classes

log = logging.getLogger("toyseq.runtime")

REQUEST_FIELDS = ("inputs", "steps", "top_k")


class StartupError(RuntimeError):
    """Strict mode: a model could not be loaded, so the service refuses to start."""


@dataclass(frozen=True)
class Limits:
    max_batch: int
    max_steps: int
    max_top_k: int  # 0: the task's number of classes
    max_rollout_values: int

    @classmethod
    def of(cls, config: Config) -> "Limits":
        return cls(config.max_batch, config.max_steps, config.max_top_k, config.max_rollout_values)


class Registry:
    def __init__(self, predictors: dict[str, Predictor], unavailable: dict[str, str], load_seconds: float = 0.0):
        self.predictors = predictors
        self.unavailable = unavailable  # task -> reason, safe to show to clients
        self.load_seconds = load_seconds

    @classmethod
    def load(cls, models_dir: str | Path, session_config: SessionConfig, strict: bool = False,
             on_failure=None) -> "Registry":
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
        return cls(predictors, unavailable, time.perf_counter() - started)

    @property
    def names(self) -> list[str]:
        return sorted({*self.predictors, *self.unavailable})

    def get(self, name: str) -> Predictor:
        predictor = self.predictors.get(name)
        if predictor is not None:
            return predictor
        if name in self.unavailable:
            raise TaskUnavailable(f"task {name} is unavailable: {self.unavailable[name]}",
                                  extra={"task": name, "reason": self.unavailable[name]})
        known = ", ".join(self.names) or "none"
        raise NotFound(f"unknown task {_quote(name)}; known tasks: {known}", extra={"tasks": self.names})


def _client_safe(err: Exception, folder: Path) -> str:
    """The reason without filesystem paths (onnxruntime quotes the file it failed to open)."""
    if isinstance(err, manifest_mod.ManifestError):
        reason = str(err)
    else:
        reason = f"{type(err).__name__} while loading: {str(err).splitlines()[0][:200] if str(err) else ''}"
    replacements = {str(folder.resolve()): folder.name, str(folder): folder.name,
                    str(folder.resolve().parent): "<models>"}
    for path in sorted(replacements, key=len, reverse=True):
        if len(path) > 1:
            reason = reason.replace(path, replacements[path])
    return reason


def _quote(name: str) -> str:
    return repr(name if len(name) <= 60 else name[:57] + "...")


def parse_predict(predictor: Predictor, body: Any, limits: Limits) -> tuple[list, int | None, int | None]:
    """Check a decoded predict body; return (checked arrays, steps, top_k) or raise InvalidRequest
    listing every problem, each located by a JSON pointer."""
    task = predictor.task
    if type(body) is not dict:
        raise InvalidRequest("the body must be a JSON object like {\"inputs\": [[...], ...]}",
                             errors=[Problem("", f"expected an object, got {_kind(body)}")])
    if len(body) == 1:  # the usual request, {"inputs": [...]} alone: no options to check
        inputs = body.get("inputs")
        if type(inputs) is list and len(inputs) <= limits.max_batch:
            try:
                return predictor.codec.check(inputs), None, None
            except InputError:
                pass  # the full check below lists the problems
    problems = [Problem(f"/{_escape(key)}", f"unknown field; allowed: {', '.join(REQUEST_FIELDS)}")
                for key in body if key not in REQUEST_FIELDS]
    steps = top_k = None
    if "steps" in body:  # the messages below are built only when the field is there
        steps = _optional_int(body, "steps", limits.max_steps if predictor.rollout else 0,
                              f"steps is not supported for task {task} (it does not predict a next value)",
                              problems)
    if "top_k" in body:
        top_classes = top_k_classes(predictor)
        top_max = min(top_classes, limits.max_top_k) if limits.max_top_k else top_classes
        why_not = ("its output is a list" if predictor.manifest["output"]["kind"] == "echo"
                   else "its output is not a class")
        top_k = _optional_int(body, "top_k", top_max, f"top_k is not supported for task {task} ({why_not})",
                              problems)
    arrays = None
    inputs = body.get("inputs")
    if "inputs" not in body:
        problems.append(Problem("/inputs", "required field is missing"))
    elif type(inputs) is list and len(inputs) > limits.max_batch:
        problems.append(Problem("/inputs", f"{len(inputs)} sequences exceed the limit of {limits.max_batch} "
                                           "per request"))
    else:
        try:
            arrays = predictor.codec.check(inputs)
        except InputError as err:
            problems.extend(err.problems)
            extra = err.total - len(err.problems)
            if extra:
                problems.append(Problem("/inputs", f"and {extra} more problems"))
    if steps and arrays is not None and steps * len(arrays) > limits.max_rollout_values:
        problems.append(Problem("/steps", f"{steps} steps x {len(arrays)} sequences exceed the limit of "
                                          f"{limits.max_rollout_values} rollout values per request"))
    if problems:
        shown = problems[:MAX_PROBLEMS]
        more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
        raise InvalidRequest("; ".join(map(str, shown)) + more, errors=shown, total=len(problems))
    return arrays, steps, top_k


def _optional_int(body: dict, key: str, maximum: int, unsupported: str, problems: list) -> int | None:
    if key not in body:
        return None
    value = body[key]
    if not maximum:
        problems.append(Problem(f"/{key}", unsupported))
    elif type(value) is not int:  # bool is not accepted: type(True) is bool
        problems.append(Problem(f"/{key}", f"expected an integer 1..{maximum}, got {_kind(value)}"))
    elif not 1 <= value <= maximum:
        problems.append(Problem(f"/{key}", f"{value} is outside 1..{maximum}"))
    else:
        return value
    return None


def _kind(value: Any) -> str:
    names = {bool: "a boolean", type(None): "null", str: "a string", dict: "an object", list: "an array",
             float: "a non-integer number", int: "an integer"}
    return names.get(type(value), type(value).__name__)


def _escape(key: str) -> str:
    """A JSON pointer reference token (RFC 6901), shortened for the error message."""
    key = key if len(key) <= 40 else key[:37] + "..."
    return key.replace("~", "~0").replace("/", "~1")
