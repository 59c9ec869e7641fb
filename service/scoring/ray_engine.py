"""Batch scoring on Ray Data: the same rows, checks and answers as the local engine, on every core of a
machine or a cluster, from local files or object storage.

    toyseq-score echo rows.jsonl -o answers/ --engine ray                    # a local Ray on this machine
    RAY_ADDRESS=10.0.0.5:6379 toyseq-score ramp s3://bucket/in/ -o s3://bucket/out/ --engine ray --steps 5

    from service.scoring.ray_engine import score_files
    summary = score_files("echo", "rows.parquet", "answers/")   # Summary(rows=..., errors=..., ...)

The pipeline (one Ray Data dataset, streamed):
1. read: one read task per input file (a local path, a directory of part files, or any URI pyarrow's
   filesystems open: s3://, gs://, file://...). JSONL and CSV files are cut into blocks of raw lines,
   blank lines skipped as locally; Parquet files into record batches of the sequence (and id) column.
   Each row keeps its place (file, line or row number). Ray's own JSON and CSV readers do not fit: they
   want one object per JSON line and a fixed number of CSV columns, and a bad line fails the whole file,
   where toyseq reads arrays of any length and reports a bad line in place.
2. score: `map_batches` over an actor pool; each actor loads the task's Predictor once (from the model
   files shipped with the job, so cluster nodes need no copy of models/) and answers whole blocks with
   the local engine's LocalBackend: the same codec checks, error texts and predict calls.
3. write: each contiguous run of rows becomes one part file of the input's format, named
   part-<file>-<first line>.<ext>, so sorting the names restores input order (CSV and id-less JSONL
   rows have nothing else to match them by). Concatenating the sorted parts of a one-file input gives
   exactly the local engine's output.

Ray and pyarrow are optional (`pip install 'toyseq[ray]'`): this module imports them only when called.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ..core.manifest import default_models_dir
from . import formats as rows_mod
from .engine import LOCAL_CHUNK_ROWS, LocalBackend, UsageError

MISSING = "the ray engine needs Ray: pip install 'toyseq[ray]'"
EXTENSIONS = {"jsonl": ("jsonl", "ndjson", "json"), "csv": ("csv",), "parquet": ("parquet", "pq")}
# Ray schedules by logical CPUs. An actor scoring rows keeps a core busy; read and write tasks mostly
# wait on I/O. Actors take a little less than a CPU each so that one actor per core still leaves room
# for the read and write tasks (were actors to take whole CPUs, reading could never be scheduled).
ACTOR_CPUS = 0.8
IO_CPUS = 0.1
CONNECT_TIMEOUT_S = 5.0  # the reachability probe of a cluster address: ray.init itself would retry for minutes
READ_BUFFER = 1 << 22
LOCAL_OBJECT_STORE = 1 << 30  # a local Ray's shared memory: blocks stream through, they do not pile up


@dataclass
class Summary:
    rows: int
    errors: int
    seconds: float  # the whole job, Ray's start (or attach) included
    startup: float  # ray.init: starting a local Ray or attaching to a cluster
    files_in: int
    files_out: int
    actors: int
    cpus: float  # the cluster's CPUs


def ray_modules():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError(MISSING) from None
    from .parquet import pyarrow

    return ray, pyarrow()


# --- where things are --------------------------------------------------------------------------


def resolve(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path on it) for a local path or a URI (s3://, gs://, file://, ...)."""
    import pyarrow.fs as pafs

    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    try:
        return pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as err:  # pyarrow.ArrowInvalid is a ValueError
        raise UsageError(f"cannot open {uri}: {err}") from None


def input_files(uri: str, fmt: str | None) -> tuple[Any, list[str], str, str]:
    """(filesystem, files sorted by path, their format, the folder names are relative to)."""
    import pyarrow.fs as pafs

    fs, path = resolve(uri)
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise UsageError(f"cannot read {uri}: no such file or directory")
        if info.type == pafs.FileType.File:
            files, root = [path], os.path.dirname(path)
        else:
            selector = pafs.FileSelector(path, recursive=True)
            # as Ray's own readers: names starting with "_" or "." (_SUCCESS, .crc) are not data
            files = sorted(
                f.path
                for f in fs.get_file_info(selector)
                if f.type == pafs.FileType.File
                and not any(part.startswith(("_", ".")) for part in os.path.relpath(f.path, path).split("/"))
            )
            root = path
    except OSError as err:
        raise UsageError(f"cannot read {uri}: {err}") from None
    if fmt is None:
        found = {rows_mod.format_of(f, "") for f in files} - {""}
        if len(found) != 1:
            raise UsageError(
                f"cannot tell the format of {uri} ({', '.join(sorted(found)) or 'no known extension'}): use --format"
            )
        fmt = found.pop()
    if info.type != pafs.FileType.File:
        files = [f for f in files if f.lower().endswith(tuple("." + e for e in EXTENSIONS[fmt]))]
    if not files:
        raise UsageError(f"cannot read {uri}: no {fmt} files in it")
    return fs, files, fmt, root


