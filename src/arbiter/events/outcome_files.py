"""Outcome events from files: CSV or Parquet exports of a warehouse, into the event log.

``arbiter outcomes import FILE`` runs :func:`import_outcome_file`. The file has the columns of
``POST /outcomes``: ``unit_id``, ``event`` and optionally ``value`` (default 1), ``ts`` (ISO 8601
strings with a zone, timezone-aware timestamps, or integer microseconds since the epoch;
default: the time of the import) and ``request_id``. The same rules as
:func:`arbiter.events.outcomes.outcome_columns` apply, checked column-wise with pyarrow (no
Python loop over rows).

The file is read twice, in batches (memory stays bounded whatever its size): first every row
is validated and nothing is written; then the rows are written, one durable segment per
``segment_rows`` rows. A huge file therefore cannot be stored all-or-nothing, but a file with
a bad row stores nothing, and a failure while writing (disk full) leaves whole segments only:
the error says how many rows were stored.
"""

from __future__ import annotations

import csv
import gzip
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from arbiter.errors import EventStoreError, InvalidInputError, NotFoundError
from arbiter.events.outcomes import (
    EVENT_NAME,
    MAX_FUTURE_US,
    MAX_UNIT_ID_CHARS,
    MIN_TS_US,
    OUTCOME_FIELDS,
)
from arbiter.events.schema import OUTCOMES_SCHEMA, TS

if TYPE_CHECKING:
    from arbiter.events.store import EventStore

