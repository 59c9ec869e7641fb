"""Batch scoring: answer a stream of rows in Chunks, in input order, with flat memory.

Two backends answer a chunk: LocalBackend (a Predictor in this process) and RemoteBackend (a running
service, through service.scoring.client). The Scorer keeps a bounded number of chunks in flight, so memory is
bounded by `chunk_rows x in_flight` however long the input is, and yields answers in input order.

    from service.scoring.engine import LocalBackend, Scorer
    scorer = Scorer(LocalBackend.load("echo-lag", "models"))
    for row, answer in scorer.score_sequences([[5, 3, 8], [1, 2]]):
        print(answer.output)          # [5, 3] then [1]
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.capabilities import Capabilities
from ..core.codec import Checked, InputError
from ..core.manifest import ManifestError, default_models_dir, discover
from ..core.predictor import Predictor, SessionConfig
from .formats import Answer, Answers, Chunk, Row, chunks_of

if TYPE_CHECKING:  # http.client is imported only in remote mode, to keep local start-up short
    from .client import Client, RemoteError

LOCAL_CHUNK_ROWS = 8192
REMOTE_CHUNK_ROWS = 1000  # well under the service's default TOYSEQ_MAX_BATCH (10000)
MAX_LOCAL_STEPS = 100_000  # no request limit applies in-process; this only catches typos


class UsageError(Exception):
    """The job cannot run as asked (unknown task, unsupported option, refused by the service)."""


def check_options(capabilities: Capabilities, steps: int | None, top_k: int | None) -> None:
    """Refuse what the task cannot do before any row is read, in the service's words (it answers 422)."""
    for option, value in (("steps", steps), ("top_k", top_k)):
        message = None if value is None else capabilities.problem(option, value)
        if message:
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"{flag} {message}" if capabilities.maximum(option) else message)


class LocalBackend:
    """Checks rows with the task's codec and answers them with its Predictor, in this process.

    A chunk is checked in one codec.check call; only when that fails are rows checked one by one to
    say which. The whole chunk goes to one Predictor.predict call, which sorts its rows by length into
    onnxruntime calls that pad little. `workers` threads answer chunks side by side on one
    single-threaded session (onnxruntime runs are thread-safe and release the GIL): parallel runs scale
    better than intra-op threads for these small per-step matrices, and reading and writing overlap
    with inference."""

    def __init__(self, predictor: Predictor, steps: int | None = None, top_k: int | None = None, workers: int = 1):
        check_options(Capabilities.of(predictor, MAX_LOCAL_STEPS), steps, top_k)
        self.predictor = predictor
        self.output = predictor.manifest["output"]
        self.codec = predictor.codec
        self.steps = steps
        self.top_k = top_k
        self.chunk_rows = LOCAL_CHUNK_ROWS
        self.in_flight = workers + 1
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="toyseq-score")

    @classmethod
    def load(
        cls,
        task: str,
        models_dir: str | os.PathLike | None = None,
        steps: int | None = None,
        top_k: int | None = None,
        workers: int | None = None,
    ) -> LocalBackend:
        models_dir = Path(models_dir) if models_dir else default_models_dir()
        folder = models_dir / task
        if not models_dir.is_dir():
            raise UsageError(f"no models folder at {models_dir.resolve()}: pass --models-dir or set TOYSEQ_MODELS_DIR")
        if not (folder / "manifest.json").is_file():
            known = ", ".join(p.name for p in discover(models_dir)) or "none"
            raise UsageError(f"unknown task {task!r} in {models_dir} (known: {known})")
        workers = workers or len(os.sched_getaffinity(0))
        try:
            predictor = Predictor.load(folder, SessionConfig(intra_op_threads=1))
        except ManifestError as err:
            raise UsageError(f"task {task} is unavailable: {err}") from None
        return cls(predictor, steps, top_k, workers)

    def submit(self, chunk: Chunk) -> Future:
        return self._pool.submit(self.answer, chunk)

    def answer(self, chunk: Chunk) -> Answers:
        n = len(chunk)
        errors = dict(chunk.errors)
        todo = [i for i in range(n) if i not in errors] if errors else None  # None: every row
        sequences = chunk.sequences if todo is None else [chunk.sequences[i] for i in todo]
        arrays: Checked = []
        if sequences:
            try:
                arrays = self.codec.check(sequences)
            except InputError:
                todo, arrays = self._check_each(chunk, range(n) if todo is None else todo, errors)
        if not len(arrays):  # a 2-D array has no truth value
            return Answers.empty(n, bool(self.top_k), errors)
        result = self.predictor.predict(arrays, self.steps, self.top_k)
        if todo is None:  # every row answered: the predictor's lists are the chunk's
            return Answers(result["outputs"], result.get("top_k"), errors, result["in_domain"].count(False))
        answers = Answers.empty(n, bool(self.top_k), errors)
        answers.fill(todo, result)
        return answers

    def _check_each(self, chunk: Chunk, todo: Iterable[int], errors: dict[int, str]) -> tuple[list[int], list]:
        good: list[int] = []
        arrays: list[np.ndarray] = []
        for i in todo:
            try:
                arrays.extend(self.codec.check([chunk.sequences[i]]))
                good.append(i)
            except InputError as err:
                errors[i] = chunk.error(i, [(p.pointer[len("/inputs/0") :], p.message) for p in err.problems])
        return good, arrays

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