def output_folder(uri: str) -> tuple[Any, str]:
    """The output folder, created; refuses one that holds files (their parts would mix with ours)."""
    import pyarrow.fs as pafs

    fs, path = resolve(uri)
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            raise UsageError(f"{uri} is a file: --engine ray writes part files into a directory")
        if info.type == pafs.FileType.Directory and fs.get_file_info(pafs.FileSelector(path, recursive=False)):
            raise UsageError(f"{uri} is not empty: give a new or empty directory for the part files")
        fs.create_dir(path, recursive=True)
    except OSError as err:
        raise UsageError(f"cannot write {uri}: {err}") from None
    return fs, path


def model_files(folder: Path) -> dict[str, bytes]:
    """The task's files, shipped to the actors with the job (a few hundred KB)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# --- Ray -------------------------------------------------------------------------------------------


def check_reachable(address: str) -> None:
    """Fail fast, in CONNECT_TIMEOUT_S, on an address nothing listens at."""
    if address in ("auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    if not parsed.hostname or not parsed.port:
        raise UsageError(f"Ray address {address!r} is not host:port (or ray://host:port, or auto)")
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        raise UsageError(f"cannot reach the Ray cluster at {address}: {err.strerror or err}") from None


def start_ray(address: str | None, cpus: int | None = None) -> float:
    """Attach to `address` (or $RAY_ADDRESS), else start a local Ray with the machine's cores (unless
    this process already has Ray up); returns the seconds it took."""
    ray, _ = ray_modules()
    started = time.perf_counter()
    if ray.is_initialized():
        return 0.0
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address:
            check_reachable(address)
            ray.init(address=address, **quiet)
        else:
            ray.init(
                num_cpus=cpus or len(os.sched_getaffinity(0)),
                include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE,
                **quiet,
            )
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise UsageError(
            f"cannot start or attach to Ray{' at ' + address if address else ''}: "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from None
    return time.perf_counter() - started


def runs(table: Any) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of rows from one read block: Ray may hand several blocks to one call."""
    n = table.num_rows
    if not n:
        return
    files = table.column("file").to_numpy()
    blocks = table.column("block").to_numpy()
    cuts = (np.flatnonzero((files[1:] != files[:-1]) | (blocks[1:] != blocks[:-1])) + 1).tolist()
    yield from zip([0, *cuts], [*cuts, n])


def _lines_source(base):
    class LinesSource(base):
        """JSONL or CSV files as blocks of (file, block, line, raw) rows, blank lines skipped."""

        def __init__(self, paths, filesystem, chunk_rows: int, index: dict[str, int]):
            super().__init__(paths, filesystem=filesystem)
            self._chunk_rows = chunk_rows
            self._index = index

        def _read_stream(self, f, path: str):
            import pyarrow as pa

            file = self._index[path]
            lines: list[bytes] = []
            numbers: list[int] = []

            def block():
                n = len(lines)
                return pa.table(
                    {
                        "file": pa.array(np.full(n, file, dtype=np.int32)),
                        "block": pa.array(np.full(n, numbers[0], dtype=np.int64)),
                        "line": pa.array(numbers, pa.int64()),
                        "raw": pa.array(lines, pa.binary()),
                    }
                )

            line_no = 0
            rest = b""
            while True:
                data = f.read(READ_BUFFER)
                pieces = (rest + data).split(b"\n")
                rest = pieces.pop() if data else b""
                for line in pieces:
                    line_no += 1
                    if line.strip():
                        lines.append(line + b"\n")
                        numbers.append(line_no)
                        if len(lines) >= self._chunk_rows:
                            yield block()
                            lines, numbers = [], []
                if not data:
                    break
            if lines:
                yield block()

    return LinesSource


