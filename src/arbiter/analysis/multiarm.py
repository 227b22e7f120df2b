"""A/B/n: the champion against several challengers at once, with multiplicity control.

An ``ab`` experiment with ``experiment.challengers`` splits units over k arms (the champion and
k − 1 challengers, each arm named after its alias; a list of one challenger gives k = 2 and is
analysed here too, because its arm is named after its alias rather than ``challenger``).
Comparing every challenger with the champion at level ``alpha`` would find a "winner" far more
often than ``alpha`` when none exists, and picking the best of k noisy arms flatters it. This
module therefore treats all k(k − 1)/2 pairwise comparisons of the primary metric as **one
family** whose family-wise error rate (FWER) is at most ``alpha``.

What is error-controlled, precisely:

* **promotions and metric-based rollbacks** (rules 4 and 5 below) are decided only by members
  of that family, so when no arm differs the chance of any false promotion or false
  metric-based rollback is at most ``alpha`` (with ``sequential: true`` at every look; with
  ``sequential: false`` at the one planned look). ``tests/analysis/test_multiarm.py``
  measures it by simulation;
* the **error-rate guardrail** (the one rate guardrail of an ``ab`` experiment) rolls back
  by the one breach rule of :mod:`arbiter.stats.guardrails` (time-uniform lower bound and
  excess over the champion at :data:`~arbiter.stats.guardrails.BREACH_ALPHA`), here at
  ``BREACH_ALPHA / (k − 1)`` (Bonferroni over the challengers): the chance of a false
  rollback on *some* challenger stays at most ``BREACH_ALPHA`` over any number of looks;
* the **p99 latency** guardrail compares point estimates and has no error guarantee; it is
  judged only once both arms have :data:`~arbiter.stats.guardrails.MIN_LATENCY_REQUESTS`
  (1,000) successful requests, where the p99 estimate rests on at least 10 tail requests.

**Per unit.** Assignment is sticky per unit, so a returning unit adds correlated rows, and
row-level tests reject an A/A comparison far more often than ``alpha`` (18.6 % of runs with
repeating users in issue 15). When any arm's labelled rows outnumber its labelled units,
every test, the omnibus, the minimum sample and the remaining sample count **units**, with
the delta-method variance of "metric summed per unit / labelled rows per unit" (the
row-level mean with a cluster-robust variance; :func:`arbiter.stats.means.ratio_test` and the
confidence sequence on :class:`~arbiter.stats.sufficient.RatioStatistic`), as the two-arm
path does; a note says so and gives each arm's effective number of units
(:func:`arbiter.stats.verdict.multiarm.effective_units`), with a warning when it is below
:data:`FEW_UNITS` (the normal approximation then rests on a few heavy users). With one row
per unit the row-level statistics are the same test and are kept.

What is computed
----------------
1. **SRM**: Pearson's k-category chi-square goodness of fit of the units per arm to the
   configured shares (champion: ``1 − Σ challenger shares``);
   :func:`arbiter.stats.srm.srm_test`.
2. **Omnibus test** of the primary metric, reported (it does not gate the pairwise tests,
   which control the FWER on their own):

   * classifier (accuracy): Pearson's chi-square test of homogeneity on the 2×k table, with
     the Marascuilo simultaneous pairwise procedure (NIST/SEMATECH e-Handbook §7.4.7.4);
     :func:`arbiter.stats.proportions.k_proportion_test`;
   * per unit (units repeat): the Wald chi-square test of equal ratios with each arm's
     delta-method variance, ``Σ w_i (R_i − R̄_w)²`` with ``w_i = 1 / Var(R_i)`` on ``k − 1``
     df;
   * regressor (per-row loss): Welch's heteroscedastic one-way ANOVA, which needs only each
     arm's ``(n, Σ, Σ²)`` (a rank test such as Kruskal–Wallis would need the raw rows);
     :func:`arbiter.stats.anova.welch_anova`.
3. **Pairwise family** (``m = k(k − 1)/2`` pairs, estimate = later arm − earlier arm, so every
   champion pair reads challenger − champion):

   * ``sequential: true`` (default): the asymptotic confidence sequence of each pair at level
     ``alpha / m`` (Bonferroni). Each sequence is time-uniform, so the union bound holds at any
     stopping time: peeking is safe for the whole family. The adjusted p-value is
     ``min(1, m · p)`` with ``p`` the always-valid p-value, and a pair is significant exactly
     when its interval excludes 0.
   * ``sequential: false``: the pooled two-proportion z-test (accuracy), Welch t-test
     (loss) or delta-method test with a small-sample t (per unit,
     :func:`arbiter.stats.verdict.multiarm.unit_dof`) per pair, Holm-adjusted over the m pairs
     (``statsmodels`` ``multipletests``).
     Intervals are Bonferroni-simultaneous at ``alpha / m``; Holm rejects at least what they
     exclude. For accuracy the Marascuilo verdict of each pair is shown beside it: it controls
     the same FWER but has no p-value and is usually less powerful than Holm.
4. **Guardrails per challenger** against the champion, with the two-arm analysis's rules
   (:mod:`arbiter.analysis.policy` limits, :mod:`arbiter.stats.guardrails` judgement), except
   that both levels are divided by ``k − 1``: k − 1 challengers are k − 1 chances of a false
   breach.

Decision rules (the first that fires decides)
---------------------------------------------
The rules are those of :func:`arbiter.stats.verdict.decide_multiarm`:

1. A challenger **breaches a guardrail** → ``rollback``, naming every such arm.
2. **SRM** (``p < srm_p_threshold``) → ``continue``: never promote on a broken split.
3. **Minimum sample**: an arm has fewer than ``min_sample_per_arm`` labelled rows →
   ``continue``, with the remaining sample per arm.
4. A challenger is **significantly worse than the champion** (in the family) → ``rollback``,
   naming every such arm.
5. The **best challenger** (best point estimate) is significantly better than the champion
   **and** significantly better than every other challenger → ``promote`` it, provided all
   its guardrails are conclusively met (else ``continue``). Two challengers that are both
   better than the champion but indistinguishable from each other are *not* promoted: the
   data cannot say which one to keep.
6. Every arm reached ``max_sample_per_arm`` without a winner → ``keep_champion``.
7. Otherwise ``continue``, with the remaining sample per arm: up to ``min_sample_per_arm``
   and, when ``mde`` is set, up to the size at which a pair of arms differing by ``mde`` is
   detected with ``power`` at the Bonferroni level ``alpha / m`` (for the confidence
   sequence: where its half-width plus ``z_power`` standard errors equals ``mde``), capped at
   ``max_sample_per_arm``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import duckdb
from scipy.stats import chi2 as _chi2

from arbiter.analysis.aggregate import (
    ArmTraffic,
    ExperimentAggregates,
    aggregate_experiment,
)
from arbiter.analysis.analyze import _guardrail_observations
from arbiter.analysis.metrics import MetricsAnalysis
from arbiter.analysis.periods import split_changed, srm_with_periods
from arbiter.analysis.policy import to_decision_policy
from arbiter.config import DecisionConfig, ModelConfig
from arbiter.errors import InvalidInputError
from arbiter.events.query import Scope
from arbiter.stats.anova import welch_anova
from arbiter.stats.guardrails import BREACH_ALPHA
from arbiter.stats.means import ratio_mean_and_variance
from arbiter.stats.proportions import k_proportion_test
from arbiter.stats.results import SRMResult
from arbiter.stats.srm import srm_test
from arbiter.stats.sufficient import ProportionStatistic, RatioStatistic
from arbiter.stats.verdict import (
    Criterion,
    DecisionPolicy,
    Verdict,
    decide_multiarm,
    pairwise_comparisons,
)
from arbiter.stats.verdict.multiarm import FEW_UNITS, ArmMetric, effective_units

CHAMPION = "champion"
"""Effective units per arm below which the per-unit analysis warns (few heavy users)."""


@dataclass(frozen=True)
class MultiArmAnalysis:
    """Everything ``arbiter analyze`` found about one A/B/n experiment.

    Attributes
    ----------
    model, experiment, strategy : str
        What was analysed (``strategy`` is ``"ab"``).
    task, metric : str
        ``classification``/``accuracy`` or ``regression``/``squared_error``/``absolute_error``.
    arms : tuple of str
        Arm names, champion first, then the challengers in configuration order.
    aliases : dict of str to str
        Arm → registry alias (configured, else as logged).
    weights : dict of str to float
        Arm → expected share of units, for SRM.
    arm_rows : dict of str to dict
        Per arm: traffic, errors, latency, labelled rows and the metric.
    metric_stats : dict
        Per arm: the primary metric's sufficient statistics.
    srm, srm_basis
        The k-category SRM test and whether it counted ``units`` or ``requests``.
    omnibus : dict
        Chi-square test of homogeneity (accuracy) or Welch ANOVA (loss).
    pairwise : tuple of dict
        One row per pair (``a``, ``b``, ``estimate`` = b − a, interval, raw and adjusted
        p-values, ``significant``; for accuracy also the Marascuilo verdict).
    guardrails : dict of str to tuple of dict
        Per challenger, one row per guardrail (``status`` met/breached/inconclusive/no_data;
        ``alpha``: level of a rate's time-uniform interval, ``alpha / (k − 1)``, and
        ``breach_alpha`` that of its breach bound, ``BREACH_ALPHA / (k − 1)``; None for p99).
    verdict : Verdict
        The decision of :func:`arbiter.stats.verdict.decide_multiarm`; the attributes below
        read it.
    decision : str
        ``promote``, ``rollback``, ``continue`` or ``keep_champion``.
    winner : str or None
        The arm to promote (only with ``promote``).
    rollback_arms : tuple of str
        The harmful challengers (only with ``rollback``).
    criteria : tuple of Criterion
        Every check of the verdict, in rule order.
    remaining_per_arm : dict of str to int or None
        Additional labelled rows each arm needs (only with ``continue``).
    """

    model: str
    experiment: str
    strategy: str
    task: str
    metric: str
    higher_is_better: bool
    first_event: datetime
    last_event: datetime
    arms: tuple[str, ...]
    aliases: dict[str, str]
    weights: dict[str, float]
    arm_rows: dict[str, dict[str, Any]]
    metric_stats: dict[str, ArmMetric]
    srm: SRMResult | None
    srm_basis: str | None
    omnibus: dict[str, Any]
    pairwise: tuple[dict[str, Any], ...]
    multiplicity: str
    guardrails: dict[str, tuple[dict[str, Any], ...]]
    verdict: Verdict
    policy: DecisionPolicy
    aggregates: ExperimentAggregates = field(repr=False)
    notes: tuple[str, ...] = ()
    metrics: MetricsAnalysis | None = None  # business/label metrics per challenger (ab.py)

    @property
    def decision(self) -> str:
        return self.verdict.decision

    @property
    def winner(self) -> str | None:
        """The arm to promote (only with ``promote``)."""
        return self.verdict.winner

    @property
    def rollback_arms(self) -> tuple[str, ...]:
        """The harmful challengers (only with ``rollback``)."""
        return self.verdict.rolled_back

    @property
    def criteria(self) -> tuple[Criterion, ...]:
        return self.verdict.reasons

    @property
    def remaining_per_arm(self) -> dict[str, int] | None:
        """Additional labelled rows each arm needs (only with ``continue``)."""
        return self.verdict.remaining_per_arm

    def pair(self, a: str, b: str) -> dict[str, Any]:
        """The pairwise row of arms ``a`` and ``b`` (in either order, as stored)."""
        for row in self.pairwise:
            if {row["a"], row["b"]} == {a, b}:
                return row
        raise KeyError(f"no pair {a!r}/{b!r}; arms are {list(self.arms)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready values (NaN stays NaN; the CLI turns it into null)."""
        remaining = self.remaining_per_arm
        return {
            "model": self.model,
            "experiment": self.experiment,
            "strategy": self.strategy,
            "kind": "multiarm",
            "task": self.task,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "first_event": self.first_event.isoformat(),
            "last_event": self.last_event.isoformat(),
            "decision": self.decision,
            "winner": self.winner,
            "rollback_arms": list(self.rollback_arms),
            "criteria": [c.to_dict() for c in self.criteria],
            "estimated_remaining_sample": max(remaining.values()) if remaining else None,
            "remaining_per_arm": None if remaining is None else dict(remaining),
            "arms": {a: dict(self.arm_rows[a]) for a in self.arms},
            "aliases": dict(self.aliases),
            "weights": dict(self.weights),
            "srm": None if self.srm is None else {**self.srm.to_dict(), "basis": self.srm_basis},
            "omnibus": dict(self.omnibus),
            "pairwise": [dict(r) for r in self.pairwise],
            "multiplicity": self.multiplicity,
            "guardrails": {a: [dict(r) for r in rows] for a, rows in self.guardrails.items()},
            "policy": {
                "alpha": self.policy.alpha,
                "sequential": self.policy.uses_sequential,
                "min_sample_per_arm": self.policy.min_sample_per_arm,
                "max_sample_per_arm": self.policy.max_sample_per_arm,
                "min_detectable_effect": self.policy.min_detectable_effect,
                "power": self.policy.power,
                "srm_threshold": self.policy.srm_threshold,
            },
            "timeseries": self.aggregates.timeseries.to_dict(),
            "confusion": [c.to_dict() for c in self.aggregates.confusion],
            "notes": list(self.notes),
            "metrics": [] if self.metrics is None else self.metrics.to_list(),
        }


