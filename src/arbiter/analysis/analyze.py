"""Analyse one experiment: aggregates from the log, tests from the statistics core, a verdict.

The order mirrors how an analyst works (docs/analysis.md):

1. **SRM** first (A/B only; a shadow challenger sees every request, there is no split).
2. **Primary test** of the metric: A/B compares two independent arms (always-valid
   confidence sequence when ``sequential``, else the pooled z-test / Welch t-test); shadow
   compares two models on the *same* rows, so it is paired (McNemar for accuracy, paired t on
   per-row losses for regression), with DeLong's AUC test and an always-valid paired interval
   as secondary results.
3. **Guardrails**: error rate, p99 latency relative to the champion, shadow discrepancy.
4. **Bayesian summary** (chance to beat the champion, expected loss) to communicate the
   result; it does not decide.
5. **Verdict** from :func:`arbiter.stats.verdict.decide` (or ``decide_shadow_classic`` with
   the ``classic_shadow`` preset), listing every criterion it checked.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np

from arbiter.analysis.aggregate import (
    SIDES,
    ArmTraffic,
    ExperimentAggregates,
    MetricStatistic,
    PairedData,
    aggregate_experiment,
    experiment_info,
    list_experiments,
)
from arbiter.analysis.kinds import Analysis, analysis_for, logged_shape
from arbiter.analysis.label_metrics import (
    label_profile,
    name_regression_loss,
    paired_label_metrics,
    positive_text,
)
from arbiter.analysis.metrics import MetricResult, MetricsAnalysis, analyze_metrics
from arbiter.analysis.periods import (
    policy_without_pooled_srm,
    split_changed,
    srm_with_periods,
    verdict_with_periods,
)
from arbiter.analysis.policy import (
    ERROR_RATE,
    LATENCY_P99,
    SHADOW_DISCREPANCY,
    to_decision_policy,
)
from arbiter.analysis.shadow_detail import ShadowDetail, shadow_detail
from arbiter.config import ABExperimentConfig, DecisionConfig, ModelConfig
from arbiter.errors import InvalidInputError, NotFoundError
from arbiter.events.query import Scope, snapshot_latest_labels
from arbiter.metric_definitions import LabelMetric, MetricGuardrail
from arbiter.stats.bayesian import BayesianResult, bayesian_summary
from arbiter.stats.guardrails import (
    BREACH_ALPHA,
    MIN_LATENCY_REQUESTS,
    GuardrailCheck,
    check_latency,
    check_rate,
)
from arbiter.stats.means import ratio_test, welch_test
from arbiter.stats.multiple import holm
from arbiter.stats.paired import delong_test, mcnemar_test, paired_t_test
from arbiter.stats.proportions import two_proportion_test
from arbiter.stats.results import SRMResult
from arbiter.stats.sequential import (
    always_valid_p_value,
    confidence_sequence,
    cs_halfwidth,
    sequential_rho,
)
from arbiter.stats.srm import srm_test
from arbiter.stats.sufficient import ProportionStatistic, RatioStatistic
from arbiter.stats.verdict import (
    ArmObservations,
    Criterion,
    DecisionPolicy,
    GuardrailObservation,
    Mode,
    ShadowClassicPolicy,
    ShadowObservations,
    Verdict,
    apply_metric_guardrails,
    decide,
    decide_shadow_classic,
)
from arbiter.stats.verdict.multiarm import FEW_UNITS, effective_units

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class ExperimentAnalysis:
    """Everything ``arbiter analyze`` found about one experiment.

    Attributes
    ----------
    model, experiment, strategy : str
        What was analysed; ``strategy`` is ``"ab"`` or ``"shadow"``.
    mode : {"ab", "shadow"}
        Whether the challenger served users (harm means rollback) or not.
    task : {"classification", "regression"}
    metric : str
        ``"accuracy"`` (higher is better), ``"squared_error"`` or ``"absolute_error"`` (lower).
    arms : dict
        Per side (``champion``, ``challenger``): traffic, errors, latency, labelled rows, metric.
    metric_stats : dict of str to ProportionStatistic, SampleMeanStatistic or RatioStatistic
        The primary metric's sufficient statistics per side.
    srm : SRMResult or None
        Chi-square test of the assignment counts against ``policy.traffic_weights``; None for
        shadow experiments.
    srm_basis : str or None
        ``"units"`` (distinct unit ids) or ``"requests"``.
    primary : dict
        The primary test's result (``estimate``/``difference`` = challenger − champion,
        ``ci_low``, ``ci_high``, ``p_value``, ``method``, ``status``).
    secondary : dict of str to dict
        Other tests worth seeing (fixed-horizon test, DeLong, always-valid paired interval).
    guardrails : tuple of dict
        Each guardrail's :class:`~arbiter.stats.guardrails.GuardrailCheck` as a dict: the
        challenger and champion values, the limit, a rate's Wilson interval and breach bound,
        and its ``status``: ``met``, ``breached``, ``inconclusive`` (too little data to tell;
        blocks promotion) or ``no_data``.
    bayesian : BayesianResult or None
        Communication aid; not part of the decision.
    verdict : Verdict
        The decision and every criterion checked.
    policy : DecisionPolicy
        The rules applied.
    effect_over_time : dict
        ``elapsed_s``, ``estimate``, ``ci_low``, ``ci_high`` of the cumulative effect with its
        always-valid interval, for plots.
    aggregates : ExperimentAggregates
        The raw aggregates (time series, confusion matrices) for reports.
    notes : tuple of str
        Caveats found on the way (unknown split, skipped tests, ...).
    metrics : MetricsAnalysis or None
        The model's business and label metrics (``metrics:`` in ``arbiter.yaml``): per unit
        for A/B tests, paired on the same rows for shadow experiments (label metrics only).
    primary_metric : str or None
        The metric the verdict decided on when not the built-in quality metric:
        ``decision.primary_metric``, or the default quality metric of a binary classifier
        with a rare class (``decision.default_quality: auto``, docs/quality-metrics.md).
    """

    model: str
    experiment: str
    strategy: str
    mode: str
    task: str
    metric: str
    higher_is_better: bool
    preset: str
    first_event: datetime
    last_event: datetime
    arms: dict[str, dict[str, Any]]
    metric_stats: dict[str, MetricStatistic | RatioStatistic]
    srm: SRMResult | None
    srm_basis: str | None
    primary: dict[str, Any]
    secondary: dict[str, dict[str, Any]]
    guardrails: tuple[dict[str, Any], ...]
    bayesian: BayesianResult | None
    verdict: Verdict
    policy: DecisionPolicy
    effect_over_time: dict[str, list[float]]
    aggregates: ExperimentAggregates = field(repr=False)
    notes: tuple[str, ...] = ()
    metrics: MetricsAnalysis | None = None
    primary_metric: str | None = None
    shadow: ShadowDetail | None = None
    models: dict[str, list[dict[str, Any]]] | None = None

    @property
    def decision(self) -> str:
        return self.verdict.decision

    @property
    def decided_on(self) -> str:
        """The metric the verdict decided on: ``primary_metric`` or the quality one."""
        return self.primary_metric if self.primary_metric is not None else self.metric

    @property
    def sample_unit(self) -> str:
        """What the sample sizes count: "units" when repeated units are analysed per unit."""
        per_unit = isinstance(self.metric_stats.get("champion"), RatioStatistic)
        return "units" if per_unit else "rows"

    @property
    def criteria(self) -> tuple[Criterion, ...]:
        """The verdict's criteria as displayed.

        Without the SRM check where there is no split (shadow), and with the numbers of a
        guardrail that is still inconclusive instead of the core's "no observation yet".
        """
        rows = {f"guardrail:{g['name']}": g for g in self.guardrails}
        out = []
        for c in self.verdict.reasons:
            if c.name == "srm" and self.srm is None:
                continue
            row = rows.get(c.name)
            if row is not None and row["status"] == "inconclusive":
                c = replace(
                    c,
                    observed=row["challenger"],
                    threshold=row["limit"],
                    detail=f"inconclusive: challenger {row['challenger']:.4g} vs limit "
                    f"{row['limit']:.4g} is not yet clear from the data; blocks promotion",
                )
            out.append(c)
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready values (NaN stays NaN; the CLI turns it into null)."""
        agg = self.aggregates
        return {
            "model": self.model,
            "experiment": self.experiment,
            "strategy": self.strategy,
            "mode": self.mode,
            "task": self.task,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "preset": self.preset,
            "first_event": self.first_event.isoformat(),
            "last_event": self.last_event.isoformat(),
            "decision": self.decision,
            "criteria": [c.to_dict() for c in self.criteria],
            "estimated_remaining_sample": self.verdict.estimated_remaining_sample,
            "sample_unit": self.sample_unit,
            "arms": _plain(self.arms),
            "srm": None if self.srm is None else {**self.srm.to_dict(), "basis": self.srm_basis},
            "primary": _plain(self.primary),
            "secondary": _plain(self.secondary),
            "guardrails": _plain(self.guardrails),
            "bayesian": None if self.bayesian is None else self.bayesian.to_dict(),
            "verdict": self.verdict.to_dict(),
            "policy": _policy_dict(self.policy),
            "effect_over_time": self.effect_over_time,
            "timeseries": agg.timeseries.to_dict(),
            "confusion": [c.to_dict() for c in agg.confusion],
            "notes": list(self.notes),
            "decided_on": self.decided_on,
            "metrics": [] if self.metrics is None else self.metrics.to_list(),
            "crossed_units": None if self.metrics is None else self.metrics.crossed_units,
            "shadow_detail": None if self.shadow is None else self.shadow.to_dict(),
            "models": self.models,
        }


