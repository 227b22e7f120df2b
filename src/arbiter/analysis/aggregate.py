"""Per-arm sufficient statistics of one experiment, computed in DuckDB where the events live.

Every function here runs GROUP BY queries over the event-log views of
:meth:`arbiter.events.EventStore.connect` and returns small dataclasses; no Python loop ever
touches a row. The one exception to "aggregates only" is :class:`PairedData`: the paired tests
of a shadow experiment need one value per labelled pair, which is bounded by the labels that
arrived and is fetched as numpy arrays in one call.

Conventions
-----------
``side``
    ``"champion"`` or ``"challenger"``. In an A/B test it is the ``arm`` that answered; in a
    shadow test the served rows are the champion and the ``role = 'shadow'`` rows the
    challenger (their ``arm`` column says which arm *answered the caller*, always champion).
Forced rows
    Requests whose arm a tester forced by header are left out everywhere: every query reads
    the ``unforced``, ``served``, ``shadowed`` or ``labeled`` view of
    :mod:`arbiter.events.query`, narrowed by a :class:`~arbiter.events.query.Scope`.
Request-level numbers
    Latency and errors are per model call, repeated on each row of a batch request, so they
    are read from the ``row_index = 0`` row: one row per request per model, no GROUP BY on
    ``request_id`` (which on 10 million rows costs more than everything else together).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import duckdb
import numpy as np

from arbiter.errors import NotFoundError
from arbiter.events.exact_quantiles import sorted_quantiles, uses_sorted_quantiles
from arbiter.events.query import Scope
from arbiter.stats.sufficient import ProportionStatistic, RatioStatistic, SampleMeanStatistic

Task = Literal["classification", "regression"]
Loss = Literal["squared", "absolute"]
SIDES: tuple[str, str] = ("champion", "challenger")

# Percentiles kept per arm: enough to draw the latency distribution and read p50/p95/p99.
# Every extra percentile costs DuckDB time (99 of them take 3x as long as these 21).
LATENCY_PERCENTILES: tuple[float, ...] = (
    0.01,
    *(round(q / 100, 2) for q in range(5, 100, 5)),
    0.99,
)
# Bucket widths for the time series (seconds); the smallest giving at most MAX_BUCKETS wins.
_BUCKET_WIDTHS_S: tuple[int, ...] = (
    1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    172800, 604800,
)  # fmt: skip
MAX_BUCKETS = 60

# SQL in this module interpolates only fixed fragments (this expression, the loss and metric
# expressions of _loss_sql over fixed column names, a generated temp-table name, the scope's
# WHERE text); every value is a bound $parameter.
_SIDE_SQL = "CASE WHEN role = 'shadow' THEN 'challenger' ELSE arm END"


@dataclass(frozen=True, slots=True)
class ExperimentInfo:
    """What the log says about one experiment of one model."""

    model: str
    experiment: str
    strategy: str
    first_ts: datetime
    last_ts: datetime
    rows: int

    @property
    def duration_s(self) -> float:
        return (self.last_ts - self.first_ts).total_seconds()


@dataclass(frozen=True, slots=True)
class ArmTraffic:
    """Request-level traffic of one side: counts for SRM, errors, latency percentiles.

    ``units`` counts distinct ``unit_id`` values, a request without one counting as its own
    unit; ``latency_percentiles_ms`` are the :data:`LATENCY_PERCENTILES` of successful requests.
    """

    side: str
    aliases: tuple[str, ...]
    versions: tuple[str, ...]
    requests: int
    units: int
    random_requests: int
    errors: int
    latency_percentiles_ms: tuple[float, ...]
    latency_mean_ms: float = math.nan
    """Mean latency of successful requests: a tail that moves it shows beside the median."""

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else math.nan

    def latency_ms(self, q: float) -> float:
        """Latency percentile ``q`` (one of :data:`LATENCY_PERCENTILES`); nan without data."""
        if not self.latency_percentiles_ms:
            return math.nan
        return self.latency_percentiles_ms[LATENCY_PERCENTILES.index(q)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "aliases": list(self.aliases),
            "versions": list(self.versions),
            "requests": self.requests,
            "units": self.units,
            "random_requests": self.random_requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "latency_mean_ms": self.latency_mean_ms,
            "latency_p50_ms": self.latency_ms(0.5),
            "latency_p95_ms": self.latency_ms(0.95),
            "latency_p99_ms": self.latency_ms(0.99),
        }


MetricStatistic = ProportionStatistic | SampleMeanStatistic


@dataclass(frozen=True, slots=True)
class TimeSeries:
    """Cumulative per-side sufficient statistics at the end of each time bucket.

    ``elapsed_s[i]`` is the end of bucket ``i`` in seconds since the experiment's first event;
    ``n``, ``sums`` and ``sum_squares`` map a side to cumulative totals up to that bucket.
    """

    bucket_s: int
    elapsed_s: tuple[float, ...]
    n: dict[str, tuple[int, ...]]
    sums: dict[str, tuple[float, ...]]
    sum_squares: dict[str, tuple[float, ...]]

    def statistic(self, side: str, i: int, kind: Literal["proportion", "mean"]) -> MetricStatistic:
        """The cumulative statistic of ``side`` at bucket ``i``."""
        n = self.n[side][i]
        if kind == "proportion":
            return ProportionStatistic(n, round(self.sums[side][i]))
        return SampleMeanStatistic(n, self.sums[side][i], self.sum_squares[side][i])

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket_s": self.bucket_s,
            "elapsed_s": list(self.elapsed_s),
            "n": {k: list(v) for k, v in self.n.items()},
            "sums": {k: list(v) for k, v in self.sums.items()},
            "sum_squares": {k: list(v) for k, v in self.sum_squares.items()},
        }


@dataclass(frozen=True, slots=True)
class ShadowAgreement:
    """Champion vs shadow challenger on every paired row (labelled or not)."""

    pairs: int
    disagreements: int
    challenger_more_confident: int
    disagreements_with_confidence: int

    @property
    def discrepancy(self) -> ProportionStatistic:
        return ProportionStatistic(self.pairs, self.disagreements)

    @property
    def more_confident(self) -> ProportionStatistic:
        return ProportionStatistic(
            self.disagreements_with_confidence, self.challenger_more_confident
        )


@dataclass(frozen=True)
class PairedData:
    """Labelled champion/challenger pairs of a shadow experiment, as aligned numpy arrays.

    Classification fills ``correct_a``/``correct_b`` (prediction equals label, compared as
    canonical text in SQL) and, when both models logged a score on every pair and the labels
    are 0/1, ``y_binary`` with ``score_a``/``score_b``. Regression fills ``y_num`` with
    ``pred_a``/``pred_b``. ``a`` is the champion, ``b`` the challenger.
    """

    ts_us: np.ndarray
    correct_a: np.ndarray | None = None
    correct_b: np.ndarray | None = None
    y_binary: np.ndarray | None = None
    score_a: np.ndarray | None = None
    score_b: np.ndarray | None = None
    y_num: np.ndarray | None = None
    pred_a: np.ndarray | None = None
    pred_b: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.ts_us.size)


@dataclass(frozen=True, slots=True)
class ConfusionMatrix:
    """Counts of (label, prediction) for one side, over at most ``max_classes`` labels."""

    side: str
    labels: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]  # counts[i][j]: true labels[i], predicted labels[j]

    def to_dict(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "labels": list(self.labels),
            "counts": [list(r) for r in self.counts],
        }


@dataclass(frozen=True)
class ExperimentAggregates:
    """Everything the analysis reads from the log for one experiment."""

    info: ExperimentInfo
    task: Task
    traffic: dict[str, ArmTraffic]
    metric: dict[str, MetricStatistic]
    timeseries: TimeSeries
    confusion: tuple[ConfusionMatrix, ...] = ()
    agreement: ShadowAgreement | None = None
    paired: PairedData | None = None
    other_arms: tuple[str, ...] = field(default=())
    per_unit: dict[str, RatioStatistic] = field(default_factory=dict)
    """Served experiments: the metric per randomisation unit (``m`` = a unit's summed metric,
    ``d`` = its labelled rows; a row without a unit id is its own unit), for the delta-method
    tests when units repeat. Empty for shadow experiments (both models score every pair)."""

    def units_repeat(self, side: str, factor: float = 1.0) -> bool:
        """Whether ``side``'s labelled rows outnumber its labelled units (times ``factor``)."""
        unit = self.per_unit.get(side)
        return unit is not None and unit.d_sum > factor * unit.n


