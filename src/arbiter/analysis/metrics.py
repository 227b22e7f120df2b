"""The metric engine: business and label metrics per unit, tested per arm (docs/metrics.md).

For an experiment's :class:`~arbiter.events.query.Scope` and the metrics a model defines
(``models.<name>.metrics`` in ``arbiter.yaml``, :mod:`arbiter.metric_definitions`):

1. **Exposure.** Each unit's first ``served`` row in the scope is its first exposure; a unit
   served by more than one arm (e.g. after a split change) is *crossed*: excluded from every
   metric and counted (:attr:`MetricData.crossed_units`).
2. **Per-unit values in SQL** (:mod:`arbiter.analysis.metrics_sql`): an event metric is the
   ``any``/``sum``/``count`` of the unit's outcome events from its first exposure to the end
   of the ``window`` (or of the analysis); 0 for an exposed unit without events. A ratio
   metric sums its two event metrics per unit (delta method); a label metric sums o5's
   per-row numerator and denominator per unit (delta method). With ``decision.cuped`` an
   event metric also gets its pre-exposure value as covariate.
3. **Sufficient statistics** per arm come out of one ``GROUP BY arm``: :class:`MetricData`.
4. **Tests** (:func:`analyze_metrics`) from :mod:`arbiter.stats`: Welch (or the always-valid
   confidence sequence when ``decision.sequential``), the delta-method ratio test, CUPED;
   relative lift by the delta method; Holm across the secondary metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import duckdb
import numpy as np

from arbiter.analysis import label_metrics as _label_metrics
from arbiter.analysis.metrics_sql import (
    ArmSums,
    event_sums,
    event_sums_at,
    label_sums,
    label_sums_at,
)
from arbiter.config import DecisionConfig, ModelConfig
from arbiter.errors import InvalidInputError
from arbiter.events.query import Scope
from arbiter.metric_definitions import EventMetric, LabelMetric, RatioMetric
from arbiter.stats.cuped import cuped_adjusted, cuped_test
from arbiter.stats.means import ratio_test, relative_lift, welch_test
from arbiter.stats.multiple import holm
from arbiter.stats.sequential import SequentialConfig, confidence_sequence
from arbiter.stats.sufficient import (
    RatioStatistic,
    RegressionAdjustmentStatistic,
    SampleMeanStatistic,
)
from arbiter.stats.verdict import Criterion, non_inferiority_criterion

MetricStat = SampleMeanStatistic | RatioStatistic | RegressionAdjustmentStatistic
Role = Literal["primary", "guardrail", "secondary"]
NAN = float("nan")


@dataclass(frozen=True, slots=True)
class MetricData:
    """One metric's per-arm sufficient statistics, per randomisation unit.

    Attributes
    ----------
    stats : dict of str to statistic
        Per arm: :class:`SampleMeanStatistic` (event metric), :class:`RatioStatistic` (ratio
        or label metric: per-unit numerator and denominator sums) or
        :class:`RegressionAdjustmentStatistic` (event metric with ``cuped``: ``y`` after,
        ``x`` before the first exposure).
    units : dict of str to int
        Units per arm (crossed units excluded; label metrics: units with a labelled row).
    crossed_units : int
        Units served by more than one arm: excluded from every metric.
    direction : {"increase", "decrease"}
        Which way is better.
    """

    stats: dict[str, MetricStat]
    units: dict[str, int]
    crossed_units: int
    direction: Literal["increase", "decrease"]


def _definition(model_config: ModelConfig, name: str) -> EventMetric | RatioMetric | LabelMetric:
    metric = model_config.metrics.get(name)
    if metric is None:
        defined = ", ".join(sorted(model_config.metrics)) or "none"
        raise InvalidInputError(
            f"no metric {name!r} defined for this model (defined: {defined})", field="metric"
        )
    return metric


def _direction(metric: EventMetric | RatioMetric | LabelMetric) -> Literal["increase", "decrease"]:
    return metric.better if isinstance(metric, LabelMetric) else metric.direction


def label_row_sql(metric: LabelMetric) -> tuple[str, str, dict[str, Any]]:
    """Per-row numerator and denominator SQL of a label metric over the ``labeled`` view.

    :func:`arbiter.analysis.label_metrics.label_row_sql`: the metric of an arm is
    ``sum(numerator) / sum(denominator)`` over its units, summed per unit here.

    Raises
    ------
    InvalidInputError
        A label metric without a per-row form (``roc_auc``, ``pr_auc``).
    """
    return _label_metrics.label_row_sql(metric)  # type: ignore[no-any-return]


def _mean_stat(sums: dict[str, float], n: int, col: str) -> SampleMeanStatistic:
    return SampleMeanStatistic(n, sums[f"s:{col}"], sums[f"q:{col}"])


def _ratio_stat(sums: dict[str, float], n: int, m: str, d: str) -> RatioStatistic:
    return RatioStatistic(
        n, sums[f"s:{m}"], sums[f"q:{m}"], sums[f"s:{d}"], sums[f"q:{d}"], sums[f"x:{m}:{d}"]
    )


def _ra_stat(sums: dict[str, float], n: int, y: str, x: str) -> RegressionAdjustmentStatistic:
    return RegressionAdjustmentStatistic(
        n, sums[f"s:{y}"], sums[f"q:{y}"], sums[f"s:{x}"], sums[f"q:{x}"], sums[f"x:{y}:{x}"]
    )


def all_metric_statistics(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    model_config: ModelConfig,
    names: Sequence[str] | None = None,
    *,
    arms: Sequence[str] | None = None,
    cuped: bool = False,
) -> dict[str, MetricData]:
    """:func:`metric_statistics` of several metrics, the event metrics in one query.

    Parameters are those of :func:`metric_statistics`; ``names`` defaults to every metric
    the model defines.
    """
    return metric_statistics_at(con, scope, model_config, None, names, arms=arms, cuped=cuped)[0]


def metric_statistics_at(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    model_config: ModelConfig,
    ends: Sequence[datetime | None] | None,
    names: Sequence[str] | None = None,
    *,
    arms: Sequence[str] | None = None,
    cuped: bool = False,
    labelled_rows: str | None = None,
) -> list[dict[str, MetricData]]:
    """:func:`all_metric_statistics` as the analysis stood at each of ``ends``.

    Element ``k`` equals :func:`all_metric_statistics` with ``scope.end = ends[k]``; the
    event and ratio metrics of every look come from one query
    (:func:`arbiter.analysis.metrics_sql.event_sums_at`), each label metric's from one query
    (:func:`~arbiter.analysis.metrics_sql.label_sums_at`). ``ends=None`` is the single look at
    ``scope`` itself; in ``ends`` the last may be ``None`` (no end: everything logged).
    ``labelled_rows``: a temporary table of the scope's labelled served rows that the label
    metrics read instead of joining the labels again
    (:func:`~arbiter.analysis.metrics_sql.label_sums`).
    """
    names = list(model_config.metrics) if names is None else list(names)
    definitions = {name: _definition(model_config, name) for name in names}
    # Every event metric needed (ratio parts included) becomes one column of one query.
    columns: dict[str, EventMetric] = {}
    for name, metric in definitions.items():
        parts = [name] if isinstance(metric, EventMetric) else []
        if isinstance(metric, RatioMetric):
            parts = list(metric.ratio)
        for part in parts:
            if part not in columns:
                columns[part] = _definition(model_config, part)  # type: ignore[assignment]
    col = {part: f"y{i}" for i, part in enumerate(columns)}
    with_pre = [cuped and part in definitions for part in columns]
    products: list[tuple[str, str]] = []
    for name, metric in definitions.items():
        if isinstance(metric, RatioMetric):
            pair = (col[metric.ratio[0]], col[metric.ratio[1]])
            if pair not in products:
                products.append(pair)
        elif isinstance(metric, EventMetric) and cuped:
            products.append((col[name], "x" + col[name][1:]))
    looks: list[ArmSums | None] = [None] * (1 if ends is None else len(ends))
    if columns:
        metrics = list(columns.values())
        if ends is None:
            looks = [event_sums(con, scope, metrics, pre=with_pre, products=products)]
        else:
            looks = list(event_sums_at(con, scope, metrics, ends, pre=with_pre, products=products))
    # Label metrics: one query per metric for every look (not one per look).
    label_looks: dict[str, list[ArmSums]] = {}
    for name, metric in definitions.items():
        if isinstance(metric, LabelMetric):
            num, den, params = label_row_sql(metric)
            only = metric.label_metric != "class_rate"  # the only one defined without labels
            table = labelled_rows if only else None
            label_looks[name] = (
                [label_sums(con, scope, num, den, params, labelled_only=only, labelled_rows=table)]
                if ends is None
                else label_sums_at(
                    con, scope, num, den, params, ends, labelled_only=only, labelled_rows=table
                )
            )
    out: list[dict[str, MetricData]] = []
    for k, sums in enumerate(looks):
        one: dict[str, MetricData] = {}
        for name, metric in definitions.items():
            if isinstance(metric, LabelMetric):
                data = label_looks[name][k]
                stats: dict[str, MetricStat] = {
                    arm: _ratio_stat(data.sums[arm], data.n[arm], "m", "d") for arm in data.n
                }
                units, crossed = data.n, data.crossed
            else:
                assert sums is not None
                units, crossed = sums.n, sums.crossed
                stats = {arm: _unit_stat(metric, sums, arm, col, name, cuped) for arm in sums.n}
            if arms is not None:
                stats = {arm: stats.get(arm) or _empty(metric, cuped) for arm in arms}
                units = {arm: units.get(arm, 0) for arm in arms}
            one[name] = MetricData(stats, dict(units), crossed, _direction(metric))
        out.append(one)
    return out


def _unit_stat(
    metric: EventMetric | RatioMetric,
    sums: ArmSums,
    arm: str,
    col: dict[str, str],
    name: str,
    cuped: bool,
) -> MetricStat:
    values, n = sums.sums[arm], sums.n[arm]
    if isinstance(metric, RatioMetric):
        return _ratio_stat(values, n, col[metric.ratio[0]], col[metric.ratio[1]])
    y = col[name]
    return _ra_stat(values, n, y, "x" + y[1:]) if cuped else _mean_stat(values, n, y)


def _empty(metric: EventMetric | RatioMetric | LabelMetric, cuped: bool) -> MetricStat:
    if not isinstance(metric, EventMetric):
        return RatioStatistic(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    if cuped:
        return RegressionAdjustmentStatistic(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    return SampleMeanStatistic(0, 0.0, 0.0)


def metric_statistics(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    model_config: ModelConfig,
    name: str,
    *,
    arms: Sequence[str] | None = None,
    cuped: bool = False,
) -> MetricData:
    """Per-arm sufficient statistics of one metric, per unit, computed in DuckDB.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        From :meth:`arbiter.events.EventStore.connect` (or
        :func:`arbiter.events.views.connect_tables`).
    scope : Scope
        The experiment: model, experiment name and optional time bounds. ``scope.end`` is
        the analysis end: exposures and outcomes after it are ignored.
    model_config : ModelConfig
        Defines the metric (``metrics``).
    name : str
        The metric.
    arms : sequence of str, optional
        Return exactly these arms (an arm without units gets an empty statistic); default:
        every arm that served a unit.
    cuped : bool, default False
        Event metrics: return :class:`RegressionAdjustmentStatistic` with the unit's
        pre-exposure value of the same metric as ``x`` (over the window before the first
        exposure, or the whole history before it without a window). Ratio and label metrics
        are returned without covariate.

    Returns
    -------
    MetricData

    Raises
    ------
    InvalidInputError
        ``name`` is not a metric of ``model_config``, or a label metric without a per-row
        form (``roc_auc``, ``pr_auc``).
    """
    return all_metric_statistics(con, scope, model_config, [name], arms=arms, cuped=cuped)[name]


# --- tests ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricResult:
    """One metric compared between one challenger arm and the champion.

    ``estimate`` is challenger − champion (per-unit means, or ratios), CUPED-adjusted when
    ``cuped`` is set; ``ci_low``/``ci_high``/``p_value`` are always-valid when ``sequential``.
    ``adjusted_p_value`` is Holm's over the secondary metrics (None for primary and
    guardrail metrics, which are judged by the verdict).
    """

    name: str
    arm: str
    champion: str
    kind: str
    role: Role
    direction: str
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    relative_lift: float
    relative_ci_low: float
    relative_ci_high: float
    arms: dict[str, dict[str, float]]
    method: str
    status: str
    sequential: bool
    crossed_units: int
    cuped: dict[str, float] | None = None
    adjusted_p_value: float | None = None
    guardrail: dict[str, Any] | None = None
    over_time: dict[str, list[float]] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready values (NaN stays NaN; the CLI turns it into null)."""
        return asdict(self)


