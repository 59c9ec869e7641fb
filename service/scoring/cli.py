"""Score a file of sequences with a toyseq task, in-process or against a running service.

    python -m service.scoring TASK [INPUT] [-o OUTPUT] [--steps K] [--top-k K] [--url URL] ...
    toyseq-score echo-lag rows.jsonl -o answers.jsonl         # local: loads models/echo-lag, from any directory
    cat rows.csv | toyseq-score last-value --format csv        # stdin -> stdout
    toyseq-score ramp rows.jsonl --steps 5 --url http://127.0.0.1:8000 --concurrency 4
    toyseq-score echo rows.parquet -o answers.parquet                # Parquet (pip install 'toyseq[parquet]')
    toyseq-score echo s3://bucket/rows/ -o s3://bucket/answers/ --engine ray   # Ray Data ('toyseq[ray]')

INPUT is JSONL (each line a JSON array, or {"inputs": [...], "id": ...}) or CSV (one sequence per row),
told apart by extension (.jsonl/.ndjson/.json, .csv) or --format; `-` or nothing reads stdin (JSONL
unless --format). Answers go to OUTPUT (stdout by default) in the input's format, in input order:
JSONL lines {"id": ..., "output": ...} (id when given) or {"id": ..., "error": "line 7: ..."} for a
row that fails validation; CSV rows of the output's values or a single cell "error: line 7: ...".
Parquet (a file, not stdin): a list column `inputs` (or --column; an `id` column is echoed back), answered
as columns id, output, top_k, error ("row 7: ..."), one row group per chunk.
--engine ray runs the same checks and model on Ray Data (a local Ray with this machine's cores, or the
cluster at --ray-address / $RAY_ADDRESS): INPUT may be a file, a directory of part files or a URI
(s3://, gs://, file://); OUTPUT is a directory that receives part files part-<file>-<line>.<ext> whose
sorted names give input order. See service/scoring/ray_engine.py and docs/scoring.md.
A bad row never stops the job. Exit status: 0 every row scored, 1 some rows failed (0 with
--allow-errors), 2 the job could not run (unknown task, unreadable file, service refused or unreachable).

Python API (the same machinery, no HTTP unless `url` is given):

    from service.scoring.cli import score_rows
    for answer in score_rows("echo-lag", [[5, 3, 8], [1, 2]], models_dir="models"):
        print(answer.output, answer.error)                  # [5, 3] None, then [1] None

    from service.core.predictor import Predictor                  # or one batch, directly
    p = Predictor.load("models/echo-lag")
    p.predict(p.codec.check([[5, 3, 8]]))                    # {"outputs": [[5, 3]], "in_domain": [True]}

    from service.scoring.client import Client                        # or a running service
    Client("http://127.0.0.1:8000").predict("echo-lag", [[5, 3, 8]])
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from typing import IO

from ..core.capabilities import Capabilities
from . import formats as rows_mod
from .engine import (
    LOCAL_CHUNK_ROWS,
    REMOTE_CHUNK_ROWS,
    LocalBackend,
    RemoteBackend,
    Scorer,
    UsageError,
    check_options,
)
from .formats import Answer


def score_rows(
    task: str,
    sequences: Iterable,
    *,
    models_dir: str | None = None,
    url: str | None = None,
    api_key: str | None = None,
    steps: int | None = None,
    top_k: int | None = None,
    concurrency: int = 4,
) -> Iterator[Answer]:
    """Answers (`.output`, `.top_k`, `.error`) for `sequences`, lazily and in order. Local unless `url`."""
    with Scorer(backend(task, models_dir, url, api_key, steps, top_k, concurrency)) as scorer:
        for _, answer in scorer.score_sequences(sequences):
            yield answer


def backend(
    task: str,
    models_dir: str | None,
    url: str | None,
    api_key: str | None,
    steps: int | None,
    top_k: int | None,
    concurrency: int = 4,
    workers: int | None = None,
    retries: int = 5,
) -> LocalBackend | RemoteBackend:
    """The local backend, or a remote one after asking the service whether it knows the task."""
    if not url:
        return LocalBackend.load(task, models_dir, steps, top_k, workers)
    from .client import (  # remote mode only: local start-up skips http.client
        Client,
        RemoteError,
    )

    client = Client(url, api_key, retries=retries)
    try:
        info = client.task(task)
    except RemoteError as err:
        raise UsageError(str(err) if err.status == 0 else f"{url}: {err}") from None
    if not info.get("available", True):
        raise UsageError(f"{url}: task {task} is unavailable: {info.get('reason')}")
    check_options(Capabilities.described(info), steps, top_k)
    # A chunk must fit the service's per-request limits, or every chunk would be refused.
    limits = info.get("limits") or {}
    rows = min(REMOTE_CHUNK_ROWS, limits.get("max_batch") or REMOTE_CHUNK_ROWS)
    if steps and limits.get("max_rollout_values"):
        rows = max(1, min(rows, limits["max_rollout_values"] // steps))
    return RemoteBackend(client, task, steps, top_k, concurrency, rows, info.get("output"))


class Progress:
    """A one-line progress report on stderr, only when stderr is a terminal."""

    def __init__(self, stream: IO[bytes], enabled: bool):
        self.enabled = enabled
        self.stream = stream
        self.started = self.shown = time.perf_counter()
        try:
            self.size = os.fstat(stream.fileno()).st_size if enabled else 0
        except (OSError, ValueError, AttributeError):
            self.size = 0

    def update(self, rows: int, errors: int) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self.shown < 0.2:
            return
        self.shown = now
        rate = rows / max(now - self.started, 1e-9)
        where = ""
        if self.size:
            try:
                where = f"{min(100.0, 100.0 * self.stream.tell() / self.size):5.1f}%  "
            except (OSError, ValueError):
                pass
        sys.stderr.write(f"\r{where}{rows:,} rows  {errors:,} errors  {rate:,.0f} rows/s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def parser() -> argparse.ArgumentParser:
    doc = __doc__.split("\n\nPython API")[0].split("\n")
    p = argparse.ArgumentParser(
        prog="toyseq-score",
        description=doc[0],
        epilog="\n".join(doc[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("task", metavar="TASK", help="a task name, e.g. echo-lag")
    p.add_argument(
        "input",
        metavar="INPUT",
        nargs="?",
        default="-",
        help="JSONL, CSV or Parquet file; - for stdin (JSONL/CSV); with --engine ray also a directory or URI",
    )
    p.add_argument("-o", "--output", default="-", help="where answers go (default stdout)")
    p.add_argument("--format", choices=rows_mod.FORMATS, help="input (and output) format; default by extension")
    p.add_argument("--steps", type=int, help="roll out K next values (next-value tasks)")
    p.add_argument("--top-k", type=int, help="also the K most likely values (single-class tasks, JSONL)")
    p.add_argument("--allow-errors", action="store_true", help="exit 0 even when some rows failed")
    p.add_argument(
        "--models-dir",
        default=None,
        help="local mode: models folder (default $TOYSEQ_MODELS_DIR, else ./models if there is one, else the "
        "models installed with toyseq)",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="local mode: chunks scored side by side (default: one per core)"
    )
    p.add_argument("--url", help="remote mode: base URL of a running service, e.g. http://127.0.0.1:8000")
    p.add_argument(
        "--api-key", default=os.environ.get("TOYSEQ_API_KEY"), help="remote mode: API key (default $TOYSEQ_API_KEY)"
    )
    p.add_argument("--concurrency", type=int, default=4, help="remote mode: chunks in flight (default 4)")
    p.add_argument(
        "--retries",
        type=int,
        default=5,
        help="remote mode: retries of a request answered 503 or not answered, with exponential backoff (default 5)",
    )
    p.add_argument(
        "--chunk-rows",
        type=int,
        default=None,
        help=f"rows per chunk (default {LOCAL_CHUNK_ROWS} local, {REMOTE_CHUNK_ROWS} remote)",
    )
    p.add_argument("--column", help="Parquet: the list column of sequences (default 'inputs', or the only list column)")
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default); ray: Ray Data, writing part files into the directory OUTPUT",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="ray engine: the cluster to attach to (default $RAY_ADDRESS; "
        "none: start a local Ray with this machine's cores)",
    )
    p.add_argument(
        "--actors", type=int, default=None, help="ray engine: scoring actors (default: one per CPU of the cluster)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    fmt = args.format or rows_mod.format_of(args.input)
    if args.top_k is not None and fmt == "csv":
        p.error("--top-k needs JSONL (CSV rows hold only the output)")
    if min(args.concurrency, args.chunk_rows or 1, args.workers or 1, args.actors or 1) < 1 or args.retries < 0:
        p.error("--concurrency, --chunk-rows, --workers and --actors must be at least 1, --retries at least 0")
    if args.engine == "ray":
        return ray_main(p, args)
    if fmt == "parquet" and args.input == "-":
        p.error("Parquet is read by row group: give a file, not stdin")
    if fmt == "parquet" and args.output == "-" and sys.stdout.isatty():  # as gzip and tar refuse to
        p.error("Parquet is binary and stdout is a terminal: give -o FILE, or redirect stdout")
    counts = {"outside": 0}
    with ExitStack() as stack:
        try:
            chosen = backend(
                args.task,
                args.models_dir,
                args.url,
                args.api_key,
                args.steps,
                args.top_k,
                args.concurrency,
                args.workers,
                args.retries,
            )
        except UsageError as err:  # an unknown task, no models folder, a service that refused or is unreachable
            return fail(p, str(err))
        scorer = stack.enter_context(Scorer(chosen, args.chunk_rows))
        # Millions of short-lived lists would trigger a cyclic collection every few hundred rows, each
        # scanning everything loaded so far; rows form no cycles, so collect rarely and skip the loaded.
        gc.freeze()
        gc.set_threshold(100_000, 50, 1000)
        try:
            source = sys.stdin.buffer if args.input == "-" else stack.enter_context(open(args.input, "rb"))
        except OSError as err:
            return fail(p, f"cannot read {args.input}: {err.strerror or err}")
        try:
            sink = sys.stdout.buffer if args.output == "-" else stack.enter_context(open(args.output, "wb"))
        except OSError as err:
            return fail(p, f"cannot write {args.output}: {err.strerror or err}")
        try:
            total, errors, seconds = run(
                scorer, fmt, source, sink, not args.quiet and sys.stderr.isatty(), args.column, counts
            )
        except UsageError as err:
            return fail(p, str(err))
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:  # e.g. piped into `head`: stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    if not args.quiet:
        print(f"{p.prog}: {args.task}: {summary(total, errors, seconds, counts['outside'])}", file=sys.stderr)
    return 1 if errors and not args.allow_errors else 0


def fail(p: argparse.ArgumentParser, message: str) -> int:
    """A job that could not run (not a usage error: no usage text): one line, exit 2."""
    print(f"{p.prog}: error: {message}", file=sys.stderr)
    return 2


def plural(count: int, noun: str) -> str:
    """ "1 row", "2 rows", "1,000 rows"."""
    return f"{count:,} {noun if count == 1 else noun + 's'}"


RATE_MIN_ROWS, RATE_MIN_SECONDS = 1000, 0.05  # below either, a rows/s figure measures start-up, not scoring


def summary(rows: int, errors: int, seconds: float, outside: int = 0) -> str:
    """ "4 rows, 1 error in 0.01 s"; the rate only when there were enough rows and time to measure one; and how
    many answered rows were outside the task's domain (answers with no meaning), when any were."""
    text = f"{plural(rows, 'row')}, {plural(errors, 'error')} in {seconds:.2f} s"
    if rows >= RATE_MIN_ROWS and seconds >= RATE_MIN_SECONDS:
        text += f" ({rows / seconds:,.0f} rows/s)"
    if outside:
        text += (
            f"; {plural(outside, 'row')} outside the task's domain: answered, but the answers have no meaning "
            "(docs/api.md, In the domain)"
        )
    return text


