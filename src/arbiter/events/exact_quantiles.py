"""Exact quantiles per group by sorting, for engines whose exact quantile aggregate cannot spill.

DuckDB's ``quantile_cont`` and PostgreSQL's ``percentile_cont`` sort within the memory budget
and spill what does not fit. Spark's exact ``percentile`` (and ``percentile_cont``, ``median``,
all ``PercentileBase``) keeps every distinct value of a group in an in-memory hash map of boxed
values, with no spill: on 100 M events a ``local[2]`` driver ran out of a 12 GiB heap in
``PercentileBase.merge`` where DuckDB needed 16 GiB of *process* memory for the whole analysis.
``percentile_approx`` is bounded but approximate, and the three engines must agree to 1e-9.

So on Spark the same numbers come from a sort, which Spark spills to disk: a running
``count(*)`` over (group ORDER BY value) numbers the values 0 .. n - 1, and only the rows at
the ranks a quantile needs are kept (an equi-join with a small list of ranks, broadcast). A
quantile q of n values is the linear ("type 7") interpolation DuckDB, PostgreSQL and Spark all
use: with ``h = (n - 1) q``, ``x[floor h] + (h - floor h) (x[ceil h] - x[floor h])``.
:func:`quantile_ranks` and :func:`interpolate` are that rule (pure); :func:`sorted_quantiles`
runs the two queries (a count per group, then the ranked rows).

Hand-written because no engine-neutral library gives an exact, spilling quantile on Spark;
the SQL is still arbiter's one DuckDB dialect, transpiled as every other query.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: Name of the bound list of wanted ranks (not a name a caller's query uses).
_RANKS = "__quantile_ranks"


def uses_sorted_quantiles(con: object) -> bool:
    """Whether ``con`` needs :func:`sorted_quantiles` for exact quantiles (Spark connections).

    DuckDB and PostgreSQL keep their native ``quantile_cont`` / ``percentile_cont``, which
    spill; only Spark's exact ``percentile`` holds every distinct value in memory.
    """
    return getattr(con, "dialect", None) == "spark"


def quantile_ranks(n: int, quantiles: Sequence[float]) -> list[int]:
    """The 0-based ranks whose values the linear interpolation of ``quantiles`` reads, sorted."""
    if n <= 0:
        return []
    ranks: set[int] = set()
    for q in quantiles:
        h = (n - 1) * q
        ranks.update((math.floor(h), math.ceil(h)))
    return sorted(ranks)


def interpolate(
    n: int, quantiles: Sequence[float], at_rank: Mapping[int, float]
) -> tuple[float, ...]:
    """The ``quantiles`` of ``n`` sorted values given the values at :func:`quantile_ranks`.

    ``x[lo] + (h - lo) * (x[hi] - x[lo])`` with ``h = (n - 1) q``: DuckDB's ``quantile_cont``
    interpolates the same way, so the results agree to rounding. Empty (``n = 0``) gives ``()``.
    """
    if n <= 0:
        return ()
    out = []
    for q in quantiles:
        h = (n - 1) * q
        lo, hi = math.floor(h), math.ceil(h)
        low = at_rank[lo]
        out.append(low if lo == hi else low + (h - lo) * (at_rank[hi] - low))
    return tuple(out)


def sorted_quantiles(
    con: Any,
    source: str,
    group: Sequence[str],
    value: str,
    quantiles: Sequence[float],
    params: Mapping[str, Any] | None = None,
) -> dict[Any, tuple[float, ...]]:
    """Exact ``quantiles`` of ``value`` per ``group`` over the rows of ``source``, by sorting.

    Parameters
    ----------
    con
        An engine connection (DuckDB, :class:`~arbiter.events.engines.spark.SparkConnection`,
        PostgreSQL): the SQL is DuckDB's dialect, transpiled by the connection.
    source : str
        A query (DuckDB dialect, ``$name`` parameters) whose rows are the population, already
        filtered; it has the columns ``group`` and ``value``. Fixed SQL from arbiter's own
        modules, never user text.
    group : sequence of str
        The grouping columns of ``source`` (identifiers).
    value : str
        The column whose quantiles are wanted. NULLs are left out, as ``quantile_cont`` does.
    quantiles : sequence of float
        Levels in [0, 1].
    params : mapping, optional
        Values of ``source``'s parameters.

    Returns
    -------
    dict
        Group key (the tuple of ``group`` values) -> one value per quantile, in the order of
        ``quantiles``. A group whose values are all NULL maps to ``()`` (``quantile_cont``
        gives NULL).
    """
    values = dict(params or {})
    keys = ", ".join(group)
    width = len(group)
    counts = {
        tuple(row[:width]): int(row[width])
        for row in con.execute(
            f"SELECT {keys}, count({value}) FROM ({source}) AS _src GROUP BY {keys}", values
        ).fetchall()
    }
    wanted = {key: quantile_ranks(n, quantiles) for key, n in counts.items()}
    ranks = sorted({r for rs in wanted.values() for r in rs})
    at_rank: dict[Any, dict[int, float]] = {key: {} for key in counts}
    if ranks:
        # A running count (BIGINT) numbers the rows, not row_number(), which is a 32-bit INT
        # on Spark and would wrap past 2^31 rows in a group. The join keeps only the wanted
        # ranks (a broadcast hash join on Spark); a rank one group needs may also come back
        # for another group: ignored below.
        rows = con.execute(
            f"""
            SELECT {", ".join(f"_ranked.{g}" for g in group)}, _ranked._r, _ranked._x
            FROM (
                SELECT {keys}, {value} AS _x,
                       count(*) OVER (PARTITION BY {keys} ORDER BY {value}
                                      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - 1
                           AS _r
                FROM ({source}) AS _src
                WHERE {value} IS NOT NULL
            ) AS _ranked
            JOIN (SELECT unnest(${_RANKS}) AS _r) AS _wanted ON _ranked._r = _wanted._r
            """,
            {**values, _RANKS: ranks},
        ).fetchall()
        for row in rows:
            at_rank[tuple(row[:width])][int(row[width])] = float(row[width + 1])
    return {key: interpolate(counts[key], quantiles, at_rank[key]) for key in counts}


__all__ = ["interpolate", "quantile_ranks", "sorted_quantiles", "uses_sorted_quantiles"]