def _policy_dict(policy: DecisionPolicy) -> dict[str, Any]:
    out = {
        name: getattr(policy, name)
        for name in (
            "metric_kind", "higher_is_better", "alpha", "min_sample_per_arm",
            "max_sample_per_arm", "min_detectable_effect", "power", "traffic_weights",
            "srm_threshold", "mode",
        )
    }  # fmt: skip
    out["sequential"] = policy.uses_sequential
    out["guardrails"] = [
        {
            "name": g.name,
            "threshold": g.threshold,
            "comparison": g.comparison,
            "relative_to_champion": g.relative_to_champion,
        }
        for g in policy.guardrails
    ]
    return _plain(out)


# --- the analysis ----------------------------------------------------------------------------


def analyze_experiment(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    policy: DecisionConfig | None = None,
    *,
    model_config: ModelConfig | None = None,
) -> ExperimentAnalysis | Analysis:
    """Analyse one experiment of ``model`` with the analysis its strategy's spec declares.

    Shadow and two-arm A/B experiments get :func:`compare_arms`; A/B/n, interleaving and
    bandit experiments their own analyses, which return other
    :class:`~arbiter.analysis.kinds.Analysis` objects (see :mod:`arbiter.strategies`).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        From :meth:`arbiter.events.EventStore.connect`.
    model, experiment : str
        The model (endpoint) and experiment name as logged.
    policy : DecisionConfig, optional
        The decision rules. Default: ``model_config.decision``, else the defaults.
    model_config : ModelConfig, optional
        The model's home configuration. When its experiment is the one analysed and is an
        A/B test, its ``challenger_share`` is the split the SRM check expects; otherwise an
        equal split is assumed (and noted).

    Returns
    -------
    ExperimentAnalysis or Analysis

    Raises
    ------
    NotFoundError
        No such model or experiment in the log.
    InvalidInputError
        The experiment's strategy has nothing to analyse (``none``; a canary decides at its
        checkpoints).
    """
    # Every analysis reads the labels in several queries: deduplicate them once (DuckDB).
    snapshot_latest_labels(con)
    strategy, _ = logged_shape(con, model, experiment)
    if strategy is None:  # only forced requests, or no such experiment (NotFoundError)
        strategy = experiment_info(con, model, experiment).strategy
    analysis = analysis_for(strategy)
    if analysis is None:
        raise InvalidInputError(
            f"experiment {experiment!r} of model {model!r} has strategy {strategy!r}: "
            "there is no challenger to compare; run a shadow or ab experiment",
            field="experiment",
        )
    return analysis(con, model, experiment, model_config=model_config, policy=policy)