def _parquet_source(base):
    class ParquetSource(base):
        """Parquet files as record batches of (file, block, line, inputs[, id]) rows."""

        def __init__(self, paths, filesystem, chunk_rows: int, index: dict[str, int], column: str | None):
            super().__init__(paths, filesystem=filesystem)
            self._chunk_rows = chunk_rows
            self._index = index
            self._column = column

        def _open_input_source(self, filesystem, path, **open_args):
            return filesystem.open_input_file(path)  # Parquet reads its footer first: random access

        def _read_stream(self, f, path: str):
            import pyarrow as pa

            from .parquet import input_columns, open_file

            parquet_file = open_file(f)
            name, id_name = input_columns(parquet_file.schema_arrow, self._column)
            file = self._index[path]
            first = 1
            for batch in parquet_file.iter_batches(
                batch_size=self._chunk_rows, columns=[name] if id_name is None else [name, id_name]
            ):
                n = batch.num_rows
                columns = {
                    "file": pa.array(np.full(n, file, dtype=np.int32)),
                    "block": pa.array(np.full(n, first, dtype=np.int64)),
                    "line": pa.array(np.arange(first, first + n, dtype=np.int64)),
                    "inputs": batch.column(name),
                }
                if id_name:
                    columns["id"] = batch.column(id_name)
                yield pa.table(columns)
                first += n

    return ParquetSource


class ScoreActor:
    """One per actor: loads the task's Predictor once, then answers blocks with the local engine's checks."""

    def __init__(
        self,
        task: str,
        files: list[Any],
        fmt: str,
        steps: int | None,
        top_k: int | None,
        labels: list[str],
        schema: bytes | None,
    ):
        import ray

        from ..core.predictor import Predictor, SessionConfig

        contents: dict[str, bytes] = ray.get(files[0])
        folder = Path(tempfile.mkdtemp(prefix="toyseq-actor-")) / task
        folder.mkdir()
        for name, data in contents.items():
            (folder / name).write_bytes(data)
        predictor = Predictor.load(folder, SessionConfig(intra_op_threads=1))
        self.backend = LocalBackend(predictor, steps, top_k, workers=1)
        self.fmt = fmt
        self.labels = labels  # how errors name each file's rows: "line", "row" or "part-1.jsonl line"
        self.schema = None
        if schema is not None:
            import pyarrow as pa

            self.schema = pa.ipc.read_schema(pa.py_buffer(schema))

    def __call__(self, table):
        import pyarrow as pa

        out = []
        for start, end in runs(table):
            part = table.slice(start, end - start)
            file = part.column("file")[0].as_py()
            block = part.column("block")[0].as_py()
            numbers = part.column("line").to_pylist()
            where = self.labels[file]
            if self.fmt == "parquet":
                from .parquet import chunk_of

                chunk = chunk_of(part, "inputs", "id" if "id" in part.column_names else None, numbers, where)
            elif self.fmt == "jsonl":
                chunk = rows_mod.parse_jsonl(part.column("raw").to_pylist(), numbers, where)
            else:
                chunk = rows_mod.parse_csv(part.column("raw").to_pylist(), numbers, where)
            answers = self.backend.answer(chunk) if len(chunk) else rows_mod.Answers([], None, {})
            n = len(chunk)
            head = {
                "file": pa.array(np.full(n, file, dtype=np.int32)),
                "block": pa.array(np.full(n, block, dtype=np.int64)),
                "line": pa.array(list(chunk.lines), pa.int64()),
            }
            if self.schema is not None:
                from .parquet import answers_table

                body = answers_table(chunk, answers, self.schema)
                out.append(pa.table({**head, **{name: body.column(name) for name in body.column_names}}))
            else:
                rows = rows_mod.jsonl_rows(chunk, answers) if self.fmt == "jsonl" else rows_mod.csv_rows(chunk, answers)
                failed = np.zeros(n, dtype=bool)
                failed[list(answers.errors)] = True
                out.append(pa.table({**head, "out": pa.array(rows, pa.binary()), "failed": pa.array(failed)}))
        if not out:
            return table.slice(0, 0).select(["file", "block", "line"])
        return pa.concat_tables(out) if len(out) > 1 else out[0]


def _part_sink(base):
    class PartSink(base):
        """Each run of rows from one read block becomes one part file, named to sort in input order."""

        def __init__(self, filesystem, folder: str, fmt: str, columns: list[str] | None):
            self.filesystem = filesystem
            self.folder = folder
            self.fmt = fmt
            self.columns = columns  # Parquet: the answer columns to write
            self.totals = (0, 0, 0)

        def write(self, blocks, ctx) -> tuple[int, int, int]:
            import pyarrow.parquet as pq

            rows = errors = files = 0
            for block in blocks:
                for start, end in runs(block):
                    part = block.slice(start, end - start)
                    name = (
                        f"part-{part.column('file')[0].as_py():05d}-{part.column('line')[0].as_py():012d}."
                        f"{EXTENSIONS[self.fmt][0]}"
                    )
                    with self.filesystem.open_output_stream(f"{self.folder}/{name}") as f:
                        if self.columns is not None:
                            answers = part.select(self.columns)
                            pq.write_table(answers, f)
                            errors += answers.num_rows - answers.column("error").null_count
                        else:
                            f.write(b"".join(part.column("out").to_pylist()))
                            errors += int(part.column("failed").to_numpy().sum())
                    rows += part.num_rows
                    files += 1
            return rows, errors, files

        def on_write_complete(self, write_result) -> None:
            done = [r for r in write_result.write_returns if r]
            self.totals = tuple(sum(column) for column in zip(*done)) if done else (0, 0, 0)

    return PartSink