def run(
    scorer: Scorer,
    fmt: str,
    source: IO[bytes],
    sink: IO[bytes],
    progress: bool,
    column: str | None = None,
    counts: dict[str, int] | None = None,
) -> tuple[int, int, float]:
    """Stream `source` through `scorer` into `sink`; return (rows, rows that failed, seconds). `counts["outside"]`
    receives the rows answered outside the task's domain."""
    started = time.perf_counter()
    bar = Progress(source, progress)
    if fmt == "parquet":
        from . import parquet  # pyarrow only for Parquet: JSONL/CSV start-up stays lean

        rows_in = parquet.ParquetInput(source, column)
        chunks = rows_in.chunks(scorer.chunk_rows)
        out = parquet.ParquetSink(
            sink,
            parquet.output_schema(
                scorer.backend.output, scorer.backend.steps, bool(scorer.backend.top_k), rows_in.id_type
            ),
        )
        write, close = out.write, out.close
    else:
        chunks = rows_mod.reader(fmt, source, scorer.chunk_rows)
        to_bytes = rows_mod.writer(fmt)

        def write(chunk, answers):
            sink.write(to_bytes(chunk, answers))

        close = sink.flush
    total = errors = 0
    for chunk, answers in scorer.score_chunks(chunks):
        write(chunk, answers)
        total += len(chunk)
        errors += len(answers.errors)
        if counts is not None:
            counts["outside"] = counts.get("outside", 0) + answers.outside
        bar.update(total, errors)
    close()
    sink.flush()
    bar.close()
    return total, errors, time.perf_counter() - started