# --- queries ---------------------------------------------------------------------------------


def experiment_info(con: duckdb.DuckDBPyConnection, model: str, experiment: str) -> ExperimentInfo:
    """Strategy and time span of an experiment.

    Raises
    ------
    NotFoundError
        The model logged nothing, or has no such experiment (the message lists the ones it has).
    """
    scope = Scope(model, experiment)
    row = con.execute(
        f"SELECT any_value(strategy), min(ts), max(ts), count(*) FROM unforced "
        f"WHERE {scope.where()}",
        scope.params,
    ).fetchone()
    if row is None or not row[3]:
        known = list_experiments(con, model)
        if not known:
            raise NotFoundError(f"no events logged for model {model!r}")
        raise NotFoundError(
            f"model {model!r} has no experiment {experiment!r}; it has: {', '.join(known)}"
        )
    strategy, first, last, rows = row
    return ExperimentInfo(model, experiment, str(strategy), first, last, int(rows))


def list_experiments(con: duckdb.DuckDBPyConnection, model: str) -> list[str]:
    """The experiments ``model`` has logged (unforced rows), oldest first."""
    scope = Scope(model)
    rows = con.execute(
        f"SELECT experiment FROM unforced WHERE {scope.where()} "
        "GROUP BY experiment ORDER BY min(ts), experiment",  # ties: by name, deterministically
        scope.params,
    ).fetchall()
    return [r[0] for r in rows]