def analyze_shadow(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    *,
    model_config: ModelConfig | None = None,
    policy: DecisionConfig | None = None,
) -> ExperimentAnalysis:
    """The shadow strategy's analysis: both models on the same rows (paired tests)."""
    return compare_arms(con, model, experiment, "shadow", policy, model_config=model_config)


def compare_arms(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    mode: Mode,
    policy: DecisionConfig | None = None,
    *,
    model_config: ModelConfig | None = None,
) -> ExperimentAnalysis:
    """Compare champion and challenger and decide: paired (``shadow``) or split (``ab``).

    Parameters are those of :func:`analyze_experiment`; ``mode`` says how the challenger saw
    traffic.
    """
    # The aggregates' temporary table (shadow: the successful served rows with their shadow
    # rows and labels, from the pair and label joins, the costliest step; A/B: the labelled
    # rows, from the label join) is kept for the queries that would otherwise join them all
    # again (shadow: description, paired label metrics and label profile; A/B: the label
    # profile and the label metrics at every look); dropped here whatever happens.
    kept = f"_arbiter_kept_{uuid.uuid4().hex[:12]}"
    try:
        return _compare_arms(con, model, experiment, mode, policy, model_config, kept)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {kept}")


def _compare_arms(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    mode: Mode,
    policy: DecisionConfig | None,
    model_config: ModelConfig | None,
    kept_table: str,
) -> ExperimentAnalysis:
    """:func:`compare_arms` with the name of the aggregates' table to keep."""
    decision = policy or (model_config.decision if model_config else DecisionConfig())
    notes: list[str] = []
    crossed = mode == "ab" and split_changed(con, model, experiment)  # periods.py
    agg = aggregate_experiment(
        con, model, experiment, loss=decision.loss, exclude_crossed=crossed, keep_table=kept_table
    )
    pairs = kept_table if agg.info.strategy == "shadow" else None
    # What the label profile reads: A/B, the labelled rows, all of them unless crossed units
    # were left out (the label metrics read them too); shadow, every successful served row
    # (the pairs among them).
    labelled = kept_table if not crossed else None
    ab_labelled = labelled if agg.info.strategy != "shadow" else None
    detail = (
        shadow_detail(con, model, experiment, agg.task, pairs=pairs) if mode == "shadow" else None
    )
    info = agg.info
    weights = _traffic_weights(model, experiment, mode, model_config, notes)
    pol = to_decision_policy(decision, mode=mode, task=agg.task, traffic_weights=weights)
    if agg.other_arms:
        notes.append(f"arms other than champion/challenger ignored: {', '.join(agg.other_arms)}")
    traffic = {side: agg.traffic.get(side) or _empty_traffic(side) for side in SIDES}
    champ, chall = agg.metric["champion"], agg.metric["challenger"]
    metric = "accuracy" if agg.task == "classification" else f"{decision.loss}_error"

    srm, srm_basis, counts = None, None, None
    if mode == "ab":
        # Assignment is per unit (sticky hash); a request without a unit id is its own unit.
        with_ids = any(traffic[s].random_requests < traffic[s].requests for s in SIDES)
        srm_basis = "units" if with_ids else "requests"
        counts = (traffic["champion"].units, traffic["challenger"].units)
        srm = srm_test(counts, pol.traffic_weights, threshold=pol.srm_threshold)
        srm = srm_with_periods(con, model, experiment, srm, SIDES, pol.srm_threshold, notes)

    secondary: dict[str, dict[str, Any]] = {}
    if mode == "shadow":
        assert agg.paired is not None
        primary, secondary = _paired_tests(agg.paired, agg.task, decision, pol, notes)
    else:
        champ, chall = _per_unit_if_repeated(agg, champ, chall, notes)
        primary, secondary = _independent_tests(champ, chall, pol)

    guard_obs, guard_checks = _guardrail_observations(agg, traffic, pol)
    guard_rows = tuple(c.to_dict() for c in guard_checks)
    bayes = bayesian_summary(champ, chall, higher_is_better=pol.higher_is_better)
    if mode == "shadow":
        notes.append(
            "Bayesian summary treats the two models as independent samples; the paired test "
            "is the sharper comparison"
        )

    preset = decision.preset
    if preset == "classic_shadow" and (mode != "shadow" or agg.task != "classification"):
        notes.append("preset classic_shadow applies to shadow classifiers; default rules used")
        preset = "default"
    if preset == "classic_shadow":
        assert agg.agreement is not None
        verdict = decide_shadow_classic(
            ShadowObservations(
                champion_accuracy=champ,  # type: ignore[arg-type]
                challenger_accuracy=chall,  # type: ignore[arg-type]
                discrepancy=agg.agreement.discrepancy,
                challenger_more_confident=agg.agreement.more_confident,
            ),
            ShadowClassicPolicy(
                max_discrepancy=decision.guardrails.max_shadow_discrepancy or 0.30,
                min_labelled=decision.min_sample_per_arm,
            ),
        )
    else:
        verdict = decide(
            ArmObservations(
                champion=champ,
                challenger=chall,
                guardrails=guard_obs,
                primary_result=primary if mode == "shadow" else None,
                # Shadow: both models score every pair, so there is no split to check.
                assignment_counts=counts or (champ.n, champ.n),
            ),
            policy_without_pooled_srm(srm, pol),
        )
    verdict = verdict_with_periods(verdict, srm, pol)  # SRM per split period (periods.py)
    if agg.task == "regression":
        verdict = name_regression_loss(verdict, decision.loss, mode)

    scope = Scope(model, experiment)
    metric_config, decision = model_config, decision
    if preset != "classic_shadow":
        metric_config, decision = _default_quality(
            con, scope, agg.task, decision, model_config, notes, labelled
        )
    metrics, decided = None, None
    labels = {} if metric_config is None else _label_metrics_of(metric_config)
    if mode == "ab" and metric_config is not None and metric_config.metrics:
        metrics = analyze_metrics(
            con, scope, metric_config, decision=decision,
            sequential_config=pol.sequential_config, over_time=OVER_TIME_LOOKS,
            labelled_rows=ab_labelled,
        )  # fmt: skip
        notes.extend(metrics.notes)
        verdict = _metric_verdict(verdict, metrics, decision, pol, guard_obs, counts, notes, srm)
        if decision.primary_metric in metrics.data:
            decided = decision.primary_metric
    elif mode == "shadow" and labels:
        metrics = _paired_metrics(con, scope, labels, decision, pairs)
        if decision.primary_metric in labels and preset != "classic_shadow":
            decided = decision.primary_metric
            verdict = _paired_metric_verdict(
                metrics, decided, labels[decided], pol, champ, chall, guard_obs, notes
            )
        if preset != "classic_shadow":
            verdict = apply_metric_guardrails(verdict, metrics.guardrail_criteria(), serving=False)
    if decided is None and decision.primary_metric is not None and mode != "ab":
        notes.append(
            f"primary_metric {decision.primary_metric!r} cannot decide a {mode} experiment "
            "(shadow: label metrics only; classic_shadow: accuracy only): decided on model "
            "quality"
        )

    arms = {
        side: {
            **traffic[side].to_dict(),
            "labelled": agg.metric[side].n,
            "labelled_units": agg.per_unit[side].n if side in agg.per_unit else None,
            metric: agg.metric[side].mean if agg.metric[side].n else math.nan,
        }
        for side in SIDES
    }
    return ExperimentAnalysis(
        model=model,
        experiment=experiment,
        strategy=info.strategy,
        mode=mode,
        task=agg.task,
        metric=metric,
        higher_is_better=pol.higher_is_better,
        preset=preset,
        first_event=info.first_ts,
        last_event=info.last_ts,
        arms=arms,
        metric_stats={"champion": champ, "challenger": chall},
        srm=srm,
        srm_basis=srm_basis,
        primary=primary,
        secondary=secondary,
        guardrails=guard_rows,
        bayesian=bayes,
        verdict=verdict,
        policy=pol,
        effect_over_time=_effect_over_time(agg, pol, decision),
        aggregates=agg,
        notes=tuple(notes),
        metrics=metrics,
        primary_metric=decided,
        shadow=detail,
    )