def ray_main(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """--engine ray: the same options, exit codes and summary line, part files into the directory OUTPUT."""
    if args.url:
        p.error("--engine ray scores with the model itself: --url is for the local engine's remote mode")
    if args.input == "-" or args.output == "-":
        p.error("--engine ray reads files and writes part files: give INPUT and -o DIRECTORY")
    from .ray_engine import score_files  # Ray is an optional extra: imported only here

    try:
        done = score_files(
            args.task,
            args.input,
            args.output,
            fmt=args.format,
            models_dir=args.models_dir,
            steps=args.steps,
            top_k=args.top_k,
            chunk_rows=args.chunk_rows,
            address=args.ray_address,
            actors=args.actors,
            column=args.column,
            progress=not args.quiet and sys.stderr.isatty(),
        )
    except UsageError as err:
        return fail(p, str(err))
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a failure inside Ray (a lost node, an unwritable bucket): the job did not run
        import ray.exceptions

        if not isinstance(err, ray.exceptions.RayError):
            raise
        print(f"{p.prog}: error: the Ray job failed: {str(err).strip().splitlines()[-1][:500]}", file=sys.stderr)
        return 2
    if not args.quiet:
        s = done
        print(
            f"{p.prog}: {args.task}: {summary(s.rows, s.errors, s.seconds)} on Ray: {plural(s.actors, 'actor')}, "
            f"{s.cpus:g} {'CPU' if s.cpus == 1 else 'CPUs'}, Ray up in {s.startup:.2f} s; "
            f"{plural(s.files_in, 'input file')} -> {plural(s.files_out, 'part file')} in {args.output}",
            file=sys.stderr,
        )
    return 1 if done.errors and not args.allow_errors else 0


if __name__ == "__main__":
    sys.exit(main())