# --- the analysis ----------------------------------------------------------------------------


def analyze_multiarm(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    *,
    model_config: ModelConfig | None = None,
    policy: DecisionConfig | None = None,
) -> MultiArmAnalysis:
    """Analyse an A/B/n experiment: SRM, omnibus test, pairwise family, guardrails, verdict.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        From :meth:`arbiter.events.EventStore.connect`.
    model, experiment : str
        As logged.
    model_config : ModelConfig, optional
        The model's home configuration. When it describes this experiment, its challengers
        give the arm order and the shares SRM expects; otherwise the arms are taken from the
        log with an equal split (noted).
    policy : DecisionConfig, optional
        Default: ``model_config.decision``, else the defaults.

    Returns
    -------
    MultiArmAnalysis

    Raises
    ------
    NotFoundError
        No such model or experiment in the log.
    InvalidInputError
        The experiment is not an A/B test, or has fewer than two arms.
    """
    decision = policy or (model_config.decision if model_config else DecisionConfig())
    notes: list[str] = []
    arms, aliases, weights = _arm_plan(con, model, experiment, model_config, notes)
    crossed = split_changed(con, model, experiment)  # units moved by a split change: left out
    agg = aggregate_experiment(
        con, model, experiment, loss=decision.loss, arms=arms, exclude_crossed=crossed
    )
    info = agg.info
    if info.strategy != "ab":
        raise InvalidInputError(
            f"experiment {experiment!r} of model {model!r} has strategy {info.strategy!r}; "
            "the A/B/n analysis needs an ab experiment",
            field="experiment",
        )
    if len(arms) < 2:
        raise InvalidInputError(
            f"experiment {experiment!r} has arms {list(arms)}; a comparison needs at least two",
            field="experiment",
        )
    if agg.other_arms:
        notes.append(f"logged arms not in the configuration ignored: {', '.join(agg.other_arms)}")
    pol = to_decision_policy(decision, mode="ab", task=agg.task)
    traffic = {a: agg.traffic.get(a) or ArmTraffic(a, (), (), 0, 0, 0, 0, ()) for a in arms}
    for a in arms:
        if a not in aliases:
            aliases[a] = ", ".join(traffic[a].aliases) or a
    stats = _per_unit_if_repeated(agg, arms, notes)
    metric = "accuracy" if agg.task == "classification" else f"{decision.loss}_error"

    srm, srm_basis = _srm(traffic, arms, weights, pol, notes)
    srm = srm_with_periods(con, model, experiment, srm, arms, pol.srm_threshold, notes)
    omnibus, marascuilo = _omnibus(stats, arms, pol)
    family = pairwise_comparisons(stats, arms, pol, marascuilo)
    # Bonferroni over the challengers: each is a chance of a false guardrail breach.
    challengers = max(len(arms) - 1, 1)
    rail_pol = replace(pol, alpha=pol.alpha / challengers)
    checks = {
        a: _guardrail_observations(
            agg,
            {"champion": traffic[CHAMPION], "challenger": traffic[a]},
            rail_pol,
            breach_alpha=BREACH_ALPHA / challengers,
        )[1]
        for a in arms[1:]
    }
    verdict = decide_multiarm(arms, stats, family, checks, pol, srm=srm)
    arm_rows = {
        a: {
            **traffic[a].to_dict(),
            "labelled": agg.metric[a].n,
            "labelled_units": agg.per_unit[a].n if a in agg.per_unit else None,
            metric: stats[a].mean if stats[a].n else math.nan,
        }
        for a in arms
    }
    return MultiArmAnalysis(
        model=model,
        experiment=experiment,
        strategy=info.strategy,
        task=agg.task,
        metric=metric,
        higher_is_better=pol.higher_is_better,
        first_event=info.first_ts,
        last_event=info.last_ts,
        arms=arms,
        aliases=aliases,
        weights=dict(zip(arms, weights, strict=True)),
        arm_rows=arm_rows,
        metric_stats=stats,
        srm=srm,
        srm_basis=srm_basis,
        omnibus=omnibus,
        pairwise=tuple(c.to_dict() for c in family.comparisons),
        multiplicity=family.multiplicity,
        guardrails={a: tuple(c.to_dict() for c in rows) for a, rows in checks.items()},
        verdict=verdict,
        policy=pol,
        aggregates=agg,
        notes=tuple(notes),
    )


