"""The Open Inference Protocol's model repository extension (Triton's and MLServer's shapes), without Flask:
`index` lists every task folder with its version and state; `load` re-reads a task's folder and swaps the
new model in, in every gunicorn worker, as the task's next version number (Triton's integer versions: the model
found at start-up is version 1); `unload` stops serving a task. The HTTP routes
(routes/v2_extensions.py), the command line (service/server/cli.py) and gRPC call these.

A load never makes things worse. The worker that takes the request first checks the new folder the way
start-up does and more: manifest schema, model.onnx's sha256, an onnxruntime session, and a smoke prediction
that must give the manifest's worked example. A model that fails is refused (ModelRefused, 400) and nothing
changes anywhere. One that passes is published to the other workers (control.py); each loads and checks the
same folder again, must find the same sha256, and swaps it in (registry.py: requests already running finish
on the old model). The call returns once every live worker has acknowledged, or says which did not in time.

Control is a privilege: `load` and `unload` answer 403 unless TOYSEQ_MODEL_CONTROL=explicit (Triton's
--model-control-mode; toyseq's `explicit` still loads every folder at start-up, like Triton's
`--load-model=*`). The routes ask for the API key when one is set, and every call is logged.

A load may carry Triton's `config` parameter, a model configuration in JSON that overrides the folder's for this
load (Triton's --model-control-mode=explicit load with config): toyseq honours the one setting it has per model,
`max_batch_size` (at most TOYSEQ_MAX_BATCH), and refuses any other field rather than ignore it. The override
reaches every worker with the load, holds until the next load (which, without `config`, restores the service's
limit) and shows in the model configuration. Refusals say "failed to load", Triton's words, which its clients'
examples check.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.core import manifest as manifest_mod
from service.core.predictor import Predictor, SessionConfig

from ..config import Config
from ..problems import NotFound, ServiceError
from .control import POLL, Action, Channel
from .registry import FIRST_VERSION, Limits, Registry, client_safe, short_sha

log = logging.getLogger("toyseq.control")

READY, UNAVAILABLE = "READY", "UNAVAILABLE"
CONFIG_FIELDS = ("name", "max_batch_size")  # what a load's `config` may set
UNLOADED = "unloaded"


class ControlDisabled(ServiceError):
    status, title, slug = 403, "Forbidden", "model-control-disabled"


class ModelRefused(ServiceError):
    status, title, slug = 400, "Bad Request", "model-refused"


class WorkersDisagree(ServiceError):
    status, title, slug = 409, "Conflict", "workers-disagree"


class WorkersLate(ServiceError):
    status, title, slug = 503, "Service Unavailable", "workers-late"


class Repository:
    def __init__(self, registry: Registry, config: Config, on_failure: Callable[[str], None] | None = None):
        self.registry = registry
        self.models_dir = Path(config.models_dir)
        self.explicit = config.model_control == "explicit"
        self.timeout = config.model_control_timeout
        self.session_config = SessionConfig(intra_op_threads=config.threads)
        self.limits = Limits.of(config)
        self.channel = Channel(config.control_dir) if config.control_dir else None
        self.on_failure = on_failure
        self.pid = os.getpid()
        self._applied: dict[str, dict] = {}  # task -> {"generation", "ok", "version", "reason"}
        self._lock = threading.Lock()  # one load or unload at a time in this worker
        self._thread: threading.Thread | None = None

    # -- the extension's calls ------------------------------------------------------------------------

    def index(self, ready_only: bool = False) -> list[dict]:
        """Every task: served (READY, its version), unloaded or failed (UNAVAILABLE, why), and folders found
        on disk since start-up (UNAVAILABLE until loaded)."""
        snapshot = self.registry.current
        found = {folder.name for folder in manifest_mod.discover(self.models_dir)}
        entries = []
        for name in sorted(found | set(snapshot.names)):
            predictor = snapshot.predictors.get(name)
            if predictor is not None:
                entries.append({"name": name, "version": snapshot.version(name), "state": READY, "reason": ""})
            elif not ready_only:
                reason = snapshot.unavailable.get(name, "not loaded: found in the models folder after start-up")
                entries.append({"name": name, "version": "", "state": UNAVAILABLE, "reason": reason})
        return entries

    def load(self, name: str, who: dict | None = None, config: str | None = None) -> dict:
        """Check `name`'s folder and serve it in every worker, with the overrides of Triton's `config` parameter
        (ModelRefused: the old model keeps serving)."""
        self._allowed("load", name, who)
        folder = self._folder(name)
        overrides = self.overrides(name, config)
        try:
            candidate = self.check(folder)
        except Exception as err:
            reason = client_safe(err, folder)
            current = self.registry.current.predictors.get(name)
            served = self.registry.current.version(name)
            keeps = f"version {served} keeps serving" if current else "nothing was served before"
            log.warning("load refused", extra={"fields": {"task": name, "reason": reason, **(who or {})}})
            if self.on_failure and name in self.registry.current.names:  # bounded metric labels: known tasks only
                self.on_failure(name)
            raise ModelRefused(
                f"failed to load '{name}': {reason}; {keeps}", extra={"task": name, "reason": reason}
            ) from None
        with self._lock:
            last = self.registry.current.versions.get(name, FIRST_VERSION - 1)  # the number before any load
            if self.channel is not None:
                generation, number = self.channel.publish(name, "load", candidate.sha256, last, overrides)
            else:
                generation, number = 0, last + 1
            self.registry.serve(name, candidate, number, self._limits(overrides))
            self._applied[name] = {"generation": generation, "ok": True, "version": str(number)}
            self._acknowledge()
        version = str(number)
        workers = self._wait(name, generation, f"load of {name} version {version}")
        fields = {"task": name, "version": version, "sha256": short_sha(candidate.sha256), "workers": workers}
        log.info("model loaded", extra={"fields": {**fields, **(who or {})}})
        # KServe's server answers {"name", "load": true}; Triton's clients read only the status.
        answer = {"name": name, "load": True, "version": version, "sha256": candidate.sha256, "state": READY}
        return {**answer, **({"config": overrides} if overrides else {}), "workers": workers}

    def overrides(self, name: str, config: str | None) -> dict:
        """The settings Triton's load `config` (a JSON ModelConfig) overrides, checked: {} without one, else
        {"max_batch_size": n}; ModelRefused for anything toyseq cannot honour."""
        if config is None:
            return {}
        try:
            given = json.loads(config)
        except ValueError as err:
            raise ModelRefused(f"failed to load '{name}': the config parameter is not valid JSON ({err})") from None
        if not isinstance(given, dict):
            raise ModelRefused(f"failed to load '{name}': the config parameter must be a JSON object (a ModelConfig)")
        unknown = [key for key in given if key not in CONFIG_FIELDS]
        if unknown or given.get("name", name) != name:
            field = unknown[0] if unknown else "name"
            raise ModelRefused(
                f"failed to load '{name}': config field {field[:60]!r} cannot be overridden; toyseq takes "
                f"{', '.join(CONFIG_FIELDS)} (name must be the model's own)"
            )
        if "max_batch_size" not in given:
            return {}
        size = given["max_batch_size"]
        # protobuf's JSON mapping writes and reads int32 as a number or a decimal string (Triton's examples send "16")
        number = int(size) if isinstance(size, str) and size.isdigit() else size
        if type(number) is not int or not 1 <= number <= self.limits.max_batch:
            raise ModelRefused(
                f"failed to load '{name}': max_batch_size must be a whole number from 1 to {self.limits.max_batch} "
                f"(TOYSEQ_MAX_BATCH), got {json.dumps(size)[:40]}"
            )
        return {"max_batch_size": number}

    def _limits(self, overrides: dict) -> Limits | None:
        if "max_batch_size" not in overrides:
            return None
        return dataclasses.replace(self.limits, max_batch=overrides["max_batch_size"])

    def unload(self, name: str, who: dict | None = None) -> dict:
        """Stop serving `name` in every worker (503 for it; readiness is unaffected)."""
        self._allowed("unload", name, who)
        snapshot = self.registry.current
        if name not in snapshot.names:
            raise NotFound(f"no model {_quote(name)} in the repository; known: {', '.join(snapshot.names) or 'none'}")
        with self._lock:
            last = self.registry.current.versions.get(name, FIRST_VERSION - 1)
            generation = self.channel.publish(name, "unload", "", last)[0] if self.channel else 0
            self._withdraw(name)
            self._applied[name] = {"generation": generation, "ok": True, "version": ""}
            self._acknowledge()
        workers = self._wait(name, generation, f"unload of {name}")
        log.info("model unloaded", extra={"fields": {"task": name, "workers": workers, **(who or {})}})
        return {
            "name": name,
            "unload": True,
            "version": "",
            "state": UNAVAILABLE,
            "reason": UNLOADED,
            "workers": workers,
        }

    def check(self, folder: Path) -> Predictor:
        """Load `folder` as start-up does (manifest schema, sha256, onnxruntime) and smoke-test it: the
        manifest's worked example must come back."""
        predictor = Predictor.load(folder, self.session_config)
        example = predictor.manifest["example"]
        got = predictor.predict(predictor.codec.check([example["input"]]))["outputs"][0]
        if not _close(got, example["output"]):
            raise manifest_mod.ManifestError(
                f"smoke prediction failed: the worked example {_short(example['input'])} gave {_short(got)}, "
                f"the manifest expects {_short(example['output'])}"
            )
        return predictor

    # -- following the other workers --------------------------------------------------------------------

    def start(self) -> None:
        """Apply what was published before this worker started, then follow (a daemon thread; the app is
        built in each worker after fork, so the thread is this worker's)."""
        if self.channel is None:
            return
        self.follow()
        self._thread = threading.Thread(target=_watch, args=(weakref.ref(self),), name="toyseq-control", daemon=True)
        self._thread.start()

    def follow(self) -> None:
        """Apply every task's action newer than what this worker applied, then acknowledge."""
        assert self.channel is not None
        with self._lock:
            for action in self.channel.actions():
                done = self._applied.get(action.task)
                if done is not None and done["generation"] >= action.generation:
                    continue
                if action.action == "unload":
                    self._withdraw(action.task)
                    self._applied[action.task] = {"generation": action.generation, "ok": True, "version": ""}
                else:
                    self._applied[action.task] = self._follow_load(action)
            self._acknowledge()

    def _follow_load(self, action: Action) -> dict:
        name, generation, sha256, version = action.task, action.generation, action.sha256, action.version
        current = self.registry.current.predictors.get(name)
        if current is not None and current.sha256 == sha256:  # started after the folder changed, or a reload
            self.registry.serve(name, current, version, self._limits(action.config))  # as every worker agreed
            return {"generation": generation, "ok": True, "version": str(version)}
        folder = self.models_dir / name
        try:
            candidate = self.check(folder)
            if candidate.sha256 != sha256:
                raise manifest_mod.ManifestError(
                    f"the folder changed after the load was requested: model.onnx is {candidate.sha256[:12]}..., "
                    f"the load checked {sha256[:12]}..."
                )
        except Exception as err:
            reason = client_safe(err, folder)
            log.error("load not applied", extra={"fields": {"task": name, "pid": self.pid, "reason": reason}})
            if self.on_failure:
                self.on_failure(name)
            return {"generation": generation, "ok": False, "version": "", "reason": reason}
        self.registry.serve(name, candidate, version, self._limits(action.config))
        fields = {"task": name, "version": version, "sha256": short_sha(sha256), "pid": self.pid}
        log.info("model loaded", extra={"fields": fields})
        return {"generation": generation, "ok": True, "version": str(version)}

    # -- helpers ----------------------------------------------------------------------------------------

    def _allowed(self, action: str, name: str, who: dict | None) -> None:
        if not self.explicit:
            log.warning(f"{action} refused: model control is off", extra={"fields": {"task": name, **(who or {})}})
            raise ControlDisabled(
                f"model control is off: {action} needs the service started with TOYSEQ_MODEL_CONTROL=explicit"
            )

    def _folder(self, name: str) -> Path:
        # Only names of folders that exist are used to build a path: a URL never chooses one.
        for folder in manifest_mod.discover(self.models_dir):
            if folder.name == name:
                return folder
        known = ", ".join(f.name for f in manifest_mod.discover(self.models_dir)) or "none"
        raise NotFound(f"failed to load {_quote(name)}: no such model folder in the repository; folders: {known}")

    def _withdraw(self, name: str) -> None:
        if name in self.registry.current.names:
            self.registry.withdraw(name, f"{UNLOADED}; POST /v2/repository/models/{name}/load serves it again")

    def _acknowledge(self) -> None:
        if self.channel is not None:
            self.channel.acknowledge(self.pid, dict(self._applied))

    def _wait(self, name: str, generation: int, what: str) -> int:
        """The number of workers now serving the change (this one included); raises when others failed or are late."""
        if self.channel is None:
            return 1
        waited = self.channel.wait(name, generation, self.pid, self.timeout)
        failed = {pid: r.get("reason", "") for pid, r in waited.done.items() if not r.get("ok")}
        if failed:
            reasons = "; ".join(f"worker {pid}: {reason}" for pid, reason in sorted(failed.items()))
            raise WorkersDisagree(f"{what} applied here but not in every worker: {reasons}", extra={"task": name})
        if waited.missing:
            raise WorkersLate(
                f"{what} applied here, but workers {', '.join(map(str, sorted(waited.missing)))} had not applied it "
                f"within {self.timeout:g} s (TOYSEQ_MODEL_CONTROL_TIMEOUT); they will when they catch up",
                extra={"task": name},
            )
        return 1 + len(waited.done)


def _watch(ref: weakref.ReferenceType[Repository]) -> None:
    """Every POLL seconds, one stat of the control state; a change is applied. Holds the repository weakly, so
    an app that is dropped (tests build many) takes its thread with it; under gunicorn it ends with the worker."""
    stop = threading.Event()  # never set
    while not stop.wait(POLL):
        repository = ref()
        if repository is None:
            return
        try:
            if repository.channel is not None and repository.channel.changed():
                repository.follow()
        except Exception:  # a bad read must not end the thread: the next change retries
            log.exception("following model loads failed")
        del repository


def _close(got: Any, want: Any) -> bool:
    """Equal, numbers within float64 round-off of the exported model (real tasks' examples are floats)."""
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(_close, got, want))
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-6)
    return bool(got == want)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _quote(name: str) -> str:
    return repr(name if len(name) <= 60 else name[:57] + "...")