#: Looks at which each metric's difference is recomputed for the report's plot.
OVER_TIME_LOOKS = 12


def _metric_verdict(
    verdict: Verdict,
    metrics: MetricsAnalysis,
    decision: DecisionConfig,
    pol: DecisionPolicy,
    guard_obs: tuple[GuardrailObservation, ...],
    counts: tuple[int, int] | None,
    notes: list[str],
    srm: SRMResult | None = None,
) -> Verdict:
    """The A/B verdict on ``decision.primary_metric`` (when set) and the guardrail metrics.

    The same rules as for model quality (:func:`arbiter.stats.verdict.decide`: guardrails,
    SRM, minimum sample in units, sequential or fixed-horizon primary test, futility, planned
    horizon), fed with the primary metric's per-unit statistics (CUPED-adjusted when on) and
    its direction; then each guardrail metric's non-inferiority criterion may veto it
    (:func:`arbiter.stats.verdict.apply_metric_guardrails`).
    """
    primary = decision.primary_metric
    if primary is not None and primary not in metrics.data:
        notes.append(f"primary metric {primary!r} has no per-unit statistics: verdict on quality")
    elif primary is not None:
        champ, chall = metrics.decision_statistics(primary)
        mpol = replace(
            policy_without_pooled_srm(srm, pol),
            metric_kind="mean",
            higher_is_better=metrics.data[primary].direction == "increase",
        )
        verdict = decide(
            ArmObservations(
                champion=champ,
                challenger=chall,
                guardrails=guard_obs,
                assignment_counts=counts,
            ),
            mpol,
        )
        # After a split change, SRM per period as for the quality verdict (periods.py).
        verdict = verdict_with_periods(verdict, srm, pol)
        notes.append(
            f"verdict on primary metric {primary!r} (per unit); the model-quality test is "
            "reported, not decisive"
        )
    return apply_metric_guardrails(verdict, metrics.guardrail_criteria(), serving=pol.serving)


def _label_metrics_of(config: ModelConfig) -> dict[str, LabelMetric]:
    return {n: m for n, m in config.metrics.items() if isinstance(m, LabelMetric)}


