"""Batch scoring of a file with a registered model version, written as prediction events.

The output has exactly the columns of the event log's ``predictions`` table
(:data:`arbiter.events.schema.PREDICTIONS_SCHEMA`), so batch predictions join to labels and
feed the same analyses as live ones: ``model``, ``version`` and ``alias`` say what scored the
row, ``ts`` when, ``features`` holds the input row as JSON, ``protocol``/``strategy`` are
``"batch"``. Each input row is one request: ``request_id`` is the value of ``id_column`` when
given (so labels keyed by your own id join directly), else ``<batch id>-<row number>``, and
``row_index`` is 0.

DuckDB reads the input (Parquet or CSV) and renders each row's features as JSON; the model
scores it chunk by chunk through :class:`~arbiter.servable.ServableModel`, the same code path
as the gateway (probabilities and ``score`` included); pyarrow writes the output.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arbiter.errors import InvalidInputError, NotFoundError
from arbiter.events.schema import PREDICTIONS_SCHEMA
from arbiter.prediction_log import RequestContext, prediction_columns
from arbiter.tables import CSV_SUFFIXES, PARQUET_SUFFIXES

if TYPE_CHECKING:
    from arbiter.registry.mlflow_registry import MLflowRegistry
    from arbiter.servable import ServableModel

#: ``protocol``, ``strategy`` and ``experiment`` of batch-scored rows.
BATCH = "batch"
DEFAULT_CHUNK_ROWS = 50_000


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """What a batch scoring run wrote."""

    model: str
    version: str
    alias: str | None
    batch_id: str
    n_rows: int
    output: str
    engine: str
    duration_s: float

    @property
    def rows_per_s(self) -> float:
        return self.n_rows / self.duration_s if self.duration_s > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for ``--json``."""
        return {**asdict(self), "rows_per_s": self.rows_per_s}


def resolve_version(
    registry: MLflowRegistry, name: str, *, alias: str | None, version: str | None
) -> tuple[str, str | None]:
    """``(version, alias)`` to score with: the version ``alias`` points to, or ``version``.

    Raises :class:`NotFoundError` naming the aliases that exist when ``alias`` is unknown, and
    when ``version`` is not a version of ``name``.
    """
    if alias is not None and version is not None:
        raise InvalidInputError("give --alias or --version, not both", field="--version")
    aliases = registry.aliases(name)
    if version is not None:
        try:
            registry.client.get_model_version(name, version)
        except Exception as exc:
            raise NotFoundError(f"model {name!r} has no version {version!r}") from exc
        return str(version), None
    alias = alias or "champion"
    if alias not in aliases:
        known = ", ".join(sorted(aliases)) or "none"
        raise NotFoundError(f"model {name!r} has no alias {alias!r} (its aliases: {known})")
    return aliases[alias], alias


def input_format(path: Path, *, field: str = "--input") -> str:
    """``"parquet"`` or ``"csv"`` from the file name (a folder of Parquet files is Parquet)."""
    name = path.name.lower()
    if path.is_dir() or name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    raise InvalidInputError(
        f"{field}: unsupported file type {path.name!r}; use .parquet, .csv or .csv.gz", field=field
    )