_ROW_POINTER = re.compile(r"^/inputs/(\d+)(/.*)?$")


class RemoteBackend:
    """Sends chunks to POST /tasks/<task>/predict of a running service, `concurrency` at a time.

    A chunk answered 422 is split by the pointers of its problems: rows named there get their error,
    the others are sent again (the service lists at most a few problems per answer, so this repeats
    until the rest is accepted). 413, or a 422 over the service's cost budget, halves the chunk; a single
    row refused so is an error row like any other. 503 and connection errors are retried with
    backoff by the Client."""

    def __init__(
        self,
        client: Client,
        task: str,
        steps: int | None = None,
        top_k: int | None = None,
        concurrency: int = 4,
        chunk_rows: int = REMOTE_CHUNK_ROWS,
        output: dict | None = None,
    ):
        self.client = client
        self.output = output or {}  # the task's manifest "output" section, as the service reports it
        self.task = task
        self.steps = steps
        self.top_k = top_k
        self.chunk_rows = chunk_rows
        self.in_flight = 2 * concurrency
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="toyseq-remote")

    def submit(self, chunk: Chunk) -> Future:
        return self._pool.submit(self.answer, chunk)

    def answer(self, chunk: Chunk) -> Answers:
        from .client import (
            RemoteError,  # imported by now (the Client exists); see the top of the module
        )

        errors = dict(chunk.errors)
        answers = Answers.empty(len(chunk), bool(self.top_k), errors)
        pending = [[i for i in range(len(chunk)) if i not in errors]]
        while pending:
            todo = pending.pop()
            if not todo:
                continue
            try:
                result = self.client.predict(self.task, [chunk.sequences[i] for i in todo], self.steps, self.top_k)
            except RemoteError as err:
                pending.extend(self._split(err, chunk, todo, errors))
                continue
            answers.fill(todo, result)
        return answers

    def _split(self, err: RemoteError, chunk: Chunk, todo: list[int], errors: dict[int, str]) -> list[list[int]]:
        """What to send again after a refused chunk; raises UsageError when rows are not the cause."""
        too_big = err.status == 413 or str(err.problem.get("type", "")).endswith(":over-budget")
        if too_big and len(todo) > 1:  # the chunk, not a row, is the problem: send it in halves
            return [todo[: len(todo) // 2], todo[len(todo) // 2 :]]
        if err.status == 413:  # one row alone is over the service's body limit: that row's error, not the job's
            errors[todo[0]] = chunk.error(todo[0], [("", f"too large for the service: {err}")])
            return []
        if err.status != 422:
            raise UsageError(f"{self.client.base_url}: {err}")
        by_row: dict[int, list[tuple[str, str]]] = {}
        for problem in err.errors:
            match = _ROW_POINTER.match(str(problem.get("pointer", "")))
            if match and int(match.group(1)) < len(todo):
                by_row.setdefault(int(match.group(1)), []).append((match.group(2) or "", str(problem.get("message"))))
        if not by_row:
            if len(todo) == 1:  # a problem without a row pointer, yet only this row was sent
                errors[todo[0]] = chunk.error(todo[0], [("", str(err))])
                return []
            raise UsageError(f"the service refused the request: {err}")
        for j, problems in by_row.items():
            errors[todo[j]] = chunk.error(todo[j], problems)
        return [[i for j, i in enumerate(todo) if j not in by_row]]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()


class Scorer:
    """Answers rows in input order, `backend.in_flight` chunks of `backend.chunk_rows` at a time."""

    def __init__(self, backend: LocalBackend | RemoteBackend, chunk_rows: int | None = None):
        self.backend = backend
        self.chunk_rows = chunk_rows or backend.chunk_rows

    def score_chunks(self, chunks: Iterable[Chunk]) -> Iterator[tuple[Chunk, Answers]]:
        """(chunk, answers) pairs, in input order."""
        in_flight: deque[tuple[Chunk, Future]] = deque()
        try:
            for chunk in chunks:
                if not len(chunk):
                    continue
                in_flight.append((chunk, self.backend.submit(chunk)))
                if len(in_flight) >= self.backend.in_flight:
                    done, future = in_flight.popleft()
                    yield done, future.result()
            while in_flight:
                done, future = in_flight.popleft()
                yield done, future.result()
        finally:
            for _, future in in_flight:
                future.cancel()

    def score(self, rows: Iterable[Row]) -> Iterator[tuple[Row, Answer]]:
        for chunk, answers in self.score_chunks(chunks_of(rows, self.chunk_rows)):
            for i in range(len(chunk)):
                yield chunk.row(i), answers[i]

    def score_sequences(self, sequences: Iterable) -> Iterator[tuple[Row, Answer]]:
        """Score plain sequences (lists of numbers); Row.line is the 1-based position."""
        return self.score(Row(n, seq) for n, seq in enumerate(sequences, 1))

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