def _default_quality(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    task: str,
    decision: DecisionConfig,
    model_config: ModelConfig | None,
    notes: list[str],
    labelled: str | None = None,
) -> tuple[ModelConfig | None, DecisionConfig]:
    """The metrics and decision rules after applying ``decision.default_quality``.

    Without ``primary_metric``, with ``default_quality: auto``, a binary classifier whose
    rarer class is below :data:`~arbiter.analysis.label_metrics.RARE_POSITIVE_RATE` of the
    labels is judged on :meth:`~arbiter.analysis.label_metrics.LabelProfile.default_metric`
    (log loss when scored, else F1): accuracy mostly measures the majority class there. The
    metric is added to the model's metrics (reusing an identical definition) and becomes the
    primary metric; accuracy stays reported as the quality test. Otherwise both are returned
    unchanged. ``labelled``: the aggregates' kept table, if any
    (:func:`~arbiter.analysis.label_metrics.label_profile`'s ``table``).
    """
    if (
        decision.primary_metric is not None
        or decision.default_quality != "auto"
        or task != "classification"
    ):
        return model_config, decision
    profile = label_profile(con, scope, table=labelled)
    metric = profile.default_metric(task)
    if metric is None or profile.positive_rate is None:
        return model_config, decision
    base = model_config or ModelConfig()
    name = next((n for n, m in base.metrics.items() if _same_label_metric(m, metric)), None)
    if name is None:
        name = metric.label_metric
        while name in base.metrics:
            name = f"default_{name}"
        base = base.model_copy(update={"metrics": {**base.metrics, name: metric}})
    notes.append(
        f"decided on {name!r} ({metric.label_metric}), the default quality metric: the rarer "
        f"class {profile.positive!r} is {profile.positive_rate:.1%} of the labels, where "
        "accuracy mostly measures the majority class; accuracy is still reported (set "
        "decision.primary_metric, or default_quality: accuracy, to choose)"
    )
    return base, decision.model_copy(update={"primary_metric": name})


def _same_label_metric(defined: object, metric: LabelMetric) -> bool:
    # ``log_loss: {label_metric: log_loss}`` (positive unset: class "1") is the default one.
    return (
        isinstance(defined, LabelMetric)
        and defined.label_metric == metric.label_metric
        and positive_text(defined) == positive_text(metric)
    )


def _paired_metrics(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    labels: dict[str, LabelMetric],
    decision: DecisionConfig,
    pairs: str | None = None,
) -> MetricsAnalysis:
    """A shadow experiment's label metrics, both models on the same rows (paired tests).

    :func:`arbiter.analysis.label_metrics.paired_label_metrics` in the shape of the A/B
    metrics (:class:`~arbiter.analysis.metrics.MetricResult`, arms ``champion`` and
    ``challenger``), with Holm's adjustment across the secondary ones. The paired tests are
    fixed-horizon, like McNemar's.
    """
    rails = {g.metric: g for g in decision.guardrail_metrics if g.metric in labels}
    # One-sided bounds at alpha: the two-sided intervals at 2 alpha.
    bounds = {
        row["name"]: row
        for row in paired_label_metrics(
            con, scope, {n: labels[n] for n in rails}, alpha=min(2.0 * decision.alpha, 0.99),
            pairs_table=pairs,
        )
    } if rails else {}  # fmt: skip
    nan = math.nan
    results: list[MetricResult] = []
    for row in paired_label_metrics(con, scope, labels, alpha=decision.alpha, pairs_table=pairs):
        name = row["name"]
        role = (
            "primary"
            if name == decision.primary_metric
            else "guardrail"
            if name in rails
            else "secondary"
        )
        results.append(
            MetricResult(
                name=name,
                arm="challenger",
                champion="champion",
                kind="label",
                role=role,
                direction=row["direction"],
                **{k: nan if row[k] is None else float(row[k]) for k in _RESULT_NUMBERS},
                relative_ci_low=nan,
                relative_ci_high=nan,
                arms={side: dict(v) for side, v in row["arms"].items()},
                method=_paired_method(row["method"]),
                status=row["status"],
                sequential=False,
                crossed_units=0,
                guardrail=_paired_guardrail(name, rails[name], bounds[name])
                if name in rails
                else None,
            )
        )
    ok = [
        i
        for i, r in enumerate(results)
        if r.role == "secondary" and r.status == "ok" and 0.0 <= r.p_value <= 1.0
    ]
    if ok:
        adjusted = holm([results[i].p_value for i in ok], alpha=decision.alpha).adjusted_p_values
        for i, p in zip(ok, adjusted, strict=True):
            results[i] = replace(results[i], adjusted_p_value=float(p))
    return MetricsAnalysis(
        results, {}, "champion", 0, decision.alpha, False, decision.primary_metric
    )  # fmt: skip


def _paired_guardrail(name: str, rail: MetricGuardrail, row: dict[str, Any]) -> dict[str, Any]:
    """A label guardrail metric of a shadow experiment: a paired non-inferiority criterion.

    As :func:`arbiter.stats.verdict.non_inferiority_criterion`, with the one-sided bound of
    the paired test (the two-sided interval at ``2 alpha``): breached when the bound of
    challenger − champion is beyond the margin in the harmful direction.
    """
    harm = "increase" if rail.max_increase is not None else "decrease"
    margin = float((rail.max_increase if harm == "increase" else rail.max_decrease) or 0.0)
    limit = margin if harm == "increase" else -margin
    criterion = f"guardrail_metric:{name}"
    bound = row["ci_low"] if harm == "increase" else row["ci_high"]
    if row["status"] != "ok" or bound is None or not math.isfinite(bound):
        crit = Criterion(criterion, False, None, limit, "no observation yet (too little data)")
        status = "no_data"
    else:
        breached = bound > limit if harm == "increase" else bound < limit
        side = "lower" if harm == "increase" else "upper"
        crit = Criterion(
            criterion, not breached, float(bound), limit,
            f"one-sided paired bound: difference {row['estimate']:.4g}, {side} bound "
            f"{bound:.4g} vs allowed {harm} {margin:.4g}: "
            + ("harm beyond the margin" if breached else "no significant harm beyond the margin"),
        )  # fmt: skip
        status = "breached" if breached else "met"
    return {
        "harm": harm, "margin": margin, "bound": crit.observed, "status": status,
        "criterion": crit.to_dict(),
    }  # fmt: skip