def model_columns(servable: ServableModel, available: list[str], *, field: str) -> list[str]:
    """The input columns the model needs, checked against ``available``.

    A model without a signature gets every column. Missing columns are named in the error.
    """
    if servable.schema is None:
        return list(available)
    needed = list(servable.schema.names)
    missing = [c for c in needed if c not in available]
    if missing:
        raise InvalidInputError(
            f"{field} lacks column(s) {', '.join(missing)} that model {servable.name} "
            f"v{servable.version} needs (it has: {', '.join(available)})",
            field=field,
        )
    return needed


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def score_file(
    registry: MLflowRegistry,
    name: str,
    input_path: str | Path,
    output_path: str | Path,
    *,
    alias: str | None = None,
    version: str | None = None,
    id_column: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_progress: Callable[[int, int], None] | None = None,
) -> ScoreResult:
    """Score every row of a Parquet or CSV file; write prediction events to ``output_path``.

    Parameters
    ----------
    registry : MLflowRegistry
    name : str
        Registered model name.
    input_path : path
        ``.parquet`` / ``.csv`` / ``.csv.gz`` file, or a folder of Parquet files.
    output_path : path
        ``.parquet`` or ``.csv`` file to write (replaced if it exists).
    alias, version : str, optional
        Which version scores: ``version``, else the one ``alias`` points to (default
        ``champion``: the served version).
    id_column : str, optional
        Input column whose value becomes each row's ``request_id``.
    chunk_rows : int
        Rows scored per model call (bounds memory).
    on_progress : callable, optional
        ``on_progress(rows_done, rows_total)`` after each chunk.
    """
    import duckdb
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    started = time.perf_counter()
    source, target = Path(input_path), Path(output_path)
    if not source.exists():
        raise NotFoundError(f"--input: no such file or folder: {source}")
    fmt = input_format(source)
    out_fmt = input_format(target, field="--output")
    if not target.parent.is_dir():
        raise NotFoundError(f"--output: folder {target.parent} does not exist")
    if chunk_rows < 1:
        raise InvalidInputError("chunk_rows must be >= 1", field="chunk_rows")
    resolved, alias = resolve_version(registry, name, alias=alias, version=version)
    servable = registry.load(name, resolved)

    con = duckdb.connect()
    partial: Path | None = None
    try:
        pattern = str(source / "*.parquet") if source.is_dir() else str(source)
        try:
            rel = con.read_parquet(pattern) if fmt == "parquet" else con.read_csv(str(source))
        except duckdb.Error as exc:
            raise InvalidInputError(
                f"--input: cannot read {source}: {exc}", field="--input"
            ) from exc
        available = list(rel.columns)
        columns = model_columns(servable, available, field="--input")
        if id_column is not None and id_column not in available:
            raise InvalidInputError(
                f"--id-column {id_column!r} is not a column of {source.name}", field="--id-column"
            )
        total = int(rel.aggregate("count(*)").fetchall()[0][0])
        features = ", ".join(f"{_quote(c)} := {_quote(c)}" for c in columns)
        ident = f"CAST({_quote(id_column)} AS VARCHAR)" if id_column else "NULL"
        select = ", ".join(_quote(c) for c in columns)
        query = rel.query(
            "input_rows",
            f"SELECT {select}, to_json(struct_pack({features}))::VARCHAR AS __features, "
            f"{ident} AS __id FROM input_rows",
        )
        reader = query.to_arrow_reader(chunk_rows)
        batch_id = uuid.uuid4().hex[:16]
        ts_us = int(time.time() * 1_000_000)
        context = RequestContext(
            request_id=batch_id,
            ts_us=ts_us,
            model=name,
            experiment=BATCH,
            strategy=BATCH,
            unit_id=None,
            unit_random=False,
            arm=alias or f"v{resolved}",
            protocol=BATCH,
        )
        done = 0
        writer: Any = None
        # Written beside the target and renamed at the end: a failed run leaves no
        # half-written output that looks complete.
        partial = target.with_name(f".{target.name}.{batch_id}.partial")
        try:
            for chunk in reader:
                if chunk.num_rows == 0:
                    continue
                frame = chunk.select(columns).to_pandas()
                t0 = time.perf_counter()
                scored = servable.predict_frame(frame)
                latency_ms = (time.perf_counter() - t0) * 1000.0
                table = _events_table(
                    context,
                    alias=alias or "",
                    version=resolved,
                    features=chunk.column("__features").to_pylist(),
                    ids=chunk.column("__id").to_pylist(),
                    first_row=done,
                    scored=scored,
                    latency_ms=latency_ms,
                )
                if writer is None:
                    writer = (
                        pq.ParquetWriter(partial, PREDICTIONS_SCHEMA)
                        if out_fmt == "parquet"
                        else pacsv.CSVWriter(partial, PREDICTIONS_SCHEMA)
                    )
                writer.write_table(table)
                done += chunk.num_rows
                if on_progress is not None:
                    on_progress(done, total)
            if writer is None:  # an empty input still gets an output with the right columns
                empty = pa.Table.from_pylist([], schema=PREDICTIONS_SCHEMA)
                if out_fmt == "parquet":
                    pq.write_table(empty, partial)
                else:
                    pacsv.write_csv(empty, partial)
        finally:
            if writer is not None:
                writer.close()
        os.replace(partial, target)
    finally:
        if partial is not None and partial.exists():
            partial.unlink()
        con.close()
    return ScoreResult(
        model=name,
        version=resolved,
        alias=alias,
        batch_id=batch_id,
        n_rows=done,
        output=str(target),
        engine="duckdb",
        duration_s=time.perf_counter() - started,
    )


def _events_table(
    context: RequestContext,
    *,
    alias: str,
    version: str,
    features: list[str],
    ids: list[str | None],
    first_row: int,
    scored: Any,
    latency_ms: float,
) -> Any:
    """One chunk's prediction events: the gateway's columns, one request per input row."""
    import pyarrow as pa

    columns = prediction_columns(
        context,
        role="served",
        alias=alias,
        version=version,
        features_json=features,
        predictions=scored.predictions,
        proba=scored.proba,
        classes=scored.classes,
        latency_ms=latency_ms,
    )
    n = len(features)
    numbers = np.arange(first_row, first_row + n)
    columns["request_id"] = [
        given if given is not None else f"{context.request_id}-{i}"
        for given, i in zip(ids, numbers.tolist(), strict=True)
    ]
    columns["row_index"] = [0] * n
    return pa.Table.from_pydict(columns, schema=PREDICTIONS_SCHEMA)


__all__ = [
    "BATCH",
    "DEFAULT_CHUNK_ROWS",
    "ScoreResult",
    "input_format",
    "model_columns",
    "resolve_version",
    "score_file",
]