def detect_task(con: duckdb.DuckDBPyConnection, model: str, experiment: str) -> Task:
    """``classification`` when the models report probabilities or few distinct integral labels.

    Same rule as ``arbiter report``: probabilities, or at most 50 distinct predictions none of
    them fractional, mean a classifier; anything else is a regressor.
    """
    scope = Scope(model, experiment)
    row = con.execute(
        f"""
        SELECT count(confidence),
               count(DISTINCT prediction),
               count(prediction_num) FILTER (WHERE prediction_num <> round(prediction_num))
        FROM unforced WHERE {scope.where()} AND error IS NULL
        """,
        scope.params,
    ).fetchone()
    assert row is not None
    with_proba, distinct, fractional = row
    return "classification" if with_proba or (not fractional and distinct <= 50) else "regression"


def arm_traffic(
    con: duckdb.DuckDBPyConnection, model: str, experiment: str
) -> dict[str, ArmTraffic]:
    """Requests, units, errors and latency percentiles per side (see module conventions).

    On Spark the percentiles come from :func:`~arbiter.events.exact_quantiles.sorted_quantiles`
    (a sort, which spills) instead of ``quantile_cont`` (Spark's exact ``percentile`` holds
    every distinct latency of an arm in memory); the numbers are the same.
    """
    scope = Scope(model, experiment)
    sorted_on_engine = uses_sorted_quantiles(con)
    latency = (
        "NULL"
        if sorted_on_engine
        else "quantile_cont(latency_ms, $percentiles) FILTER (WHERE error IS NULL)"
    )
    params = dict(scope.params)
    if not sorted_on_engine:
        params["percentiles"] = list(LATENCY_PERCENTILES)
    rows = con.execute(
        f"""
        SELECT {_SIDE_SQL} AS side,
               list_sort(list(DISTINCT alias)) AS aliases,
               list_sort(list(DISTINCT version)) AS versions,
               count(*) AS requests,
               -- A request without a unit id is its own unit (its id is unique).
               count(DISTINCT unit_id) + count(*) FILTER (WHERE unit_id IS NULL) AS units,
               count(*) FILTER (WHERE unit_id IS NULL) AS random_requests,
               count(error) AS errors,
               {latency} AS latency,
               avg(latency_ms) FILTER (WHERE error IS NULL) AS latency_mean
        FROM unforced
        WHERE {scope.where()} AND row_index = 0
        GROUP BY side ORDER BY side
        """,
        params,
    ).fetchall()
    percentiles = {r[0]: tuple(float(x) for x in r[7]) if r[7] else () for r in rows}
    if sorted_on_engine:
        by_key = sorted_quantiles(
            con,
            f"SELECT {_SIDE_SQL} AS side, latency_ms FROM unforced "
            f"WHERE {scope.where()} AND row_index = 0 AND error IS NULL",
            ("side",),
            "latency_ms",
            LATENCY_PERCENTILES,
            scope.params,
        )
        percentiles = {key[0]: q for key, q in by_key.items()}
    return {
        r[0]: ArmTraffic(
            side=r[0],
            aliases=tuple(a for a in r[1] if a is not None),
            versions=tuple(v for v in r[2] if v is not None),
            requests=int(r[3]),
            units=int(r[4]),
            random_requests=int(r[5]),
            errors=int(r[6]),
            latency_percentiles_ms=percentiles.get(r[0], ()),
            latency_mean_ms=math.nan if r[8] is None else float(r[8]),
        )
        for r in rows
    }