@dataclass(frozen=True)
class MetricsAnalysis:
    """Every defined metric of one experiment, for every challenger arm.

    Attributes
    ----------
    results : list of MetricResult
        One per metric and challenger, in definition order.
    data : dict of str to MetricData
        The statistics behind them (with CUPED: the regression-adjustment ones).
    champion : str
        The control arm.
    crossed_units : int
        Units served by more than one arm, excluded.
    alpha : float
    sequential : bool
    notes : tuple of str
    """

    results: list[MetricResult]
    data: dict[str, MetricData]
    champion: str
    crossed_units: int
    alpha: float
    sequential: bool
    primary_metric: str | None = None
    notes: tuple[str, ...] = ()

    def result(self, name: str, arm: str = "challenger") -> MetricResult | None:
        """The result of metric ``name`` for challenger ``arm``."""
        return next((r for r in self.results if r.name == name and r.arm == arm), None)

    def decision_statistics(
        self, name: str, arm: str = "challenger"
    ) -> tuple[SampleMeanStatistic | RatioStatistic, SampleMeanStatistic | RatioStatistic]:
        """(champion, challenger) statistics to decide on: CUPED-adjusted when on."""
        return _decision_pair(self.data[name], self.champion, arm)

    def guardrail_criteria(self, arm: str = "challenger") -> tuple[Criterion, ...]:
        """The guardrail metrics' non-inferiority criteria for one challenger."""
        return tuple(
            Criterion(**r.guardrail["criterion"])
            for r in self.results
            if r.arm == arm and r.guardrail is not None
        )

    def to_list(self) -> list[dict[str, Any]]:
        """``metrics`` of ``arbiter analyze --json``: one object per metric and challenger."""
        return [r.to_dict() for r in self.results]


