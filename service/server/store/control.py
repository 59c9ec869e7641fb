"""How a model load or unload reaches every gunicorn worker: a shared control directory, independent of the
worker class (gunicorn_conf.py makes one per server and sets TOYSEQ_CONTROL_DIR before the workers start).

    <dir>/state.json          {"generation": N, "tasks": {task: {"generation", "action", "sha256", "version",
                                                                    "config"}}}
    <dir>/lock                flock'd while state.json is rewritten
    <dir>/workers/<pid>.json  what that worker has applied: {"pid", "tasks": {task: {"generation", "ok", ...}}}

The worker that takes a load request publishes an action (the next generation, under the lock, written to a
temporary file and renamed, so readers never see half a file). A load also takes the task's next version
number there, under the same lock, so every worker serves the model under one number (Triton's integer
versions); an unload keeps the last number, so the next load after it takes a new one. Every worker runs a small thread that stats
state.json every POLL seconds, applies each task's newer action and rewrites its own acknowledgement; the
publisher waits until every live worker has acknowledged its generation. A worker that starts later reads the
state before it serves (an unloaded task stays unloaded) and registers once it has applied it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

STATE = "state.json"
LOCK = "lock"
WORKERS = "workers"
POLL = 0.1  # seconds between two stats of state.json in each worker


@dataclass(frozen=True)
class Action:
    task: str
    generation: int
    action: str  # "load" or "unload"
    sha256: str  # load: the model.onnx hash every worker must end up serving; unload: ""
    version: int  # load: the version number every worker serves it as; unload: the last one given
    config: dict  # load: the configuration it overrides (Triton's load `config`: {"max_batch_size": n}), or {}


@dataclass
class Waited:
    """What the publisher learnt from the other workers: who applied the action (and how), who did not."""

    done: dict[int, dict]  # pid -> that worker's result for the task
    missing: list[int]  # live workers that had not acknowledged when the wait timed out


class Channel:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        (self.path / WORKERS).mkdir(parents=True, exist_ok=True)
        self._seen: tuple[int, int, int] | None = None

    def publish(
        self, task: str, action: str, sha256: str = "", last: int = 0, config: dict | None = None
    ) -> tuple[int, int]:
        """Record `action` for `task` as the next generation; returns it and the task's version number: for a
        load the next one, for an unload the last one (`last`, the number served since start-up, when no load of
        the task was published yet: 1 for a model served at start-up, 0 for one never served)."""
        with open(self.path / LOCK, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._read()
            generation = state["generation"] + 1
            state["generation"] = generation
            last = int(state["tasks"].get(task, {}).get("version", last))
            version = last + 1 if action == "load" else last
            record = {"generation": generation, "action": action, "sha256": sha256, "version": version}
            state["tasks"][task] = {**record, "config": config or {}}
            _write(self.path / STATE, state)
            return generation, version

    def actions(self) -> list[Action]:
        """Every task's latest action, oldest first."""
        tasks = self._read()["tasks"]
        found = [
            Action(
                t,
                int(a["generation"]),
                a["action"],
                a.get("sha256", ""),
                int(a.get("version", 1)),
                a.get("config") or {},
            )
            for t, a in tasks.items()
        ]
        return sorted(found, key=lambda a: a.generation)

    def changed(self) -> bool:
        """Whether state.json changed since the last call: one stat, the watcher's only cost when nothing does."""
        try:
            st = os.stat(self.path / STATE)
        except FileNotFoundError:
            return False
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)  # a rename gives a new inode even within one mtime tick
        if seen == self._seen:
            return False
        self._seen = seen
        return True

    def acknowledge(self, pid: int, tasks: dict[str, dict]) -> None:
        _write(self.path / WORKERS / f"{pid}.json", {"pid": pid, "tasks": tasks})

    def forget(self, pid: int) -> None:
        """A worker exited (gunicorn_conf's child_exit): nobody waits for it any more."""
        try:
            os.remove(self.path / WORKERS / f"{pid}.json")
        except FileNotFoundError:
            pass

    def wait(self, task: str, generation: int, own_pid: int, timeout: float) -> Waited:
        """Wait until every other live worker has applied `generation` (or a later one) of `task`."""
        deadline = time.monotonic() + timeout
        while True:
            done, missing = {}, []
            for pid, tasks in self._workers().items():
                if pid == own_pid:
                    continue
                result = tasks.get(task)
                if result is not None and int(result.get("generation", 0)) >= generation:
                    done[pid] = result
                else:
                    missing.append(pid)
            if not missing or time.monotonic() >= deadline:
                return Waited(done, missing)
            time.sleep(POLL / 2)

    def clear(self) -> None:
        """A new server starts from nothing (gunicorn_conf's on_starting): no actions, no workers."""
        for path in (self.path / WORKERS).glob("*.json"):
            path.unlink(missing_ok=True)
        (self.path / STATE).unlink(missing_ok=True)

    def _workers(self) -> dict[int, dict]:
        found = {}
        for path in (self.path / WORKERS).glob("*.json"):
            try:
                pid = int(path.stem)
                record = json.loads(path.read_text())
            except (ValueError, OSError):  # gone meanwhile, or not ours
                continue
            if _alive(pid):
                found[pid] = record.get("tasks", {})
            else:  # exited without gunicorn's child_exit (killed with its master)
                path.unlink(missing_ok=True)
        return found

    def _read(self) -> dict:
        try:
            state = json.loads((self.path / STATE).read_text())
        except FileNotFoundError:
            return {"generation": 0, "tasks": {}}
        return {"generation": int(state.get("generation", 0)), "tasks": dict(state.get("tasks", {}))}


def _write(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, someone else's
        return True
    return True