# --- steps -----------------------------------------------------------------------------------


def _arm_plan(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    config: ModelConfig | None,
    notes: list[str],
) -> tuple[tuple[str, ...], dict[str, str], tuple[float, ...]]:
    """Arms (champion first), their aliases and expected shares, from the config or the log."""
    exp = config.experiment if config is not None else None
    if (
        config is not None
        and exp is not None
        and exp.strategy == "ab"
        and exp.challengers
        and config.experiment_name(model) == experiment
    ):
        arms = (CHAMPION, *(c.alias for c in exp.challengers))
        shares = tuple(c.share for c in exp.challengers)
        return arms, dict(config.arms()), (max(1.0 - sum(shares), 0.0), *shares)
    scope = Scope(model, experiment)
    logged = [
        str(r[0])
        for r in con.execute(
            f"SELECT DISTINCT arm FROM served WHERE {scope.where()} AND arm IS NOT NULL "
            "ORDER BY arm",
            scope.params,
        ).fetchall()
    ]
    arms = (CHAMPION, *(a for a in logged if a != CHAMPION))
    notes.append(
        f"the home config does not describe experiment {experiment!r}; arms taken from the "
        "log and SRM assumes an equal split"
    )
    return arms, {}, tuple(1.0 / len(arms) for _ in arms)