def _decision_pair(
    data: MetricData, champion: str, arm: str
) -> tuple[SampleMeanStatistic | RatioStatistic, SampleMeanStatistic | RatioStatistic]:
    a, b = data.stats[champion], data.stats[arm]
    if isinstance(a, RegressionAdjustmentStatistic) and isinstance(
        b, RegressionAdjustmentStatistic
    ):
        adj_a, adj_b, _ = cuped_adjusted(a, b)
        return adj_a, adj_b
    return a, b  # type: ignore[return-value]


def _mean_of(stat: MetricStat) -> float:
    if stat.n == 0:
        return NAN
    if isinstance(stat, RegressionAdjustmentStatistic):
        return stat.y.mean
    if isinstance(stat, RatioStatistic) and stat.d_sum == 0:
        return NAN
    return stat.mean


def _compare(
    a: MetricStat,
    b: MetricStat,
    *,
    alpha: float,
    sequential: SequentialConfig | None,
) -> dict[str, Any]:
    """Estimate, interval, p-value and relative lift of ``b − a``."""
    cuped_info = None
    if isinstance(a, RegressionAdjustmentStatistic) and isinstance(
        b, RegressionAdjustmentStatistic
    ):
        c = cuped_test(a, b, alpha=alpha)
        adj_a, adj_b, _ = cuped_adjusted(a, b)
        cuped_info = {
            "theta": c.theta,
            "variance_reduction": c.variance_reduction,
            "unadjusted_estimate": c.unadjusted_estimate,
        }
        fixed = welch_test(adj_a, adj_b, alpha=alpha)
        pa, pb = adj_a, adj_b
    elif isinstance(a, RatioStatistic):
        fixed = ratio_test(a, b, alpha=alpha)  # type: ignore[arg-type]
        pa, pb = a, b  # type: ignore[assignment]
    else:
        fixed = welch_test(a, b, alpha=alpha)  # type: ignore[arg-type]
        pa, pb = a, b  # type: ignore[assignment]
    status = "ok" if fixed.status in ("ok", "zero_baseline") else fixed.status
    out = {
        "estimate": fixed.difference,
        "ci_low": fixed.ci_low,
        "ci_high": fixed.ci_high,
        "p_value": fixed.p_value,
        "relative_lift": fixed.relative_lift,
        "relative_ci_low": fixed.relative_ci_low,
        "relative_ci_high": fixed.relative_ci_high,
        "method": fixed.method,
        "status": status,
        "cuped": cuped_info,
        "adjusted_means": (pa.mean, pb.mean),
    }
    if sequential is not None:
        seq = confidence_sequence(pa, pb, alpha=alpha, config=sequential)
        out.update(
            estimate=seq.estimate,
            ci_low=seq.ci_low,
            ci_high=seq.ci_high,
            p_value=seq.p_value,
            method=f"{seq.method} (always-valid)",
            status=seq.status,
        )
        lift = fixed.relative_lift
        if seq.status == "ok" and math.isfinite(lift) and fixed.standard_error > 0:
            # Widen the lift's delta-method interval as the CS widens the difference's.
            _, lift_var = relative_lift(pa.mean, pb.mean, pa.variance / pa.n, pb.variance / pb.n)
            half = (seq.ci_high - seq.ci_low) / 2.0 * math.sqrt(lift_var) / seq.std_error
            out.update(relative_ci_low=lift - half, relative_ci_high=lift + half)
    return out