def score_files(
    task: str,
    input: str,
    output: str,
    *,
    fmt: str | None = None,
    models_dir: str | None = None,
    steps: int | None = None,
    top_k: int | None = None,
    chunk_rows: int | None = None,
    address: str | None = None,
    actors: int | None = None,
    column: str | None = None,
    progress: bool = False,
) -> Summary:
    """Score every row of `input` (a file, a directory of part files or a URI) into part files in the
    directory `output`; raises UsageError when the job cannot run. Starts a local Ray with the
    machine's cores unless `address` (or $RAY_ADDRESS) names a cluster or this process has Ray up."""
    began = time.perf_counter()
    ray, pa = ray_modules()
    from ray.data import DataContext
    from ray.data.datasource import Datasink, FileBasedDatasource

    # the driver loads the task once to refuse bad options and a bad model before Ray starts
    local = LocalBackend.load(task, models_dir, steps, top_k, workers=1)
    local.close()
    folder = (Path(models_dir) if models_dir else default_models_dir()) / task
    in_fs, files, fmt, root = input_files(input, fmt)
    if fmt == "csv" and top_k is not None:
        raise UsageError("--top-k needs JSONL or Parquet (CSV rows hold only the output)")
    chunk_rows = chunk_rows or LOCAL_CHUNK_ROWS
    unit = "row" if fmt == "parquet" else "line"
    labels = [unit] if len(files) == 1 else [f"{os.path.relpath(f, root)} {unit}" for f in files]
    schema = None
    if fmt == "parquet":
        from .parquet import input_columns, open_file, output_schema

        try:
            with in_fs.open_input_file(files[0]) as f:
                first_schema = open_file(f).schema_arrow
        except OSError as err:
            raise UsageError(f"cannot read {files[0]}: {err}") from None
        _, id_name = input_columns(first_schema, column)
        schema = output_schema(
            local.predictor.manifest["output"],
            steps,
            bool(top_k),
            first_schema.field(id_name).type if id_name else None,
        )
    out_fs, out_path = output_folder(output)

    startup = start_ray(address)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = progress
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING if progress else logging.ERROR)
    cpus = float(ray.cluster_resources().get("CPU", 1))
    actors = actors or max(1, int(cpus))
    index = {f: i for i, f in enumerate(files)}
    if fmt == "parquet":
        source = _parquet_source(FileBasedDatasource)(files, in_fs, chunk_rows, index, column)
    else:
        source = _lines_source(FileBasedDatasource)(files, in_fs, chunk_rows, index)
    dataset = ray.data.read_datasource(source, num_cpus=IO_CPUS)
    # the model files go to the object store once; wrapped in a list, the reference reaches each actor
    # as is (a bare one would be resolved into inline constructor arguments of every actor)
    files_ref = [ray.put(model_files(folder))]
    dataset = dataset.map_batches(
        ScoreActor,
        batch_size=None,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=ACTOR_CPUS,
        # Ray Data restarts lost actors by default, but it creates every actor with constructor arguments of
        # its own in the object store (its map transformer and context, whatever the UDF takes), and Ray core
        # cannot promise such restarts: it logs an error-level core_worker.cc line for each actor saying so
        # (ray-project/ray#53727, #57733; a UDF with no arguments at all gets it too). Our actors hold only
        # the model, so a lost one is not restarted: the job stops with exit 2 and its part files say how far
        # it got, rather than relying on a restart Ray itself calls unreliable.
        max_restarts=0,
        fn_constructor_kwargs={
            "task": task,
            "files": files_ref,
            "fmt": fmt,
            "steps": steps,
            "top_k": top_k,
            "labels": labels,
            "schema": None if schema is None else schema.serialize().to_pybytes(),
        },
    )
    sink = _part_sink(Datasink)(out_fs, out_path, fmt, None if schema is None else schema.names)
    dataset.write_datasink(sink, ray_remote_args={"num_cpus": IO_CPUS})
    rows, errors, files_out = sink.totals
    return Summary(rows, errors, time.perf_counter() - began, startup, len(files), files_out, actors, cpus)