def bucket_width(duration_s: float, max_buckets: int = MAX_BUCKETS) -> int:
    """Smallest width from a fixed ladder (1 s ... 1 week) giving at most ``max_buckets``."""
    for width in _BUCKET_WIDTHS_S:
        if duration_s / width <= max_buckets:
            return width
    return math.ceil(duration_s / max_buckets)


def _loss_sql(loss: Loss, pred: str, label: str) -> str:
    return f"({pred} - {label}) ^ 2" if loss == "squared" else f"abs({pred} - {label})"


def _cumulative_series(
    rows: list[tuple[Any, ...]], width_s: int, sides: tuple[str, ...]
) -> TimeSeries:
    """Turn ``(side, bucket, n, sum, sum_squares)`` rows into cumulative per-side series."""
    n_buckets = 1 + max((int(r[1]) for r in rows), default=0)
    n = {s: np.zeros(n_buckets) for s in sides}
    sums = {s: np.zeros(n_buckets) for s in sides}
    squares = {s: np.zeros(n_buckets) for s in sides}
    for side, bucket, count, total, total_sq in rows:  # one row per (side, bucket): <= 120
        if side in n:
            n[side][int(bucket)] = count
            sums[side][int(bucket)] = total
            squares[side][int(bucket)] = total_sq
    return TimeSeries(
        bucket_s=width_s,
        elapsed_s=tuple(float(width_s * (i + 1)) for i in range(n_buckets)),
        n={s: tuple(int(x) for x in np.cumsum(n[s])) for s in sides},
        sums={s: tuple(np.cumsum(sums[s]).tolist()) for s in sides},
        sum_squares={s: tuple(np.cumsum(squares[s]).tolist()) for s in sides},
    )


def _metric_from_series(series: TimeSeries, task: Task) -> dict[str, MetricStatistic]:
    kind: Literal["proportion", "mean"] = "proportion" if task == "classification" else "mean"
    last = len(series.elapsed_s) - 1
    return {side: series.statistic(side, last, kind) for side in series.n}