def analyze_metrics(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    model_config: ModelConfig,
    *,
    decision: DecisionConfig | None = None,
    champion: str = "champion",
    challengers: Sequence[str] | None = None,
    sequential_config: SequentialConfig | None = None,
    over_time: int = 0,
    labelled_rows: str | None = None,
) -> MetricsAnalysis:
    """Test every defined metric of ``model_config`` for every challenger arm.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection with the event views.
    scope : Scope
        The experiment's rows.
    model_config : ModelConfig
        Its ``metrics`` and, unless ``decision`` is given, its ``decision`` section:
        ``alpha``, ``sequential``, ``cuped``, ``primary_metric``, ``guardrail_metrics``.
    decision : DecisionConfig, optional
        Overrides ``model_config.decision``.
    champion : str, default "champion"
        The control arm.
    challengers : sequence of str, optional
        The arms compared to it; default every other arm that served a unit.
    sequential_config : SequentialConfig, optional
        Tuning of the always-valid intervals; default tuned to ``2 * max_sample_per_arm``
        when set, else the core's default.
    over_time : int, default 0
        Number of looks (time buckets) at which to recompute each difference and its band
        for plots (0: none). Each look is the analysis with ``scope.end`` at the bucket's end.
    labelled_rows : str, optional
        A temporary table holding every labelled served row of ``scope`` (failed requests
        included; :func:`~arbiter.analysis.aggregate.aggregate_experiment`'s ``keep_table``
        of an A/B test), which the label metrics read instead of joining the labels again.

    Returns
    -------
    MetricsAnalysis
    """
    dec = decision or model_config.decision
    seq_cfg = None
    if dec.sequential:
        seq_cfg = sequential_config or (
            SequentialConfig(target_sample_size=2.0 * dec.max_sample_per_arm)
            if dec.max_sample_per_arm is not None
            else SequentialConfig()
        )
    notes: list[str] = []
    names, rowless = [], []
    for name, metric in model_config.metrics.items():
        if isinstance(metric, LabelMetric):
            try:
                label_row_sql(metric)
            except InvalidInputError as exc:
                if metric.label_metric in ("roc_auc", "pr_auc"):
                    rowless.append(name)  # no per-row form: o5's unit-cluster bootstrap
                else:
                    notes.append(f"{name}: not analysed ({exc.message})")
                continue
        names.append(name)
    plan = _look_plan(con, scope, over_time) if over_time > 0 else None
    series: list[dict[str, MetricData]] = []
    if plan is None:
        data = metric_statistics_at(
            con, scope, model_config, None, names, cuped=dec.cuped, labelled_rows=labelled_rows
        )[0]
    else:  # the last look is the analysis itself: one query gives both
        series = metric_statistics_at(
            con, scope, model_config, plan[1], names, cuped=dec.cuped, labelled_rows=labelled_rows
        )
        data = series[-1]
    arms_seen = sorted({arm for d in data.values() for arm in d.stats})
    arms = [a for a in (challengers or arms_seen) if a != champion]
    every = [champion, *arms]
    data = {
        name: MetricData(
            {a: d.stats.get(a) or _empty(model_config.metrics[name], dec.cuped) for a in every},
            {a: d.units.get(a, 0) for a in every},
            d.crossed_units,
            d.direction,
        )
        for name, d in data.items()
    }
    rails = {g.metric: g for g in dec.guardrail_metrics}
    results: list[MetricResult] = []
    for name, metric_data in data.items():
        metric = model_config.metrics[name]
        role: Role = (
            "primary"
            if name == dec.primary_metric
            else "guardrail"
            if name in rails
            else "secondary"
        )
        if dec.cuped and not isinstance(metric, EventMetric):
            notes.append(f"{name}: CUPED applies to event metrics; analysed without covariate")
        for arm in arms:
            a, b = metric_data.stats[champion], metric_data.stats[arm]
            test = _compare(a, b, alpha=dec.alpha, sequential=seq_cfg)
            adj_means = test.pop("adjusted_means")
            arm_rows = {
                side: {"units": metric_data.units[side], "mean": _mean_of(metric_data.stats[side])}
                for side in (champion, arm)
            }
            if test["cuped"] is not None:
                arm_rows[champion]["adjusted_mean"] = adj_means[0]
                arm_rows[arm]["adjusted_mean"] = adj_means[1]
            guardrail = None
            if name in rails:
                rail = rails[name]
                harm = "increase" if rail.max_increase is not None else "decrease"
                margin = rail.max_increase if rail.max_increase is not None else rail.max_decrease
                pa, pb = _decision_pair(metric_data, champion, arm)
                crit = non_inferiority_criterion(
                    name, pa, pb, margin=float(margin or 0.0), harm=harm, alpha=dec.alpha,
                    sequential=seq_cfg,
                )  # fmt: skip
                status = "no_data" if crit.observed is None else "met" if crit.met else "breached"
                guardrail = {
                    "harm": harm,
                    "margin": margin,
                    "bound": crit.observed,
                    "status": status,
                    "criterion": crit.to_dict(),
                }
            results.append(
                MetricResult(
                    name=name,
                    arm=arm,
                    champion=champion,
                    kind=metric.kind,
                    role=role,
                    direction=metric_data.direction,
                    arms=arm_rows,
                    sequential=seq_cfg is not None,
                    crossed_units=metric_data.crossed_units,
                    guardrail=guardrail,
                    **test,
                )
            )
    results += _auc_results(con, scope, model_config, rowless, champion, arms, dec, notes)
    results = _adjust_secondary(results, dec.alpha)
    if plan is not None and results:
        over = _series_tests(series, plan[2], model_config, champion, arms, dec, seq_cfg)
        results = [_with_series(r, over.get((r.name, r.arm))) for r in results]
    crossed = max((d.crossed_units for d in data.values()), default=0)
    if crossed:
        notes.append(
            f"{crossed} unit(s) were served by more than one arm (crossed): excluded from every "
            "metric"
        )
    return MetricsAnalysis(
        results, data, champion, crossed, dec.alpha, seq_cfg is not None,
        dec.primary_metric, tuple(notes),
    )  # fmt: skip


