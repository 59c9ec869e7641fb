"""Parquet rows for batch scoring: a list column of sequences in, `id`/`output`/`error` columns out.

Input: the column named `inputs` (or `--column NAME`; a file with a single list column needs no name)
holds one sequence per row; an `id` column, when there is one, is echoed back. Rows are read one
record batch at a time (`ParquetFile.iter_batches`), so memory stays flat however many row groups the
file has (one row group is the unit Parquet decodes: write inputs in row groups of thousands of rows,
not millions). A row that fails its checks keeps JSONL's error text, placed by its 1-based row number:
"row 7: /2: 100 is outside 0..99 for task echo".

Output: one row group per scored chunk with columns `id` (when the input has one), `output` (a list
for echo tasks and rollouts, else a number), `top_k` (list of {value, p}, when asked for) and `error`
(null for a scored row).

pyarrow is an optional extra (`pip install 'toyseq[parquet]'`); it is imported only when a Parquet file is
read or written, so JSONL/CSV scoring and the service never load it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from .engine import UsageError
from .formats import Answers, Chunk

if TYPE_CHECKING:
    import pyarrow as pa

MISSING = "Parquet needs pyarrow: pip install 'toyseq[parquet]' (or 'toyseq[ray]')"
DEFAULT_COLUMN = "inputs"
ID_COLUMN = "id"


def pyarrow():
    """The pyarrow module, or a UsageError naming the extra that brings it."""
    try:
        import pyarrow as pa
        import pyarrow.parquet  # noqa: F401  (the submodule is not imported by `import pyarrow`)
    except ImportError:
        raise UsageError(MISSING) from None
    return pa


def input_columns(schema: pa.Schema, column: str | None) -> tuple[str, str | None]:
    """(sequence column, id column or None) of an input file's schema."""
    pa = pyarrow()
    names = schema.names
    if column is None and DEFAULT_COLUMN not in names:
        lists = [f.name for f in schema if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)]
        if len(lists) != 1:
            raise UsageError(
                f"no {DEFAULT_COLUMN!r} column and {len(lists)} list columns ({', '.join(lists) or 'none'}):"
                f" name the sequences with --column (columns: {', '.join(names)})"
            )
        column = lists[0]
    column = column or DEFAULT_COLUMN
    if column not in names:
        raise UsageError(f"no column {column!r} (columns: {', '.join(names)})")
    return column, (ID_COLUMN if ID_COLUMN in names and ID_COLUMN != column else None)


def open_file(source: IO[bytes] | Any) -> Any:
    """A ParquetFile on a seekable file, or a UsageError saying why not."""
    pa = pyarrow()
    try:
        return pa.parquet.ParquetFile(source)
    except (pa.ArrowInvalid, OSError) as err:
        raise UsageError(f"not a Parquet file: {err}") from None


class ParquetInput:
    """An input file: its sequence and id columns, and its rows as Chunks of up to `chunk_rows` rows,
    one record batch at a time."""

    def __init__(self, source: IO[bytes] | Any, column: str | None = None):
        self.file = open_file(source)
        self.column, self.id_column = input_columns(self.file.schema_arrow, column)

    @property
    def id_type(self) -> pa.DataType | None:
        return self.file.schema_arrow.field(self.id_column).type if self.id_column else None

    def chunks(self, chunk_rows: int) -> Iterator[Chunk]:
        first = 1
        columns = [self.column] if self.id_column is None else [self.column, self.id_column]
        for batch in self.file.iter_batches(batch_size=chunk_rows, columns=columns):
            yield chunk_of(batch, self.column, self.id_column, range(first, first + batch.num_rows))
            first += batch.num_rows


def chunk_of(batch: Any, name: str, id_name: str | None, numbers, where: str = "row") -> Chunk:
    """A record batch (or table) as a Chunk. The sequences become Python lists, exactly what JSONL would
    hold, so the codec checks them the same way (a null row or value, a float in an int task...)."""
    sequences = batch.column(name).to_pylist()
    ids = batch.column(id_name).to_pylist() if id_name else None
    return Chunk(numbers, sequences, ids, where=where)


def output_schema(output: dict, steps: int | None, top_k: bool, id_type: pa.DataType | None) -> pa.Schema:
    """The output columns for a task's manifest `output` section: fixed up front, so every row group (and
    every part file the Ray engine writes) has the same schema, even one whose rows all failed."""
    pa = pyarrow()
    value = pa.int64() if output.get("dtype") == "int" else pa.float64()
    fields = [] if id_type is None else [pa.field(ID_COLUMN, id_type)]
    fields.append(pa.field("output", pa.list_(value) if output.get("kind") == "echo" or steps else value))
    if top_k:
        fields.append(pa.field("top_k", pa.list_(pa.struct([("value", pa.int64()), ("p", pa.float64())]))))
    fields.append(pa.field("error", pa.string()))
    return pa.schema(fields)


def answers_table(chunk: Chunk, answers: Answers, schema: pa.Schema) -> pa.Table:
    pa = pyarrow()
    columns = []
    values: list[Any] | None
    for name in schema.names:
        if name == ID_COLUMN:
            values = chunk.ids if chunk.ids is not None else [None] * len(chunk)
        elif name == "output":
            values = answers.outputs
        elif name == "top_k":
            values = answers.top_k
        else:
            errors = answers.errors
            values = [errors.get(i) for i in range(len(chunk))] if errors else [None] * len(chunk)
        columns.append(pa.array(values, type=schema.field(name).type))
    return pa.Table.from_arrays(columns, schema=schema)


class ParquetSink:
    """Writes each chunk's answers as one row group of `sink`."""

    def __init__(self, sink: IO[bytes], schema: pa.Schema):
        self.schema = schema
        self._writer = pyarrow().parquet.ParquetWriter(sink, schema)

    def write(self, chunk: Chunk, answers: Answers) -> None:
        self._writer.write_table(answers_table(chunk, answers, self.schema))

    def close(self) -> None:
        self._writer.close()