def _sum_by(rows: list[tuple[Any, ...]], key: tuple[int, ...]) -> list[tuple[Any, ...]]:
    """Re-aggregate ``(*keys, n, sum, sum_squares)`` rows by the key columns ``key``."""
    totals: dict[tuple[Any, ...], list[float]] = {}
    for row in rows:  # grouped rows: sides x buckets x labels x predictions, not events
        acc = totals.setdefault(tuple(row[i] for i in key), [0, 0.0, 0.0])
        acc[0] += row[-3]
        acc[1] += row[-2]
        acc[2] += row[-1]
    return [(*k, *v) for k, v in totals.items()]


def _confusion(
    rows: list[tuple[Any, ...]], max_classes: int, sides: tuple[str, ...] = SIDES
) -> tuple[ConfusionMatrix, ...]:
    """Confusion matrices (one per side) from ``(side, label, prediction, count, ...)`` rows.

    Keeps the ``max_classes`` most frequent true labels, in sorted order.
    """
    totals: dict[str, int] = {}
    for _, label, _, count, *_ in rows:
        totals[label] = totals.get(label, 0) + count
    labels = sorted(totals, key=lambda k: (-totals[k], k))[:max_classes]
    labels.sort()
    index = {label: i for i, label in enumerate(labels)}
    out = []
    for side in sides:
        counts = np.zeros((len(labels), len(labels)), dtype=int)
        for s, label, prediction, count, *_ in rows:
            if s == side and label in index and prediction in index:
                counts[index[label], index[prediction]] += count
        out.append(ConfusionMatrix(side, tuple(labels), tuple(map(tuple, counts.tolist()))))
    return tuple(out)