def _auc_results(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    model_config: ModelConfig,
    names: list[str],
    champion: str,
    arms: list[str],
    dec: DecisionConfig,
    notes: list[str],
) -> list[MetricResult]:
    """ROC/PR AUC metrics: o5's unit-cluster bootstrap comparison, when that module exists."""
    out: list[MetricResult] = []
    for name in names:
        metric = model_config.metrics[name]
        if metric.label_metric not in ("roc_auc", "pr_auc"):  # pragma: no cover
            notes.append(f"{name}: label metric without a per-row form is not supported here")
            continue
        for arm in arms:
            row = dict(
                _label_metrics.auc_comparison(
                    con, scope, metric, champion, arm, alpha=dec.alpha, name=name
                )
            )
            known = {
                k: NAN if v is None and k in _FLOAT_FIELDS else v
                for k, v in row.items()
                if k in MetricResult.__dataclass_fields__
            }
            defaults: dict[str, Any] = {
                "name": name, "arm": arm, "champion": champion, "kind": "label",
                "role": "secondary", "direction": _direction(metric), "estimate": NAN,
                "ci_low": NAN, "ci_high": NAN, "p_value": NAN, "relative_lift": NAN,
                "relative_ci_low": NAN, "relative_ci_high": NAN, "arms": {},
                "method": "unit-cluster bootstrap", "status": "ok", "sequential": False,
                "crossed_units": 0,
            }  # fmt: skip
            role = "primary" if name == dec.primary_metric else "secondary"
            out.append(
                MetricResult(**{**defaults, **known, "name": name, "arm": arm, "role": role})
            )
    return out