def _paired_method(method: str) -> str:
    return method if method.startswith("paired") else f"paired {method}"


_RESULT_NUMBERS = ("estimate", "ci_low", "ci_high", "p_value", "relative_lift")


def _paired_metric_verdict(
    metrics: MetricsAnalysis,
    name: str,
    metric: LabelMetric,
    pol: DecisionPolicy,
    champ: MetricStatistic,
    chall: MetricStatistic,
    guard_obs: tuple[GuardrailObservation, ...],
    notes: list[str],
) -> Verdict:
    """The shadow verdict on a label metric: its paired test is the primary test.

    The same rules as the built-in quality test (guardrails, minimum labelled pairs, the
    paired test at level ``alpha``, ``max_sample_per_arm``), in the metric's direction.
    """
    res = metrics.result(name)
    assert res is not None
    usable = res.status == "ok" and 0.0 <= res.p_value <= 1.0 and math.isfinite(res.estimate)
    primary = {
        "estimate": res.estimate if usable else 0.0,
        "ci_low": res.ci_low if usable else -math.inf,
        "ci_high": res.ci_high if usable else math.inf,
        "p_value": res.p_value if usable else 1.0,
        "method": res.method,
        "status": "ok" if usable else res.status if res.status != "ok" else "insufficient_data",
    }
    notes.append(
        f"verdict on primary metric {name!r} (paired on the same rows); the built-in quality "
        "test is reported, not decisive"
    )
    return decide(
        ArmObservations(
            champion=champ,
            challenger=chall,
            guardrails=guard_obs,
            primary_result=primary,
            assignment_counts=(champ.n, champ.n),
        ),
        replace(pol, higher_is_better=metric.better == "increase"),
    )


def analyze_model(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str | None = None,
    *,
    model_config: ModelConfig | None = None,
) -> list[ExperimentAnalysis | Analysis]:
    """Analyse one experiment, or every experiment with a challenger ``model`` has logged.

    Raises
    ------
    NotFoundError
        The model logged nothing, has no such experiment, or only ran without a challenger.
    """
    if experiment is not None:
        return [analyze_experiment(con, model, experiment, model_config=model_config)]
    names = list_experiments(con, model)
    if not names:
        raise NotFoundError(f"no events logged for model {model!r}")
    scope = Scope(model)
    strategies = dict(
        con.execute(
            f"SELECT experiment, any_value(strategy) FROM unforced WHERE {scope.where()} "
            "GROUP BY experiment",
            scope.params,
        ).fetchall()
    )
    # Those whose strategy's spec declares an analysis (arbiter.strategies).
    runnable = [n for n in names if analysis_for(strategies.get(n)) is not None]
    if not runnable:
        raise NotFoundError(
            f"model {model!r} has no experiment with a challenger to analyse "
            f"(logged: {', '.join(names)})"
        )
    return [analyze_experiment(con, model, n, model_config=model_config) for n in runnable]


# --- helpers ---------------------------------------------------------------------------------


def _empty_traffic(side: str) -> ArmTraffic:
    return ArmTraffic(side, (), (), 0, 0, 0, 0, ())


def _traffic_weights(
    model: str, experiment: str, mode: Mode, config: ModelConfig | None, notes: list[str]
) -> tuple[float, float]:
    if mode != "ab":
        return (0.5, 0.5)
    exp = None if config is None else config.experiment
    if (
        isinstance(exp, ABExperimentConfig)
        and config
        and config.experiment_name(model) == experiment
    ):
        share = exp.challenger_share
        if 0.0 < share < 1.0:
            return (1.0 - share, share)
        notes.append(f"configured challenger_share {share} leaves an arm empty; SRM assumes 50/50")
        return (0.5, 0.5)
    # The home config describes the current experiment only; an older one's split is unknown.
    current = None if config is None or config.experiment is None else config.experiment_name(model)
    notes.append(
        f"SRM assumes a 50/50 split for {experiment!r}: arbiter.yaml now configures "
        f"{current!r}, and the split {experiment!r} ran with was not recorded"
        if current
        else f"SRM assumes a 50/50 split for {experiment!r}: arbiter.yaml configures no "
        "experiment for this model"
    )
    return (0.5, 0.5)


def _result_dict(result: Any, name: str) -> dict[str, Any]:
    out = {"name": name, **result.to_dict()}
    if "estimate" not in out and "difference" in out:
        out["estimate"] = out["difference"]
    return out