def _srm(
    traffic: dict[str, ArmTraffic],
    arms: tuple[str, ...],
    weights: tuple[float, ...],
    pol: DecisionPolicy,
    notes: list[str],
) -> tuple[SRMResult | None, str | None]:
    # Assignment is per unit (sticky hash); a request without a unit id is its own unit.
    with_ids = any(traffic[a].random_requests < traffic[a].requests for a in arms)
    basis = "units" if with_ids else "requests"
    keep = [i for i, w in enumerate(weights) if w > 0]
    if len(keep) < len(arms):
        dropped = [arms[i] for i in range(len(arms)) if i not in keep]
        notes.append(f"arms with a configured share of 0 left out of the SRM check: {dropped}")
    if len(keep) < 2:
        return None, None
    counts = [traffic[arms[i]].units for i in keep]
    return srm_test(counts, [weights[i] for i in keep], threshold=pol.srm_threshold), basis


def _per_unit_if_repeated(
    agg: ExperimentAggregates, arms: tuple[str, ...], notes: list[str]
) -> dict[str, ArmMetric]:
    """Each arm's primary-metric statistics, per unit when some arm's units repeat.

    A request without a unit id is its own unit (module docstring, "Per unit").
    """
    if not any(agg.units_repeat(a) for a in arms):
        return {a: agg.metric[a] for a in arms}
    stats: dict[str, ArmMetric] = {a: agg.per_unit[a] for a in arms}
    rows = sum(int(agg.metric[a].n) for a in arms)
    units = sum(int(stats[a].n) for a in arms)
    eff = {a: effective_units(stats[a]) for a in arms}
    notes.append(
        f"{rows:,} labelled rows come from {units:,} distinct units: rows of one unit are "
        "correlated, so tests, minimum sample and remaining sample count units, with the "
        "delta-method variance per unit; effective units per arm "
        + ", ".join(f"{a} {eff[a]:,.1f}" for a in arms)
    )
    few = [a for a in arms if stats[a].n >= 2 and eff[a] < FEW_UNITS]
    if few:
        notes.append(
            f"warning: few effective units (< {FEW_UNITS:g}) in {', '.join(few)}: a few "
            "heavy users carry most rows, so the normal approximation of the per-unit tests "
            "rests on them; treat borderline results with caution"
        )
    return stats