_FLOAT_FIELDS = frozenset(
    {"estimate", "ci_low", "ci_high", "p_value", "relative_lift", "relative_ci_low",
     "relative_ci_high"}
)  # fmt: skip


def _with_series(result: MetricResult, series: dict[str, list[float]] | None) -> MetricResult:
    if series is None:
        return result
    return MetricResult(
        **{**{f: getattr(result, f) for f in result.__dataclass_fields__}, "over_time": series}
    )


def _adjust_secondary(results: list[MetricResult], alpha: float) -> list[MetricResult]:
    """Holm's adjustment over every secondary metric × challenger with a usable p-value."""
    idx = [
        i
        for i, r in enumerate(results)
        if r.role == "secondary"
        and r.status == "ok"
        and isinstance(r.p_value, float)
        and 0.0 <= r.p_value <= 1.0
    ]
    if not idx:
        return results
    adjusted = holm([results[i].p_value for i in idx], alpha=alpha).adjusted_p_values
    out = list(results)
    for i, p in zip(idx, adjusted, strict=True):
        r = out[i]
        out[i] = MetricResult(
            **{**{f: getattr(r, f) for f in r.__dataclass_fields__}, "adjusted_p_value": p}
        )
    return out


def metric_differences_over_time(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    model_config: ModelConfig,
    *,
    champion: str,
    challengers: Sequence[str],
    decision: DecisionConfig,
    sequential_config: SequentialConfig | None,
    looks: int = 12,
) -> dict[tuple[str, str], dict[str, list[float]]]:
    """Each metric's difference and band as the analysis stood at ``looks`` evenly spaced times.

    Look ``k`` is the full per-unit analysis with ``scope.end`` at the end of bucket ``k``
    (units exposed by then, outcomes until then), so the last point is the reported result
    and every band is what a reader would have seen at that time (always-valid when
    sequential). Returns ``{(metric, arm): {"elapsed_s", "estimate", "ci_low", "ci_high"}}``.
    """
    plan = _look_plan(con, scope, looks)
    if plan is None:
        return {}
    series = metric_statistics_at(con, scope, model_config, plan[1], cuped=decision.cuped)
    return _series_tests(
        series, plan[2], model_config, champion, challengers, decision, sequential_config
    )