def aggregate_experiment(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    *,
    loss: Loss = "squared",
    max_classes: int = 10,
    arms: tuple[str, ...] | None = None,
    exclude_crossed: bool = False,
    keep_table: str | None = None,
) -> ExperimentAggregates:
    """Compute every per-arm aggregate :func:`~arbiter.analysis.analyze_experiment` needs.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection from :meth:`arbiter.events.EventStore.connect`.
    model, experiment : str
        What to aggregate.
    loss : {"squared", "absolute"}, default "squared"
        Per-row loss of a regressor (ignored for classifiers).
    max_classes : int, default 10
        Confusion matrices keep the most frequent labels only.
    arms : tuple of str, optional
        A/B/n: the arms (champion first) whose metric, time series and confusion matrices to
        keep; default :data:`SIDES`. Served arms not listed end up in ``other_arms``. Ignored
        for shadow experiments, which always have exactly two sides.
    exclude_crossed : bool, default False
        Leave out of the metric (not the traffic) the units served by more than one arm,
        which a split change moves (:mod:`arbiter.analysis.periods`).
    keep_table : str, optional
        Keep the temporary table the aggregates read under this name, for the caller, who
        reads it again and drops it. A/B: every labelled served row (``side``, ``unit``,
        ``bucket``, ``y`` (NULL without a prediction or on a failed request), ``label``,
        ``prediction``, ``scored``, ``ok`` (the request succeeded), ``has_unit_id`` (``unit``
        is then the unit id, else the request id), ``ts``, ``score``, ``probabilities``),
        read by
        :func:`~arbiter.analysis.label_metrics.label_profile` and
        :func:`~arbiter.analysis.metrics_sql.label_sums_at`. Shadow experiments:
        materialise the pairs into a temporary table of this name
        (``paired``, ``unit``, ``pred_a``, ``pred_b``, ``num_a``, ``num_b``, ``score_a``,
        ``probs_a``..., ``label``, ``y_num``, ``ok``, ``scored``...: one row per successful
        served row, labelled or not, ``paired`` when its shadow row succeeded too, the
        challenger's columns NULL otherwise; the pairs are the ``paired`` rows) and leave
        it for the caller, who reads it again
        (:func:`~arbiter.analysis.shadow_detail.shadow_detail`,
        :func:`~arbiter.analysis.label_metrics.paired_label_metrics`) and drops it. The name
        is interpolated into SQL: pass an identifier of your own. Default: dropped here.

    Returns
    -------
    ExperimentAggregates
        ``metric`` holds per-side :class:`ProportionStatistic` (accuracy) or
        :class:`SampleMeanStatistic` (loss) on labelled, successful rows; for a shadow
        experiment both are computed on the same labelled pairs, which also fill ``paired``.

    Raises
    ------
    NotFoundError
        Unknown model or experiment.
    """
    info = experiment_info(con, model, experiment)
    task = detect_task(con, model, experiment)
    traffic = arm_traffic(con, model, experiment)
    width = bucket_width(info.duration_s)
    t0 = con.execute("SELECT epoch_us($t)::BIGINT", {"t": info.first_ts}).fetchone()
    assert t0 is not None
    scope = Scope(model, experiment)
    params = {**scope.params, "t0": int(t0[0]), "width": width * 1_000_000}
    crossed = _crossed_filter(scope) if exclude_crossed else ""
    if task == "classification":
        y_expr = "(prediction = label)::INT"
        y_a, y_b = "correct_a::INT", "correct_b::INT"
    else:
        y_expr = _loss_sql(loss, "prediction_num", "label_num")
        y_a, y_b = _loss_sql(loss, "num_a", "y_num"), _loss_sql(loss, "num_b", "y_num")
    # A temporary table materialises the expensive step (shadow: the pair and label joins;
    # A/B: the label join) once, and every aggregate reads it. A unique name: the caller owns
    # the connection.
    kept = keep_table or f"_arbiter_kept_{uuid.uuid4().hex[:12]}"
    try:
        if info.strategy == "shadow":
            return _aggregate_shadow(
                con, info, task, traffic, scope, params, width, kept, y_a, y_b, max_classes
            )
        # The label join (every served row of the experiment probing the labels) is the
        # expensive step: a temporary table keeps its labelled rows once, narrowed to the
        # columns the analysis reads, and every later reader of labelled rows reads that table
        # instead of repeating the join: both aggregates below, and, when the caller keeps it,
        # the label profile and the label metrics at every look (label_metrics.label_profile,
        # metrics_sql.label_sums_at). The rows are every labelled served row, failed requests
        # included (``ok`` false, ``y`` NULL): a label metric counts them as its own query did
        # (a row without prediction or probability contributes 0 to both sums); the aggregates
        # and the profile read the ``ok`` rows. ``y`` is also NULL without a prediction.
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {kept} AS
            SELECT {_SIDE_SQL} AS side, coalesce(unit_id, request_id) AS unit,
                   (epoch_us(ts) - $t0) // $width AS bucket,
                   CASE WHEN error IS NULL THEN {y_expr} END::DOUBLE AS y,
                   label, prediction,
                   probabilities IS NOT NULL OR score IS NOT NULL AS scored,
                   error IS NULL AS ok, unit_id IS NOT NULL AS has_unit_id, ts, score,
                   probabilities
            FROM labeled
            WHERE {scope.where()} AND role = 'served' AND label IS NOT NULL
            {crossed}
            """,
            params,
        )
        keys = (
            "label, prediction"
            if task == "classification"
            else "CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR)"
        )
        # One pass over the labelled rows: grouped by (side, bucket) and, for a classifier,
        # also by (label, prediction), so the same rows give the time series (sum over the
        # labels) and the confusion matrices (sum over the buckets).
        rows = con.execute(
            f"SELECT side, bucket, {keys}, count(y), sum(y), sum(y * y) "
            f"FROM {kept} WHERE y IS NOT NULL GROUP BY ALL"
        ).fetchall()
        sides = arms or SIDES
        series = _cumulative_series(_sum_by(rows, (0, 1)), width, sides)
        others = tuple(sorted({str(r[0]) for r in rows} - set(sides)))
        confusion = (
            _confusion(_sum_by(rows, (0, 2, 3)), max_classes, sides)
            if task == "classification"
            else ()
        )
        return ExperimentAggregates(
            info, task, traffic, _metric_from_series(series, task), series, confusion,
            other_arms=others, per_unit=_per_unit(con, kept, sides),
        )  # fmt: skip
    finally:
        if not keep_table:
            con.execute(f"DROP TABLE IF EXISTS {kept}")


def _crossed_filter(scope: Scope) -> str:
    """``AND`` clause leaving out units served by more than one arm (same scope params)."""
    return (
        "AND (unit_id IS NULL OR unit_id NOT IN (SELECT unit_id FROM served WHERE "
        f"{scope.where()} AND unit_id IS NOT NULL GROUP BY unit_id "
        "HAVING count(DISTINCT arm) > 1))"
    )


def _per_unit(
    con: duckdb.DuckDBPyConnection, rows: str, sides: tuple[str, ...]
) -> dict[str, RatioStatistic]:
    """Per side, the metric as a ratio over units: the sums the delta method needs.

    Assignment is sticky per unit, so a unit's rows share an arm and are correlated; the
    units, not the rows, are the independent observations. One GROUP BY per unit, then one
    per side, over the labelled rows of ``rows`` (the temporary table of
    :func:`aggregate_experiment`: ``side``, ``unit``, ``y``): a handful of numbers out,
    whatever the number of rows.
    """
    result = con.execute(
        f"""
        SELECT side, count(*), sum(m), sum(m * m), sum(d), sum(d * d), sum(m * d) FROM (
            SELECT side, sum(y) AS m, count(y)::DOUBLE AS d FROM {rows} WHERE y IS NOT NULL
            GROUP BY side, unit
        ) AS u
        GROUP BY side
        """
    ).fetchall()
    out = {s: RatioStatistic(0, 0.0, 0.0, 0.0, 0.0, 0.0) for s in sides}
    for side, n, *sums in result:
        if side in out:
            out[side] = RatioStatistic(int(n), *(float(v) for v in sums))
    return out


def _floats(column: Any) -> np.ndarray:
    """A DuckDB numpy column (masked where SQL had NULL) as floats with NaN for NULL."""
    return np.ma.filled(np.ma.asarray(column, dtype=float), np.nan)


def _aggregate_shadow(
    con: duckdb.DuckDBPyConnection,
    info: ExperimentInfo,
    task: Task,
    traffic: dict[str, ArmTraffic],
    scope: Scope,
    params: dict[str, Any],
    width: int,
    pairs: str,
    y_a: str,
    y_b: str,
    max_classes: int,
) -> ExperimentAggregates:
    # Every successful served row, with its successful shadow row when there is one
    # (``paired``; the challenger's columns are NULL otherwise): the pairs are the ``paired``
    # rows, and the label profile of the default quality metric
    # (label_metrics.label_profile) reads every labelled row (``ok``, ``scored``: the served
    # side's) instead of joining the served rows with the labels again.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {pairs} AS
        WITH s AS (SELECT * FROM served WHERE {scope.where()} AND error IS NULL),
             c AS (SELECT * FROM shadowed WHERE {scope.where()} AND error IS NULL)
        SELECT c.request_id IS NOT NULL AS paired, TRUE AS ok,
               s.probabilities IS NOT NULL OR s.score IS NOT NULL AS scored,
               (epoch_us(s.ts) - $t0) // $width AS bucket, epoch_us(s.ts) AS ts_us,
               coalesce(s.unit_id, s.request_id) AS unit,
               f.label, f.label_num AS y_num,
               s.prediction AS pred_a, c.prediction AS pred_b,
               s.prediction_num AS num_a, c.prediction_num AS num_b,
               s.score AS score_a, c.score AS score_b,
               s.confidence AS conf_a, c.confidence AS conf_b,
               s.probabilities AS probs_a, c.probabilities AS probs_b,
               s.prediction = f.label AS correct_a, c.prediction = f.label AS correct_b
        FROM s LEFT JOIN c ON c.request_id = s.request_id AND c.row_index = s.row_index
        LEFT JOIN latest_feedback AS f
            ON f.request_id = s.request_id AND f.row_index = s.row_index
        """,
        params,
    )
    row = con.execute(
        f"""
        SELECT count(*),
               count(*) FILTER (WHERE pred_a IS DISTINCT FROM pred_b),
               count(*) FILTER (WHERE pred_a IS DISTINCT FROM pred_b AND conf_b > conf_a),
               count(*) FILTER (WHERE pred_a IS DISTINCT FROM pred_b
                                AND conf_a IS NOT NULL AND conf_b IS NOT NULL)
        FROM {pairs} WHERE paired
        """
    ).fetchone()
    assert row is not None
    agreement = ShadowAgreement(*(int(x) for x in row))
    labelled = "paired AND label IS NOT NULL" + (
        ""
        if task == "classification"
        else " AND y_num IS NOT NULL AND num_a IS NOT NULL AND num_b IS NOT NULL"
    )
    rows = con.execute(
        f"""
        SELECT side, bucket, count(*), sum(y), sum(y * y) FROM (
            SELECT 'champion' AS side, bucket, ({y_a})::DOUBLE AS y FROM {pairs} WHERE {labelled}
            UNION ALL
            SELECT 'challenger', bucket, ({y_b})::DOUBLE FROM {pairs} WHERE {labelled}
        ) GROUP BY ALL
        """
    ).fetchall()
    series = _cumulative_series(rows, width, SIDES)
    if task == "classification":
        arrays = con.execute(
            f"""
            SELECT ts_us, correct_a, correct_b, y_num, score_a, score_b
            FROM {pairs} WHERE {labelled} ORDER BY ts_us
            """
        ).fetchnumpy()
        y = _floats(arrays["y_num"])
        score_a, score_b = _floats(arrays["score_a"]), _floats(arrays["score_b"])
        # DeLong needs 0/1 labels and a score from both models on every pair.
        binary = bool(y.size) and bool(np.all(np.isin(y, (0.0, 1.0))))
        scored = binary and bool(np.all(np.isfinite(score_a)) and np.all(np.isfinite(score_b)))
        paired = PairedData(
            ts_us=np.asarray(arrays["ts_us"], dtype=np.int64),
            correct_a=np.ma.filled(np.ma.asarray(arrays["correct_a"], dtype=bool), False),
            correct_b=np.ma.filled(np.ma.asarray(arrays["correct_b"], dtype=bool), False),
            y_binary=y.astype(np.int8) if scored else None,
            score_a=score_a if scored else None,
            score_b=score_b if scored else None,
        )
        rows = con.execute(
            f"""
            SELECT 'champion', label, pred_a, count(*) FROM {pairs} WHERE {labelled} GROUP BY ALL
            UNION ALL
            SELECT 'challenger', label, pred_b, count(*) FROM {pairs} WHERE {labelled} GROUP BY ALL
            """
        ).fetchall()
        confusion = _confusion(rows, max_classes)
    else:
        arrays = con.execute(
            f"SELECT ts_us, y_num, num_a, num_b FROM {pairs} WHERE {labelled} ORDER BY ts_us"
        ).fetchnumpy()
        paired = PairedData(
            ts_us=np.asarray(arrays["ts_us"], dtype=np.int64),
            y_num=_floats(arrays["y_num"]),
            pred_a=_floats(arrays["num_a"]),
            pred_b=_floats(arrays["num_b"]),
        )
        confusion = ()
    return ExperimentAggregates(
        info, task, traffic, _metric_from_series(series, task), series, confusion,
        agreement=agreement, paired=paired,
    )  # fmt: skip


__all__ = [
    "LATENCY_PERCENTILES",
    "MAX_BUCKETS",
    "SIDES",
    "ArmTraffic",
    "ConfusionMatrix",
    "ExperimentAggregates",
    "ExperimentInfo",
    "PairedData",
    "ShadowAgreement",
    "TimeSeries",
    "aggregate_experiment",
    "arm_traffic",
    "bucket_width",
    "detect_task",
    "experiment_info",
    "list_experiments",
]