def _omnibus(
    stats: dict[str, ArmMetric], arms: tuple[str, ...], pol: DecisionPolicy
) -> tuple[dict[str, Any], dict[tuple[int, int], Any]]:
    """The k-arm test of "all arms equal" and, for proportions, the Marascuilo pairs."""
    values = [stats[a] for a in arms]
    if all(isinstance(v, ProportionStatistic) for v in values):
        r = k_proportion_test(values, alpha=pol.alpha)  # type: ignore[arg-type]
        omnibus = {"name": "chi_square_homogeneity", "statistic": r.chi2, "p_value": r.p_value,
                   "dof": r.dof, "method": "Pearson chi-square test of homogeneity (2×k)",
                   "status": r.status}  # fmt: skip
        return omnibus, {(p.a, p.b): p for p in r.pairs}
    if all(isinstance(v, RatioStatistic) for v in values):
        return _ratio_wald(values), {}  # type: ignore[arg-type]
    w = welch_anova(values)  # type: ignore[arg-type]
    omnibus = {"name": "welch_anova", "statistic": w.statistic, "p_value": w.p_value,
               "dof": w.df_num, "df_denom": w.df_denom, "method": w.method,
               "status": w.status}  # fmt: skip
    return omnibus, {}


def _ratio_wald(values: list[RatioStatistic]) -> dict[str, Any]:
    """Wald chi-square test of equal per-unit ratios (module docstring, omnibus)."""
    method = "Wald chi-square test of equal ratios, delta-method variance per unit"
    means, variances = zip(*(ratio_mean_and_variance(v) for v in values), strict=True)
    dof = len(values) - 1
    if not all(math.isfinite(v) and v > 0 for v in variances):
        return {"name": "ratio_wald", "statistic": math.nan, "p_value": math.nan, "dof": dof,
                "method": method, "status": "insufficient_data"}  # fmt: skip
    w = [1.0 / v for v in variances]
    pooled = sum(wi * m for wi, m in zip(w, means, strict=True)) / sum(w)
    stat = sum(wi * (m - pooled) ** 2 for wi, m in zip(w, means, strict=True))
    return {"name": "ratio_wald", "statistic": stat, "p_value": float(_chi2.sf(stat, dof)),
            "dof": dof, "method": method, "status": "ok"}  # fmt: skip


__all__ = ["MultiArmAnalysis", "analyze_multiarm"]