def _per_unit_if_repeated(
    agg: ExperimentAggregates,
    champ: MetricStatistic,
    chall: MetricStatistic,
    notes: list[str],
) -> tuple[MetricStatistic | RatioStatistic, MetricStatistic | RatioStatistic]:
    """The arms' statistics per randomisation unit when a unit has several labelled rows.

    Assignment is sticky per unit (user), so a returning user's rows share an arm and are
    correlated; a row-level test would treat them as independent and understate the
    variance (false promotions). With repeats, every test, the minimum sample and the
    remaining-sample estimate count units and use the delta-method variance of the ratio
    "metric summed per unit / labelled rows per unit" (the row-level mean, with a
    cluster-robust variance). With one row per unit the two are the same test, so the
    row-level statistics are kept.
    """
    if not any(agg.units_repeat(side) for side in SIDES):
        return champ, chall
    a, b = agg.per_unit["champion"], agg.per_unit["challenger"]
    notes.append(
        f"labelled rows repeat units ({champ.n:,} rows from {a.n:,} units on the champion, "
        f"{chall.n:,} from {b.n:,} on the challenger): tests, minimum sample and remaining "
        "sample count units, with the delta-method variance (rows of one unit are correlated)"
    )
    # Small-cluster honesty: the delta-method z test is asymptotic in the number of units,
    # and skewed activity leaves fewer effective units than distinct ones.
    eff = {"champion": effective_units(a), "challenger": effective_units(b)}
    few = [side for side, e in eff.items() if e < FEW_UNITS]
    if few:
        notes.append(
            f"warning: few effective units (< {FEW_UNITS:g}) in {', '.join(few)} "
            f"(champion {eff['champion']:,.1f}, challenger {eff['challenger']:,.1f}): a few "
            "heavy users carry most rows, so the per-unit test's normal approximation rests on "
            "them; treat borderline results with caution"
        )
    return a, b