def _look_plan(
    con: duckdb.DuckDBPyConnection, scope: Scope, looks: int
) -> tuple[datetime, list[datetime | None], list[float]] | None:
    """(first exposure, look ends, elapsed seconds) of ``looks`` evenly spaced looks.

    The last end is ``scope.end`` (``None``: everything logged), so the last look is the
    analysis itself. None when the scope has no served row.
    """
    span = con.execute(
        f"SELECT min(ts), max(ts) FROM served WHERE {scope.where()}", scope.params
    ).fetchone()
    if span is None or not isinstance(span[0], datetime):
        return None
    first, last = span
    end = scope.end if scope.end is not None else last
    if end <= first:
        return None
    step = (end - first) / looks
    ends: list[datetime | None] = [first + step * k for k in range(1, looks)]
    ends.append(scope.end)
    elapsed = [(step * k) / timedelta(seconds=1) for k in range(1, looks + 1)]
    return first, ends, elapsed


def _series_tests(
    series: list[dict[str, MetricData]],
    elapsed: list[float],
    model_config: ModelConfig,
    champion: str,
    challengers: Sequence[str],
    decision: DecisionConfig,
    sequential_config: SequentialConfig | None,
) -> dict[tuple[str, str], dict[str, list[float]]]:
    out: dict[tuple[str, str], dict[str, list[float]]] = {}
    for at, data in zip(elapsed, series, strict=True):
        for name, d in data.items():
            empty = _empty(model_config.metrics[name], decision.cuped)
            for arm in challengers:
                test = _compare(
                    d.stats.get(champion) or empty, d.stats.get(arm) or empty,
                    alpha=decision.alpha, sequential=sequential_config,
                )  # fmt: skip
                row = out.setdefault(
                    (name, arm), {"elapsed_s": [], "estimate": [], "ci_low": [], "ci_high": []}
                )
                ok = test["status"] == "ok"
                row["elapsed_s"].append(at)
                for key in ("estimate", "ci_low", "ci_high"):
                    v = float(test[key])
                    row[key].append(v if ok and np.isfinite(v) else NAN)
    return out


__all__ = [
    "MetricData",
    "MetricResult",
    "MetricsAnalysis",
    "all_metric_statistics",
    "analyze_metrics",
    "label_row_sql",
    "metric_differences_over_time",
    "metric_statistics",
    "metric_statistics_at",
]
