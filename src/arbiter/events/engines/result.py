"""A query result in the shape of DuckDB's: ``fetchall``, ``fetchone``, ``fetchnumpy``, ``df``.

The analysis reads results through the methods of DuckDB's relation and connection objects.
The Spark and PostgreSQL engines hand back this one class instead, over an Arrow table (Spark
returns Arrow natively; PostgreSQL rows are turned into one), so the analysis code is the same
whichever engine ran the query.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def _plain(value: Any) -> Any:
    # PostgreSQL's numeric (DIV, sum of bigint) arrives as Decimal; DuckDB gives int or float.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class QueryResult:
    """Rows of one query, read once (like a DuckDB result, each fetch moves a cursor on).

    Parameters
    ----------
    table : pyarrow.Table
        The rows, columns named as the query named them.
    """

    def __init__(self, table: pa.Table) -> None:
        self._table = table
        self._rows: list[tuple[Any, ...]] | None = None
        self._next = 0

    @classmethod
    def from_rows(cls, names: list[str], rows: list[tuple[Any, ...]]) -> QueryResult:
        """A result from DB-API rows (PostgreSQL), numeric values made int or float."""
        columns = [[_plain(r[i]) for r in rows] for i in range(len(names))]
        unique = _unique_names(names)
        table = pa.table({n: pa.array(c) for n, c in zip(unique, columns, strict=True)})
        result = cls(table)
        result._rows = [tuple(c[i] for c in columns) for i in range(len(rows))]
        return result

    @property
    def columns(self) -> list[str]:
        """Column names, in order."""
        return list(self._table.column_names)

    @property
    def description(self) -> list[tuple[Any, ...]]:
        """DB-API column descriptions (name first, as DuckDB's ``cursor.description``)."""
        return [
            (name, str(t), None, None, None, None, None)
            for name, t in zip(self._table.column_names, self._table.schema.types, strict=True)
        ]

    def _all_rows(self) -> list[tuple[Any, ...]]:
        if self._rows is None:
            columns = [c.to_pylist() for c in self._table.columns]
            self._rows = list(zip(*columns, strict=True)) if columns else []
        return self._rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        """Every remaining row as a tuple."""
        rows = self._all_rows()[self._next :]
        self._next += len(rows)
        return rows

    def fetchone(self) -> tuple[Any, ...] | None:
        """The next row, or None when none is left."""
        rows = self._all_rows()
        if self._next >= len(rows):
            return None
        self._next += 1
        return rows[self._next - 1]

    def fetchnumpy(self) -> dict[str, np.ndarray]:
        """Each column as a numpy array, masked where SQL had NULL (as DuckDB's)."""
        out: dict[str, np.ndarray] = {}
        for name, column in zip(self._table.column_names, self._table.columns, strict=True):
            mask = pc.is_null(column).to_numpy(zero_copy_only=False)
            if pa.types.is_boolean(column.type):
                filled = pc.fill_null(column, False)
            elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
                filled = pc.fill_null(column, 0)
            else:
                filled = column
            data = filled.to_numpy(zero_copy_only=False) if len(column) else np.array([])
            out[name] = np.ma.masked_array(data, mask=mask) if mask.any() else data
        return out

    def to_arrow_table(self) -> pa.Table:
        """The rows as an Arrow table."""
        return self._table

    fetch_arrow_table = arrow = to_arrow_table

    def df(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame (through Arrow)."""
        return self._table.to_pandas()

    fetchdf = df


def _unique_names(names: list[str]) -> list[str]:
    # Arrow tables allow duplicate names, dicts do not: "count" twice becomes count, count_1.
    seen: dict[str, int] = {}
    out = []
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(name if n == 0 else f"{name}_{n}")
    return out


__all__ = ["QueryResult"]
