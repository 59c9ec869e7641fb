"""Rows of a scoring file: read JSONL or CSV lazily, one Row per input line; write answers back.

JSONL: each line is a JSON array (one sequence) or an object {"inputs": [...], "id": ...}; blank lines
are skipped. CSV: one sequence per row, cells are numbers. A line that cannot be read becomes a Row
with `error` set, so the job goes on and reports it in place.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import IO, Any, Iterator

import orjson

FORMATS = ("jsonl", "csv")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}


@dataclass(slots=True)
class Row:
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


def format_of(path: str | None, default: str = "jsonl") -> str:
    """The format a file name implies (.jsonl/.ndjson/.json or .csv); `default` for stdin or others."""
    if path and path != "-":
        for ext, fmt in _EXTENSIONS.items():
            if path.lower().endswith(ext):
                return fmt
    return default


def row_error(row: Row, problems: list[tuple[str, str]]) -> str:
    """One message for a row's problems; pointers are made relative to the row's own line
    (["/inputs/0/2", ...] from the codec or the service -> "/2" for an array line)."""
    parts = []
    for rest, message in problems:
        where = row.prefix + rest
        parts.append(f"{where}: {message}" if where else message)
    return f"line {row.line}: " + "; ".join(parts)


# --- readers -------------------------------------------------------------------------------------

def read_jsonl(stream: IO[bytes]) -> Iterator[Row]:
    loads = orjson.loads
    for line_no, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            value = loads(line)
        except orjson.JSONDecodeError as err:
            yield Row(line_no, None, error=f"line {line_no}: invalid JSON: {err}")
            continue
        if type(value) is list:
            yield Row(line_no, value)
        elif type(value) is dict and "inputs" in value:
            yield Row(line_no, value["inputs"], value.get("id"), "/inputs")
        else:
            what = "an object without \"inputs\"" if type(value) is dict else type(value).__name__
            yield Row(line_no, None, value.get("id") if type(value) is dict else None,
                      error=f"line {line_no}: expected a JSON array of numbers or an object "
                            f"{{\"inputs\": [...], \"id\": ...}}, got {what}")


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


def read_csv(stream: IO[bytes]) -> Iterator[Row]:
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


def reader(fmt: str, stream: IO[bytes]) -> Iterator[Row]:
    return read_jsonl(stream) if fmt == "jsonl" else read_csv(stream)


# --- writers -------------------------------------------------------------------------------------

def jsonl_lines(rows: list[Row], answers: list[Answer]) -> bytes:
    """One line per row: {"id": ..., "output": ..., "top_k": ...} or {"id": ..., "error": ...}.
    Assembled from orjson pieces: an order of magnitude faster than a dict per row."""
    dumps = orjson.dumps
    out = []
    for row, answer in zip(rows, answers):
        head = b"{" if row.id is None else b'{"id":' + dumps(row.id) + b","
        if answer.error is not None:
            out.append(head + b'"error":' + dumps(answer.error) + b"}")
        elif answer.top_k is None:
            out.append(head + b'"output":' + dumps(answer.output) + b"}")
        else:
            out.append(head + b'"output":' + dumps(answer.output) + b',"top_k":' + dumps(answer.top_k) + b"}")
    out.append(b"")
    return b"\n".join(out)


def csv_lines(rows: list[Row], answers: list[Answer]) -> bytes:
    """One CSV row per input row: the output's values, or a single cell "error: line N: ..."."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for answer in answers:
        if answer.error is not None:
            writer.writerow([f"error: {answer.error}"])
        else:
            writer.writerow(answer.output if isinstance(answer.output, list) else [answer.output])
    return buffer.getvalue().encode()


def writer(fmt: str):
    return jsonl_lines if fmt == "jsonl" else csv_lines
