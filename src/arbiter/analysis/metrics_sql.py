"""The SQL of the metric engine: per-unit values in DuckDB, per-arm sums out.

Every query starts from the same exposure table: the unit's rows in ``served`` (unforced,
role ``served``) within the experiment's :class:`~arbiter.events.query.Scope`, grouped per
``unit_id``::

    first_ts = min(ts)                 -- first exposure
    arm      = the arm, or NULL when the unit was served by more than one arm ("crossed")

A crossed unit keeps its row with ``arm`` NULL so the same query counts it; it never joins an
outcome. Requests without a unit id (or with a randomly drawn arm) cannot be attributed an
outcome and are left out.

Outcome metrics are computed for several metrics in one pass: the outcomes of the units'
events are joined once, and each metric is a filtered aggregate (``FILTER (WHERE ...)``) per
unit, so 5 metrics cost one scan of the outcome log. Then one ``GROUP BY arm`` returns, per
arm, the number of units and for each per-unit column its sum and sum of squares, plus the
cross products the statistics need (numerator × denominator of a ratio, metric × pre-period
value for CUPED). No row reaches Python.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from arbiter.durations import parse_duration
from arbiter.events.query import Scope
from arbiter.metric_definitions import EventMetric

#: Column name of the crossed units' pseudo-arm in the per-arm rows.
CROSSED = None

_PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True, slots=True)
class ArmSums:
    """Per-arm sums of per-unit columns, as one query returned them.

    Attributes
    ----------
    n : dict of str to int
        Units per arm (crossed units excluded).
    sums : dict of str to dict of str to float
        ``sums[arm][key]`` for ``key`` ``"s:<col>"`` (sum), ``"q:<col>"`` (sum of squares)
        and ``"x:<a>:<b>"`` (sum of the products of columns ``a`` and ``b``).
    crossed : int
        Units served by more than one arm.
    """

    n: dict[str, int]
    sums: dict[str, dict[str, float]]
    crossed: int


def exposure_sql(scope: Scope) -> str:
    """The ``exposure`` CTE body: one row per unit of ``scope`` (``unit_id, first_ts, arm``)."""
    return (
        "SELECT unit_id, min(ts) AS first_ts, "
        "CASE WHEN count(DISTINCT arm) = 1 THEN min(arm) END AS arm "
        f"FROM served WHERE {scope.where()} AND unit_id IS NOT NULL "
        "AND NOT coalesce(unit_random, false) GROUP BY unit_id"
    )


def _window_param(metric: EventMetric) -> Any:
    return None if metric.window is None else parse_duration(metric.window, field="window")


def _aggregate(metric: EventMetric, condition: str) -> str:
    if metric.aggregate == "any":
        return f"CAST(count(*) FILTER (WHERE {condition}) > 0 AS DOUBLE)"
    if metric.aggregate == "count":
        return f"CAST(count(*) FILTER (WHERE {condition}) AS DOUBLE)"
    return f"coalesce(sum(o.value) FILTER (WHERE {condition}), 0.0)"


def event_sums(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    metrics: Sequence[EventMetric],
    *,
    pre: Sequence[bool] = (),
    products: Sequence[tuple[str, str]] = (),
) -> ArmSums:
    """Per-arm sums of the per-unit values of several event metrics, in one query.

    Column ``y{i}`` is metric ``i`` after exposure: outcomes with
    ``first_ts <= ts < first_ts + window`` (no upper bound without a window) and, when
    ``scope.end`` is set, ``ts <= scope.end`` (the analysis end). Column ``x{i}`` (when
    ``pre[i]``) is the same metric before exposure, the CUPED covariate: outcomes with
    ``first_ts - window <= ts < first_ts``, or every outcome before ``first_ts`` without a
    window.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection with the event views.
    scope : Scope
        The experiment's rows (model, experiment, time bounds).
    metrics : sequence of EventMetric
        The metrics, column ``y{i}`` for ``metrics[i]``.
    pre : sequence of bool
        Which metrics also get their pre-exposure column ``x{i}``.
    products : sequence of (str, str)
        Column pairs whose per-unit product is summed (``"x:<a>:<b>"``).

    Returns
    -------
    ArmSums
    """
    sql, params = _event_query(scope, metrics, pre, products, looks=False)
    return _arm_sums(con.execute(sql, params))


def event_sums_at(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    metrics: Sequence[EventMetric],
    ends: Sequence[datetime],
    *,
    pre: Sequence[bool] = (),
    products: Sequence[tuple[str, str]] = (),
) -> list[ArmSums]:
    """:func:`event_sums` as the analysis stood at each of ``ends``, in one query.

    Look ``k`` is exactly :func:`event_sums` with ``scope.end = ends[k]`` (units exposed by
    then, their arm and crossing as of then, outcomes until then): the series a reader peeking
    at those times would have seen. One query joins the exposures with a table of looks, so a
    sequential simulation or a plot costs one scan instead of one per look.
    """
    if not ends:
        return []
    sql, params = _event_query(scope, metrics, pre, products, looks=True)
    params["looks"] = list(ends)
    rows = con.execute(sql, params)
    names = [d[0] for d in rows.description]
    per_look: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows.fetchall():
        per_look.setdefault(int(row[0]), []).append(row[1:])
    return [_arm_sums_rows(names[1:], per_look.get(k, [])) for k in range(1, len(ends) + 1)]


def _event_query(
    scope: Scope,
    metrics: Sequence[EventMetric],
    pre: Sequence[bool],
    products: Sequence[tuple[str, str]],
    *,
    looks: bool,
) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = dict(scope.params)
    post_cols, pre_cols = [], []
    events = sorted({m.event for m in metrics})
    for j, event in enumerate(events):
        params[f"ev{j}"] = event
    if looks:
        end = " AND o.ts <= u.look_end"
    else:
        end = " AND o.ts <= $end" if scope.end is not None else ""
    for i, metric in enumerate(metrics):
        ev = f"o.event = $ev{events.index(metric.event)}"
        window = _window_param(metric)
        post = f"{ev} AND o.ts >= u.first_ts{end}"
        before = f"{ev} AND o.ts < u.first_ts"
        if window is not None:
            params[f"win{i}"] = window
            post += f" AND o.ts < u.first_ts + $win{i}"
            before += f" AND o.ts >= u.first_ts - $win{i}"
        post_cols.append(f"{_aggregate(metric, post)} AS y{i}")
        if i < len(pre) and pre[i]:
            pre_cols.append(f"{_aggregate(metric, before)} AS x{i}")
    columns = [f"y{i}" for i in range(len(metrics))] + [
        f"x{i}" for i in range(len(metrics)) if i < len(pre) and pre[i]
    ]
    key = "u.k, u.unit_id" if looks else "u.unit_id"
    join = "h.unit_id = u.unit_id" + (" AND h.k = u.k" if looks else "")
    event_list = ", ".join(f"$ev{j}" for j in range(len(events)))
    if not metrics:
        hits_sql = f"SELECT {'NULL AS k, ' if looks else ''}NULL AS unit_id WHERE false"
        unit_cols = ""
    else:
        hits_sql = (
            f"SELECT {key}, {', '.join(post_cols + pre_cols)} "
            "FROM exposure AS u JOIN outcomes AS o ON o.unit_id = u.unit_id "
            f"WHERE u.arm IS NOT NULL AND o.event IN ({event_list}) GROUP BY {key}"
        )
        unit_cols = ", " + ", ".join(f"coalesce(h.{c}, 0.0) AS {c}" for c in columns)
    aggregates = ["count(*) AS n"]
    for c in columns:
        aggregates += [f'sum({c}) AS "s:{c}"', f'sum({c} * {c}) AS "q:{c}"']
    for a, b in products:
        aggregates.append(f'sum({a} * {b}) AS "x:{a}:{b}"')
    if looks:
        exposure = (
            "WITH looks AS (SELECT unnest(generate_series(1, len($looks))) AS k, "
            "unnest($looks) AS look_end), "
            "exposure AS (SELECT l.k, l.look_end, s.unit_id, min(s.ts) AS first_ts, "
            "CASE WHEN count(DISTINCT s.arm) = 1 THEN min(s.arm) END AS arm "
            f"FROM served AS s JOIN looks AS l ON s.ts <= l.look_end WHERE {scope.where('s')} "
            "AND s.unit_id IS NOT NULL AND NOT coalesce(s.unit_random, false) "
            "GROUP BY l.k, l.look_end, s.unit_id)"
        )
    else:
        exposure = f"WITH exposure AS ({exposure_sql(scope)})"
    sql = (
        f"{exposure}, hits AS ({hits_sql}), "
        f"per_unit AS (SELECT {'u.k, ' if looks else ''}u.arm{unit_cols} FROM exposure AS u "
        f"LEFT JOIN hits AS h ON {join}) "
        f"SELECT {'k, ' if looks else ''}arm, {', '.join(aggregates)} FROM per_unit "
        f"GROUP BY {'k, ' if looks else ''}arm"
    )
    return sql, params


def label_sums(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    numerator: str,
    denominator: str,
    params: Mapping[str, Any],
) -> ArmSums:
    """Per-arm sums of a label metric's per-unit numerator ``m`` and denominator ``d``.

    ``numerator`` and ``denominator`` are per-row SQL expressions over the ``labeled`` view's
    columns (:func:`arbiter.analysis.label_metrics.label_row_sql`), summed per unit over the
    unit's served rows in ``scope``. Units without a labelled row (``d = 0``) are left out:
    they carry no evidence about a label metric. Columns ``m`` and ``d``, product ``m·d``.
    """
    clash = set(_PARAMETER.findall(numerator + denominator)) & set(scope.params)
    if clash:
        raise ValueError(f"label metric parameters clash with the scope's: {sorted(clash)}")
    sql = (
        f"WITH exposure AS ({exposure_sql(scope)}), "
        f"rows AS (SELECT unit_id, CAST({numerator} AS DOUBLE) AS m, "
        f"CAST({denominator} AS DOUBLE) AS d FROM labeled "
        f"WHERE {scope.where()} AND role = 'served' AND unit_id IS NOT NULL), "
        "per_unit AS (SELECT e.arm, coalesce(sum(r.m), 0.0) AS m, coalesce(sum(r.d), 0.0) AS d "
        "FROM exposure AS e LEFT JOIN rows AS r ON r.unit_id = e.unit_id "
        "GROUP BY e.unit_id, e.arm) "
        'SELECT arm, count(*) AS n, sum(m) AS "s:m", sum(m * m) AS "q:m", sum(d) AS "s:d", '
        'sum(d * d) AS "q:d", sum(m * d) AS "x:m:d" FROM per_unit '
        "WHERE d > 0 OR arm IS NULL GROUP BY arm"
    )
    return _arm_sums(con.execute(sql, {**scope.params, **params}))


def _arm_sums(result: duckdb.DuckDBPyConnection) -> ArmSums:
    return _arm_sums_rows([d[0] for d in result.description], result.fetchall())


def _arm_sums_rows(names: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> ArmSums:
    n: dict[str, int] = {}
    sums: dict[str, dict[str, float]] = {}
    crossed = 0
    for row in rows:
        arm, count = row[0], int(row[1])
        if arm is CROSSED:
            crossed = count
            continue
        n[arm] = count
        sums[arm] = {k: float(v or 0.0) for k, v in zip(names[2:], row[2:], strict=True)}
    return ArmSums(n, sums, crossed)


__all__ = ["ArmSums", "event_sums", "event_sums_at", "exposure_sql", "label_sums"]