FileKind = Literal["csv", "parquet"]
#: Rows per written segment (and per batch read): ~100k outcome rows are a few MB in memory.
SEGMENT_ROWS = 100_000
REQUIRED = ("unit_id", "event")
# An ISO 8601 time that names its zone: a time (hh:mm[:ss[.f]]) then Z or an offset such as
# +02:00 / -0500 / -05. A bare date ends in "-01", which is not an offset.
_ZONE = r"\d\d:\d\d(:\d\d([.,]\d+)?)?\s*([Zz]|[+-]\d\d(:?\d\d)?)$"


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_outcome_file` did."""

    file: str
    rows: int  # rows in the file (all valid)
    stored: int  # rows written (0 on a dry run)
    segments: int
    dry_run: bool


def file_kind(path: Path) -> FileKind:
    """``"csv"`` or ``"parquet"`` by the file name (as :func:`arbiter.tables.read_table`)."""
    from arbiter.tables import CSV_SUFFIXES, PARQUET_SUFFIXES

    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    raise InvalidInputError(
        f"unsupported outcome file type for {path.name}; use .csv, .csv.gz or .parquet",
        field="FILE",
    )


def _column_names(path: Path, kind: FileKind) -> list[str]:
    """The file's column names (CSV: its header row)."""
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as text:
            header = next(csv.reader(text), None)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInputError(f"cannot read {path.name} as {kind}: {exc}", field="FILE") from exc
    if not header:
        raise InvalidInputError(f"{path.name} is empty: no header row", field="FILE")
    return [name.strip() for name in header]


def _batches(
    path: Path, kind: FileKind, names: list[str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """The file's rows in batches, in file order; CSV columns as text (checked here, not guessed).

    Both readers stream: Parquet one row group's columns at a time without read-ahead, CSV
    through DuckDB (pyarrow's streaming CSV reader read a 270 MB file ahead into memory when
    validation was slower than reading; DuckDB's memory stays flat, measured: docs/outcomes.md).
    """
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows, use_threads=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInputError(
                f"cannot read {path.name} as parquet: {exc}", field="FILE"
            ) from exc
        return
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET preserve_insertion_order = true")  # batches in file order: line numbers
        relation = con.sql(
            "SELECT * FROM read_csv($path, header = true, auto_detect = false, columns = $columns, "
            "delim = ',', quote = '\"', escape = '\"')",
            params={"path": str(path), "columns": {name: "VARCHAR" for name in names}},
        )
        reader = relation.to_arrow_reader(batch_rows)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            yield batch
    except duckdb.Error as exc:
        raise InvalidInputError(
            f"cannot read {path.name} as csv: {_duckdb_reason(exc)}", field="FILE"
        ) from exc
    finally:
        con.close()


def _duckdb_reason(exc: Exception) -> str:
    """DuckDB's CSV error on one line: where and what, without its advice and settings."""
    lines = []
    for line in str(exc).splitlines():
        if line.startswith("Possible fixes"):
            break
        if line.strip() and not line.startswith("Original Line"):
            lines.append(line.strip().removeprefix("Invalid Input Error: "))
    return "; ".join(lines) or type(exc).__name__


def _where(kind: FileKind, index: int) -> str:
    # CSV: the header is line 1 (quoted values spanning lines would shift this).
    return f"line {index + 2}" if kind == "csv" else f"row {index + 1}"


class _RejectedRowError(Exception):
    def __init__(self, index: int, field: str, message: str) -> None:
        self.index, self.field, self.message = index, field, message


def _first(mask: pa.Array | np.ndarray) -> int | None:
    values = mask.to_numpy(zero_copy_only=False) if isinstance(mask, pa.Array) else mask
    hits = np.flatnonzero(np.asarray(values, dtype=bool))
    return int(hits[0]) if hits.size else None


def _check(mask: pa.Array | np.ndarray, column: pa.Array, field: str, message: str) -> None:
    """Raise :class:`_RejectedRowError` at the first row where ``mask`` holds (null: bad)."""
    if isinstance(mask, pa.Array):
        mask = pc.fill_null(mask, True)
    index = _first(mask)
    if index is not None:
        shown = column[index].as_py()
        raise _RejectedRowError(index, field, f"{message}, got {shown!r:.60}")


def _column(batch: pa.RecordBatch, name: str) -> pa.Array:
    """A column, dictionary-encoded ones (pandas categoricals) decoded."""
    column = batch.column(name)
    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _text(batch: pa.RecordBatch, name: str, *, integers: bool = False) -> pa.Array:
    column = _column(batch, name)
    if pa.types.is_integer(column.type) and integers:
        return pc.cast(column, pa.string())
    if _is_text(column.type):
        return pc.cast(column, pa.string())
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), pa.string())
    raise InvalidInputError(
        f"column {name} has type {column.type}; expected text", field=f"columns.{name}"
    )


def _values(batch: pa.RecordBatch, kind: FileKind) -> pa.Array:
    n = batch.num_rows
    if "value" not in batch.schema.names:
        return pa.array(np.ones(n), pa.float64())
    column = _column(batch, "value")
    if kind == "csv":
        import pandas as pd

        parsed = pd.to_numeric(column.to_pandas(), errors="coerce").to_numpy(
            dtype=float, na_value=np.nan
        )
        _check(~np.isfinite(parsed), column, "value", "value must be a finite number")
        return pa.array(parsed, pa.float64())
    t = column.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        raise InvalidInputError(
            f"column value has type {t}; expected numbers", field="columns.value"
        )
    values = pc.cast(column, pa.float64())
    _check(pc.invert(pc.is_finite(values)), column, "value", "value must be a finite number")
    return values


def _timestamps(batch: pa.RecordBatch, now_us: int) -> pa.Array:
    n = batch.num_rows
    if "ts" not in batch.schema.names:
        return pa.array(np.full(n, now_us, dtype=np.int64)).cast(TS)
    column = _column(batch, "ts")
    t = column.type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            raise InvalidInputError(
                "column ts holds timestamps without a time zone; write them as UTC timestamps "
                "(with time zone) or ISO 8601 strings with a zone (2026-12-01T10:00:00Z)",
                field="columns.ts",
            )
        micros = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC"), safe=False), pa.int64())
    elif pa.types.is_integer(t):
        micros = pc.cast(column, pa.int64())
    elif _is_text(t):
        import pandas as pd

        text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
        text = pc.replace_substring_regex(text, "z$", "Z")  # pandas reads only an upper-case Z
        zoned = pc.match_substring_regex(text, _ZONE)
        _check(
            pc.invert(zoned),
            column,
            "ts",
            "ts must be an ISO 8601 time with a zone (2026-12-01T10:00:00Z)",
        )
        parsed = pd.to_datetime(text.to_pandas(), utc=True, format="ISO8601", errors="coerce")
        ns = parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
        _check(
            np.isnat(ns),
            column,
            "ts",
            "ts must be an ISO 8601 time with a zone (2026-12-01T10:00:00Z)",
        )
        micros = pa.array(ns.astype(np.int64) // 1000, pa.int64())
    else:
        raise InvalidInputError(
            f"column ts has type {t}; expected ISO 8601 text, timestamps with a time zone or "
            "integer microseconds",
            field="columns.ts",
        )
    outside = pc.or_(pc.less(micros, MIN_TS_US), pc.greater(micros, now_us + MAX_FUTURE_US))
    _check(outside, column, "ts", "ts must lie between 2000-01-01 and one day from now")
    return pc.cast(micros, pa.int64()).cast(TS)


def _request_ids(batch: pa.RecordBatch, kind: FileKind) -> pa.Array:
    if "request_id" not in batch.schema.names:
        return pa.nulls(batch.num_rows, pa.string())
    column = _text(batch, "request_id")
    empty = pc.equal(pc.utf8_length(column), 0)
    if kind == "csv":  # an empty cell: no request id
        return pc.if_else(empty, pa.scalar(None, pa.string()), column)
    _check(pc.fill_null(empty, False), column, "request_id", "request_id must be non-empty")
    return column


def outcome_table(batch: pa.RecordBatch, kind: FileKind, now_us: int) -> pa.Table:
    """One batch of a file as rows of :data:`OUTCOMES_SCHEMA`, or :class:`_RejectedRowError`."""
    unit_id = _text(batch, "unit_id", integers=True)
    length = pc.utf8_length(unit_id)
    _check(
        pc.or_(pc.equal(length, 0), pc.greater(length, MAX_UNIT_ID_CHARS)),
        unit_id,
        "unit_id",
        f"unit_id must be a non-empty string of at most {MAX_UNIT_ID_CHARS} characters",
    )
    event = _text(batch, "event")
    _check(
        pc.invert(pc.match_substring_regex(event, EVENT_NAME.pattern)),
        event,
        "event",
        "event must be a name of letters, digits and _ . : - (at most 128 characters)",
    )
    columns = [
        unit_id,
        event,
        _values(batch, kind),
        _timestamps(batch, now_us),
        _request_ids(batch, kind),
    ]
    return pa.Table.from_arrays(columns, schema=OUTCOMES_SCHEMA)


def _columns(path: Path, names: list[str], ignore_extra: bool) -> None:
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise InvalidInputError(
            f"{path.name} has no {missing[0]} column; columns: {', '.join(names) or 'none'}",
            field=f"columns.{missing[0]}",
        )
    extra = [c for c in names if c not in OUTCOME_FIELDS]
    if extra and not ignore_extra:
        raise InvalidInputError(
            f"{path.name} has unknown column {extra[0]!r} (allowed: "
            f"{', '.join(sorted(OUTCOME_FIELDS))}); drop it or pass --ignore-extra",
            field=f"columns.{extra[0]}",
        )


def _tables(
    path: Path, kind: FileKind, now_us: int, ignore_extra: bool, batch_rows: int
) -> Iterator[pa.Table]:
    """Validated tables of the file, in order; the first bad row raises, naming its line."""
    names = _column_names(path, kind)
    _columns(path, names, ignore_extra)
    offset = 0
    for batch in _batches(path, kind, names, batch_rows):
        try:
            yield outcome_table(batch, kind, now_us)
        except _RejectedRowError as bad:
            index = offset + bad.index
            raise InvalidInputError(
                f"{path.name} {_where(kind, index)}: {bad.message}",
                field=f"rows[{index}].{bad.field}",
            ) from None
        except InvalidInputError as exc:
            raise InvalidInputError(f"{path.name}: {exc.message}", field=exc.field) from None
        offset += batch.num_rows


def count_rows(path: Path) -> int | None:
    """Rows of a Parquet file from its footer (progress bars); None for CSV."""
    if file_kind(path) != "parquet":
        return None
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def import_outcome_file(
    store: EventStore,
    path: str | Path,
    *,
    ignore_extra: bool = False,
    dry_run: bool = False,
    segment_rows: int = SEGMENT_ROWS,
    progress: Callable[[str, int], None] | None = None,
) -> ImportResult:
    """Validate a CSV/Parquet file of outcome events, then write it to the event log.

    Parameters
    ----------
    store : EventStore
        Where to write (``events/outcomes``).
    path : str or Path
        ``.csv``, ``.csv.gz``, ``.txt``, ``.parquet`` or ``.pq`` (see the module docstring).
    ignore_extra : bool, default False
        Skip columns other than the outcome fields instead of refusing the file.
    dry_run : bool, default False
        Validate only.
    segment_rows : int, default 100 000
        Rows per written segment (and per batch in memory).
    progress : callable, optional
        Called as ``progress(phase, rows)`` after each batch, ``phase`` ``"check"`` or
        ``"write"``.

    Returns
    -------
    ImportResult

    Raises
    ------
    NotFoundError
        No such file.
    InvalidInputError
        The file cannot be read, lacks ``unit_id``/``event``, has an unknown column, or a row
        is invalid: the message names the first bad row's line (CSV) or row (Parquet),
        ``field`` is ``rows[i].column``. Nothing was written.
    EventStoreError
        Writing failed; the message says how many rows had been stored.
    """
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"outcome file not found: {p}")
    kind = file_kind(p)
    now_us = time.time_ns() // 1000  # the default ts, and "now" for the future check
    rows = 0
    for table in _tables(p, kind, now_us, ignore_extra, segment_rows):
        rows += table.num_rows
        if progress is not None:
            progress("check", table.num_rows)
    if dry_run or rows == 0:
        return ImportResult(str(p), rows, 0, 0, dry_run)
    stored = written = 0
    pending: list[pa.Table] = []
    pending_rows = 0

    def flush() -> None:
        nonlocal stored, written, pending, pending_rows
        try:
            store.append_segment("outcomes", pa.concat_tables(pending))
        except OSError as exc:
            raise EventStoreError(
                f"writing outcomes from {p.name} failed after {stored} of {rows} rows: {exc}"
            ) from exc
        stored += pending_rows
        written += 1
        if progress is not None:
            progress("write", pending_rows)
        pending, pending_rows = [], 0

    for table in _tables(p, kind, now_us, ignore_extra, segment_rows):
        pending.append(table)
        pending_rows += table.num_rows
        if pending_rows >= segment_rows:
            flush()
    if pending_rows:
        flush()
    return ImportResult(str(p), rows, stored, written, False)


__all__ = ["SEGMENT_ROWS", "ImportResult", "count_rows", "file_kind", "import_outcome_file"]