def _independent_tests(
    champ: MetricStatistic | RatioStatistic,
    chall: MetricStatistic | RatioStatistic,
    pol: DecisionPolicy,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    if isinstance(champ, ProportionStatistic):
        fixed = _result_dict(
            two_proportion_test(champ, chall, alpha=pol.alpha),  # type: ignore[arg-type]
            "two_proportion_z",
        )
    elif isinstance(champ, RatioStatistic):
        fixed = _result_dict(
            ratio_test(champ, chall, alpha=pol.alpha),  # type: ignore[arg-type]
            "delta_method_z",
        )
    else:
        fixed = _result_dict(
            welch_test(champ, chall, alpha=pol.alpha),  # type: ignore[arg-type]
            "welch_t",
        )
    if not pol.uses_sequential:
        return fixed, {}
    seq = confidence_sequence(champ, chall, alpha=pol.alpha, config=pol.sequential_config)
    return _result_dict(seq, "confidence_sequence"), {"fixed_horizon": fixed}


def _paired_tests(
    data: PairedData,
    task: str,
    decision: DecisionConfig,
    pol: DecisionPolicy,
    notes: list[str],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    secondary: dict[str, dict[str, Any]] = {}
    if task == "classification":
        assert data.correct_a is not None and data.correct_b is not None
        # McNemar only looks at which model was right on each row; correctness was computed
        # in SQL (canonical text equality), so compare it against an all-true "truth".
        truth = np.ones(data.n, dtype=bool)
        primary = _result_dict(
            mcnemar_test(truth, data.correct_a, data.correct_b, alpha=pol.alpha), "mcnemar"
        )
        diff = data.correct_b.astype(float) - data.correct_a.astype(float)
        if data.score_a is not None and data.score_b is not None and data.y_binary is not None:
            secondary["delong_auc"] = _result_dict(
                delong_test(data.y_binary, data.score_a, data.score_b, alpha=pol.alpha),
                "delong_auc",
            )
        else:
            notes.append("DeLong AUC test skipped: needs 0/1 labels and scores from both models")
    else:
        assert data.y_num is not None and data.pred_a is not None and data.pred_b is not None
        primary = _result_dict(
            paired_t_test(
                data.y_num, data.pred_a, data.pred_b, loss=decision.loss, alpha=pol.alpha
            ),
            "paired_t",
        )
        loss = np.square if decision.loss == "squared" else np.abs
        diff = loss(data.pred_b - data.y_num) - loss(data.pred_a - data.y_num)
    if pol.uses_sequential:
        secondary["paired_sequential"] = _paired_sequential(diff, pol)
        notes.append(
            "the paired primary test is fixed-horizon: judge it once min_sample_per_arm is "
            "reached; paired_sequential is the interval that stays valid under peeking"
        )
    return primary, secondary


def _paired_rho(pol: DecisionPolicy) -> float:
    # One stream of per-pair differences: its planned length is the per-arm sample size,
    # half of the core's two-arm target.
    assert pol.sequential_config is not None
    return sequential_rho(pol.alpha, pol.sequential_config.target_sample_size / 2.0)


def _paired_sequential(diff: np.ndarray, pol: DecisionPolicy) -> dict[str, Any]:
    """Always-valid CS for the mean of one i.i.d. stream of paired differences, eq. (9)."""
    n = int(diff.size)
    method = "asymptotic confidence sequence on paired differences"
    out: dict[str, Any] = {"name": "paired_sequential", "method": method, "n": n}
    if n < 2 or not float(np.var(diff, ddof=1)) > 0.0:
        mean = float(diff.mean()) if n else math.nan
        status = "insufficient_data" if n < 2 else "zero_variance"
        return {**out, "estimate": mean, "ci_low": -math.inf, "ci_high": math.inf,
                "p_value": 1.0, "status": status}  # fmt: skip
    rho = _paired_rho(pol)
    mean = float(diff.mean())
    se = float(np.std(diff, ddof=1)) / math.sqrt(n)
    half = float(cs_halfwidth(se, n, rho, pol.alpha))
    p = float(always_valid_p_value(mean / se, n, rho))
    return {**out, "estimate": mean, "ci_low": mean - half, "ci_high": mean + half,
            "p_value": p, "status": "ok"}  # fmt: skip


def _guardrail_observations(
    agg: ExperimentAggregates,
    traffic: dict[str, ArmTraffic],
    pol: DecisionPolicy,
    *,
    breach_alpha: float = BREACH_ALPHA,
) -> tuple[tuple[GuardrailObservation, ...], tuple[GuardrailCheck, ...]]:
    """Observations for :func:`decide` and the check of every guardrail.

    A guardrail breach rolls a serving challenger back at once, so a noisy point estimate must
    not trigger it, nor pass it: each is judged by :mod:`arbiter.stats.guardrails` (a rate is
    breached only past the peeking-safe exact bound at ``breach_alpha`` and significantly above
    the champion, met when its Wilson interval at ``alpha`` clears the limit; the p99 latency
    once each side has :data:`MIN_LATENCY_REQUESTS` successful requests). Until it is
    conclusive a guardrail has "no observation", which blocks promotion (the verdict is
    ``continue``) without rolling back.
    """
    champ, chall = traffic["champion"], traffic["challenger"]
    checks: list[GuardrailCheck] = []
    for rail in pol.guardrails:
        name = rail.name
        if name == ERROR_RATE:
            check = check_rate(
                name, chall.errors, chall.requests, rail.threshold,
                champion_events=champ.errors, champion_n=champ.requests,
                alpha=pol.alpha, breach_alpha=breach_alpha,
            )  # fmt: skip
        elif name == SHADOW_DISCREPANCY:
            k, n = (agg.agreement.disagreements, agg.agreement.pairs) if agg.agreement else (0, 0)
            check = check_rate(
                name, k, n, rail.threshold, alpha=pol.alpha, breach_alpha=breach_alpha
            )
        elif name == LATENCY_P99:
            check = check_latency(
                name,
                chall.latency_ms(0.99),
                champ.latency_ms(0.99),
                rail.threshold,
                challenger_ok=chall.requests - chall.errors,
                champion_ok=champ.requests - champ.errors,
            )
        else:
            check = GuardrailCheck(name, "no_data")
        checks.append(check)
    observations = tuple(c.observation for c in checks if c.observation is not None)
    return observations, tuple(checks)


def _effect_over_time(
    agg: ExperimentAggregates, pol: DecisionPolicy, decision: DecisionConfig
) -> dict[str, list[float]]:
    """Cumulative effect (challenger − champion) per time bucket with its always-valid CI.

    When units repeat, the band is the row-level band widened by the final design effect
    (an approximation; the verdict's test is exact per unit).
    """
    ts = agg.timeseries
    if agg.paired is not None:
        data = agg.paired
        if data.correct_a is not None and data.correct_b is not None:
            d = data.correct_b.astype(float) - data.correct_a.astype(float)
        else:
            assert data.y_num is not None and data.pred_a is not None and data.pred_b is not None
            loss = np.square if decision.loss == "squared" else np.abs
            d = loss(data.pred_b - data.y_num) - loss(data.pred_a - data.y_num)
        t0 = (agg.info.first_ts - _EPOCH) // timedelta(microseconds=1)
        bucket = (data.ts_us - t0) // (ts.bucket_s * 1_000_000)
        size = len(ts.elapsed_s)
        n = np.cumsum(np.bincount(bucket, minlength=size)[:size]).astype(float)
        s1 = np.cumsum(np.bincount(bucket, weights=d, minlength=size)[:size])
        s2 = np.cumsum(np.bincount(bucket, weights=d * d, minlength=size)[:size])
        with np.errstate(divide="ignore", invalid="ignore"):
            est = s1 / n
            var = (s2 - s1 * s1 / n) / (n - 1)
            se = np.sqrt(np.maximum(var, 0.0) / n)
        total = n
        rho = _paired_rho(pol)
    else:
        n_c, n_t = (np.asarray(ts.n[s], dtype=float) for s in SIDES)
        s_c, s_t = (np.asarray(ts.sums[s]) for s in SIDES)
        q_c, q_t = (np.asarray(ts.sum_squares[s]) for s in SIDES)
        with np.errstate(divide="ignore", invalid="ignore"):
            m_c, m_t = s_c / n_c, s_t / n_t
            if agg.task == "classification":  # Bernoulli variance, as ProportionStatistic
                v_c, v_t = m_c * (1 - m_c), m_t * (1 - m_t)
            else:
                v_c = (q_c - s_c * s_c / n_c) / (n_c - 1)
                v_t = (q_t - s_t * s_t / n_t) / (n_t - 1)
            est = m_t - m_c
            se = np.sqrt(np.maximum(v_c, 0.0) / n_c + np.maximum(v_t, 0.0) / n_t)
        total = n_c + n_t
        if any(agg.units_repeat(side) for side in SIDES) and len(se):
            # Units repeat: the tests use per-unit (delta-method) variances, which this
            # per-bucket series cannot (a unit spans buckets). Approximation: scale every
            # point by the final design effect, so the last point matches the test.
            a, b = agg.per_unit["champion"], agg.per_unit["challenger"]
            if min(a.n, b.n) >= 2 and se[-1] > 0:
                se = se * math.sqrt(a.variance / a.n + b.variance / b.n) / se[-1]
                total = total * (a.n + b.n) / max(total[-1], 1.0)
        assert pol.sequential_config is not None
        rho = sequential_rho(pol.alpha, pol.sequential_config.target_sample_size)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = cs_halfwidth(se, np.maximum(total, 1.0), rho, pol.alpha)
    ok = np.isfinite(est) & np.isfinite(half) & (se > 0)
    nan = float("nan")
    return {
        "elapsed_s": list(ts.elapsed_s),
        "estimate": [float(e) if k else nan for e, k in zip(est, ok, strict=True)],
        "ci_low": [float(e - h) if k else nan for e, h, k in zip(est, half, ok, strict=True)],
        "ci_high": [float(e + h) if k else nan for e, h, k in zip(est, half, ok, strict=True)],
    }


__all__ = [
    "MIN_LATENCY_REQUESTS",
    "OVER_TIME_LOOKS",
    "ExperimentAnalysis",
    "analyze_experiment",
    "analyze_model",
    "analyze_shadow",
    "compare_arms",
]
