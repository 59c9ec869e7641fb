"""Rows of a scoring file: read JSONL or CSV lazily in Chunks of rows; write answers back. (Parquet, which
needs pyarrow, lives in service.scoring.parquet and keeps the same Chunks, Answers and error texts.)

JSONL: each line is a JSON array (one sequence) or an object {"inputs": [...], "id": ...}; blank lines
are skipped. CSV: one sequence per row, cells are numbers. A line that cannot be read becomes a row
with an error, so the job goes on and reports it in place.

A Chunk holds its rows column by column (a list of sequences, and line numbers, ids and JSON pointer
prefixes only when they are not the plain case), and Answers likewise: a chunk of thousands of rows
costs a few Python objects, not thousands.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import IO, Any

import orjson

FORMATS = ("jsonl", "csv", "parquet")
_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(slots=True)
class Row:
    """One input row (the Python API's unit): see Chunk for what the fields mean."""

    line: int  # 1-based line number in the input
    sequence: Any  # the raw JSON value to check, None when `error` is set
    id: Any = None  # the object row's "id", echoed back
    prefix: str = ""  # JSON pointer of the sequence inside its line: "" (array) or "/inputs" (object)
    error: str | None = None  # why the line could not be read


@dataclass(slots=True)
class Answer:
    output: Any = None
    top_k: Any = None
    error: str | None = None


@dataclass(slots=True)
class Chunk:
    """Consecutive rows of an input, by column."""

    lines: Sequence[int]  # 1-based line number of each row (a range when no line was skipped)
    sequences: list  # the raw JSON value to check per row; None where the line could not be read
    ids: list | None = None  # each object row's "id" (None for array rows); None when no row has one
    prefixes: list[str] | None = None  # JSON pointer of each sequence in its line; None: all "" (arrays)
    errors: dict[int, str] = field(default_factory=dict)  # row index -> why its line could not be read
    where: str = "line"  # how an error names the row's place: "line 7", "row 7" (Parquet), "a.jsonl line 7"

    def __len__(self) -> int:
        return len(self.sequences)

    @classmethod
    def of_rows(cls, rows: list[Row], where: str = "line") -> Chunk:
        ids = [r.id for r in rows] if any(r.id is not None for r in rows) else None
        prefixes = [r.prefix for r in rows] if any(r.prefix for r in rows) else None
        errors = {i: r.error for i, r in enumerate(rows) if r.error is not None}
        return cls([r.line for r in rows], [r.sequence for r in rows], ids, prefixes, errors, where)

    def row(self, i: int) -> Row:
        return Row(
            self.lines[i],
            self.sequences[i],
            self.ids[i] if self.ids else None,
            self.prefixes[i] if self.prefixes else "",
            self.errors.get(i),
        )

    def error(self, i: int, problems: list[tuple[str, str]]) -> str:
        """One message for row i's problems; pointers are made relative to the row's own line
        (["/inputs/0/2", ...] from the codec or the service -> "/2" for an array line)."""
        prefix = self.prefixes[i] if self.prefixes else ""
        parts = []
        for rest, message in problems:
            where = prefix + rest
            parts.append(f"{where}: {message}" if where else message)
        return f"{self.where} {self.lines[i]}: " + "; ".join(parts)


@dataclass(slots=True)
class Answers:
    """A chunk's answers, by column: outputs[i] (None for a failed row), top_k[i] when asked for, and
    the error of each failed row by index."""

    outputs: list
    top_k: list | None = None
    errors: dict[int, str] = field(default_factory=dict)
    outside: int = 0  # answered rows outside the task's domain (the service's in_domain false): counted, not written

    @classmethod
    def empty(cls, n: int, top_k: bool, errors: dict[int, str]) -> Answers:
        return cls([None] * n, [None] * n if top_k else None, errors)

    def fill(self, rows: Iterable[int], result: dict) -> None:
        """Put a predict result (its "outputs" and "top_k" lists) at the given row indices."""
        rows = list(rows)
        for i, output in zip(rows, result["outputs"]):
            self.outputs[i] = output
        self.outside += result.get("in_domain", ()).count(False)  # a service from before in_domain: none
        if self.top_k is not None:
            for i, top in zip(rows, result["top_k"]):
                self.top_k[i] = top

    def __getitem__(self, i: int) -> Answer:
        error = self.errors.get(i)
        if error is not None:
            return Answer(error=error)
        return Answer(self.outputs[i], self.top_k[i] if self.top_k is not None else None)


def format_of(path: str | None, default: str = "jsonl") -> str:
    """The format a file name implies (.jsonl/.ndjson/.json or .csv); `default` for stdin or others."""
    if path and path != "-":
        for ext, fmt in _EXTENSIONS.items():
            if path.lower().endswith(ext):
                return fmt
    return default


# --- readers -------------------------------------------------------------------------------------


def read_jsonl(stream: IO[bytes], chunk_rows: int) -> Iterator[Chunk]:
    """Chunks of up to `chunk_rows` lines (see parse_jsonl)."""
    first = 1
    while True:
        lines = list(islice(stream, chunk_rows))
        if not lines:
            return
        yield parse_jsonl(lines, range(first, first + len(lines)))
        first += len(lines)


def parse_jsonl(lines: list[bytes], numbers: Sequence[int], where: str = "line") -> Chunk:
    """The Chunk of JSONL `lines` whose places are `numbers` (the Ray engine parses its blocks of lines
    here too). The usual block (every line a JSON array) is parsed in one pass of C calls; any other
    block goes line by line."""
    try:
        values = list(map(orjson.loads, lines))  # raises on a blank or malformed line: see _jsonl_chunk
    except orjson.JSONDecodeError:
        values = None
    if values is not None and set(map(type, values)) == {list}:
        return Chunk(numbers, values, where=where)
    return _jsonl_chunk(lines, numbers, values, where)


def _jsonl_chunk(lines: list[bytes], numbers: Sequence[int], values: list | None, where: str) -> Chunk:
    """A block line by line: blank lines skipped, objects unpacked, unreadable lines kept as errors.
    `values` are the lines already parsed, when they all could be."""
    rows = []
    for i, (line_no, line) in enumerate(zip(numbers, lines)):
        if values is not None:
            value = values[i]
        elif not line.strip():
            continue
        else:
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                rows.append(Row(line_no, None, error=f"{where} {line_no}: invalid JSON: {err}"))
                continue
        if type(value) is list:
            rows.append(Row(line_no, value))
        elif type(value) is dict and "inputs" in value:
            rows.append(Row(line_no, value["inputs"], value.get("id"), "/inputs"))
        else:
            what = 'an object without "inputs"' if type(value) is dict else type(value).__name__
            rows.append(
                Row(
                    line_no,
                    None,
                    value.get("id") if type(value) is dict else None,
                    error=f"{where} {line_no}: expected a JSON array of numbers or an object "
                    f'{{"inputs": [...], "id": ...}}, got {what}',
                )
            )
    return Chunk.of_rows(rows, where)


def _cell(text: str) -> Any:
    """A CSV cell as the JSON number it spells; anything else stays a string for the codec to name."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def read_csv_rows(stream: IO[bytes]) -> Iterator[Row]:
    reader = csv.reader(io.TextIOWrapper(stream, encoding="utf-8", newline=""))
    line_no = 0
    try:
        for cells in reader:
            line_no = reader.line_num
            while cells and not cells[-1].strip():  # a trailing comma is not a value
                cells.pop()
            if cells:
                yield Row(line_no, [_cell(c) for c in cells])
    except (csv.Error, UnicodeDecodeError) as err:
        yield Row(line_no + 1, None, error=f"line {line_no + 1}: unreadable CSV: {err}")


def parse_csv(lines: list[bytes], numbers: Sequence[int], where: str = "line") -> Chunk:
    """The Chunk of CSV `lines` (one record per line) whose places are `numbers`: the Ray engine's blocks.
    Each line is decoded on its own, so an undecodable line is one error row, not the end of the block."""
    rows: list[Row] = []
    for line_no, line in zip(numbers, lines):
        try:
            cells = next(csv.reader([line.decode("utf-8")]), [])
        except (csv.Error, UnicodeDecodeError) as err:
            rows.append(Row(line_no, None, error=f"{where} {line_no}: unreadable CSV: {err}"))
            continue
        while cells and not cells[-1].strip():  # a trailing comma is not a value
            cells.pop()
        if cells:
            rows.append(Row(line_no, [_cell(c) for c in cells]))
    return Chunk.of_rows(rows, where)


def chunks_of(rows: Iterable[Row], chunk_rows: int) -> Iterator[Chunk]:
    rows = iter(rows)
    while block := list(islice(rows, chunk_rows)):
        yield Chunk.of_rows(block)


def reader(fmt: str, stream: IO[bytes], chunk_rows: int) -> Iterator[Chunk]:
    return read_jsonl(stream, chunk_rows) if fmt == "jsonl" else chunks_of(read_csv_rows(stream), chunk_rows)


# --- writers -------------------------------------------------------------------------------------


def jsonl_lines(chunk: Chunk, answers: Answers) -> bytes:
    return b"".join(jsonl_rows(chunk, answers))


def jsonl_rows(chunk: Chunk, answers: Answers) -> list[bytes]:
    """One line per row: {"id": ..., "output": ..., "top_k": ...} or {"id": ..., "error": ...}.
    Assembled from orjson pieces rather than a dict per row, which would dominate the writing time."""
    dumps = orjson.dumps
    if chunk.ids is None and not answers.errors and answers.top_k is None:
        # the usual chunk: every line is {"output": ...}
        return [b'{"output":' + dumps(output) + b"}\n" for output in answers.outputs]
    out = []
    ids = chunk.ids or [None] * len(chunk)
    tops = answers.top_k or [None] * len(chunk)
    errors = answers.errors
    for i, (row_id, output, top) in enumerate(zip(ids, answers.outputs, tops)):
        head = b"{" if row_id is None else b'{"id":' + dumps(row_id) + b","
        if errors and i in errors:
            out.append(head + b'"error":' + dumps(errors[i]) + b"}\n")
        elif top is None:
            out.append(head + b'"output":' + dumps(output) + b"}\n")
        else:
            out.append(head + b'"output":' + dumps(output) + b',"top_k":' + dumps(top) + b"}\n")
    return out


def csv_lines(chunk: Chunk, answers: Answers) -> bytes:
    return "".join(_csv_texts(answers)).encode()


def csv_rows(chunk: Chunk, answers: Answers) -> list[bytes]:
    """One CSV row per input row: the output's values, or a single cell "error: line N: ..."."""
    return [text.encode() for text in _csv_texts(answers)]


class _Texts(list):
    write = list.append  # csv.writer calls write once per row: each row's text lands in its own item


def _csv_texts(answers: Answers) -> list[str]:
    texts = _Texts()
    writer = csv.writer(texts, lineterminator="\n")
    for i, output in enumerate(answers.outputs):
        if i in answers.errors:
            writer.writerow([f"error: {answers.errors[i]}"])
        else:
            writer.writerow(output if isinstance(output, list) else [output])
    return texts


def writer(fmt: str):
    return jsonl_lines if fmt == "jsonl" else csv_lines
