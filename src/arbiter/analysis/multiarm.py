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
* the **error-rate guardrail** (the one rate guardrail of an ``ab`` experiment) rolls back on
  a Wilson interval at level ``alpha / (k − 1)`` (Bonferroni over the challengers), so a
  false rollback by it on *some* challenger has probability at most about ``alpha`` at one
  look (Wilson's coverage is close to nominal, not exact; the interval is not time-uniform,
  so repeated looks inflate it, as in the two-arm analysis);
* the **p99 latency** guardrail compares point estimates and has no error guarantee; it is
  judged only once both arms have :data:`~arbiter.analysis.analyze.MIN_LATENCY_REQUESTS`
  (1,000) successful requests, where the p99 estimate rests on at least 10 tail requests.

The tests assume independent rows. Assignment is sticky per unit, so a returning unit adds
correlated rows; when the labelled rows outnumber their distinct units by more than
:data:`REPEAT_UNIT_RATIO` the analysis adds a note recommending a unit-level analysis (the
row-level p-values are then anti-conservative).

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
   * ``sequential: false``: the pooled two-proportion z-test (accuracy) or Welch t-test
     (loss) per pair, Holm-adjusted over the m pairs (``statsmodels`` ``multipletests``).
     Intervals are Bonferroni-simultaneous at ``alpha / m``; Holm rejects at least what they
     exclude. For accuracy the Marascuilo verdict of each pair is shown beside it: it controls
     the same FWER but has no p-value and is usually less powerful than Holm.
4. **Guardrails per challenger** against the champion, with the two-arm analysis's rules
   (:mod:`arbiter.analysis.policy` limits; a rate counts once its Wilson interval clears the
   limit, the p99 latency ratio once both arms have
   :data:`~arbiter.analysis.analyze.MIN_LATENCY_REQUESTS` successful requests), except that
   the Wilson interval is at level ``alpha / (k − 1)``: k − 1 challengers are k − 1 chances
   of a false breach.

Decision rules (the first that fires decides)
---------------------------------------------
1. A challenger **breaches a guardrail** → ``rollback``, naming every such arm (rates:
   Wilson interval at ``alpha / (k − 1)`` wholly above the limit; p99: point estimate).
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

import itertools
import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import duckdb
from scipy import optimize
from scipy import stats as _st

from arbiter.analysis.aggregate import (
    ArmTraffic,
    ExperimentAggregates,
    MetricStatistic,
    aggregate_experiment,
)
from arbiter.analysis.analyze import _guardrail_observations
from arbiter.analysis.policy import LATENCY_P99, to_decision_policy
from arbiter.config import DecisionConfig, ModelConfig
from arbiter.errors import InvalidInputError
from arbiter.events.query import Scope
from arbiter.stats.anova import welch_anova
from arbiter.stats.means import welch_test
from arbiter.stats.multiple import holm
from arbiter.stats.power import sample_size_means, sample_size_proportions
from arbiter.stats.proportions import k_proportion_test, two_proportion_test
from arbiter.stats.results import SRMResult
from arbiter.stats.sequential import confidence_sequence, cs_halfwidth, sequential_rho
from arbiter.stats.srm import srm_test
from arbiter.stats.sufficient import ProportionStatistic
from arbiter.stats.verdict import Criterion, DecisionPolicy

CHAMPION = "champion"
REPEAT_UNIT_RATIO = 1.2
"""Labelled rows per distinct unit above which the analysis notes that units repeat."""


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
        ``alpha``: level of a rate's Wilson interval, ``alpha / (k − 1)``; None for p99).
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
    metric_stats: dict[str, MetricStatistic]
    srm: SRMResult | None
    srm_basis: str | None
    omnibus: dict[str, Any]
    pairwise: tuple[dict[str, Any], ...]
    multiplicity: str
    guardrails: dict[str, tuple[dict[str, Any], ...]]
    decision: str  # type: ignore[misc]  # a plain field satisfies the protocol's property
    winner: str | None
    rollback_arms: tuple[str, ...]
    criteria: tuple[Criterion, ...]
    remaining_per_arm: dict[str, int] | None
    policy: DecisionPolicy
    aggregates: ExperimentAggregates = field(repr=False)
    notes: tuple[str, ...] = ()

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
            "criteria": [_criterion(c) for c in self.criteria],
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
    agg = aggregate_experiment(con, model, experiment, loss=decision.loss, arms=arms)
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
    stats = {a: agg.metric[a] for a in arms}
    metric = "accuracy" if agg.task == "classification" else f"{decision.loss}_error"

    srm, srm_basis = _srm(traffic, arms, weights, pol, notes)
    omnibus, marascuilo = _omnibus(stats, arms, pol)
    pairwise, multiplicity = _pairwise(stats, arms, pol, marascuilo)
    # Bonferroni over the challengers: each is a chance of a false guardrail breach.
    rail_pol = replace(pol, alpha=pol.alpha / max(len(arms) - 1, 1))
    guardrails = {
        a: tuple(
            {**g, "alpha": None if g["name"] == LATENCY_P99 else rail_pol.alpha}
            for g in _guardrail_observations(
                agg, {"champion": traffic[CHAMPION], "challenger": traffic[a]}, rail_pol
            )[1]
        )
        for a in arms[1:]
    }
    _note_repeat_units(con, model, experiment, arms, notes)
    verdict, winner, harmful, criteria, remaining = _decide(
        arms, stats, srm, pairwise, guardrails, pol
    )
    arm_rows = {
        a: {
            **traffic[a].to_dict(),
            "labelled": stats[a].n,
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
        pairwise=pairwise,
        multiplicity=multiplicity,
        guardrails=guardrails,
        decision=verdict,
        winner=winner,
        rollback_arms=harmful,
        criteria=criteria,
        remaining_per_arm=remaining,
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


def _note_repeat_units(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    arms: tuple[str, ...],
    notes: list[str],
) -> None:
    """Note when labelled rows clearly outnumber their distinct units.

    The pairwise tests treat rows as independent, but assignment is sticky per unit: a
    returning user adds rows that share one arm and are correlated, so the row-level variance
    understates the truth and the p-values are anti-conservative. A batch request (several
    rows, one unit) does the same. A request without a unit id is its own unit.
    """
    scope = Scope(model, experiment)
    row = con.execute(
        "SELECT count(*), count(DISTINCT coalesce(unit_id, 'request:' || request_id)) "
        f"FROM labeled WHERE {scope.where()} AND role = 'served' "
        "AND error IS NULL AND label IS NOT NULL AND list_contains($arms, arm)",
        {**scope.params, "arms": list(arms)},
    ).fetchone()
    rows, units = (int(row[0]), int(row[1])) if row else (0, 0)
    if units and rows > REPEAT_UNIT_RATIO * units:
        notes.append(
            f"{rows:,} labelled rows come from {units:,} distinct units "
            f"({rows / units:.2f} rows per unit): rows of one unit are correlated, so the "
            "row-level p-values and intervals are anti-conservative; analyse per unit (e.g. "
            "each unit's mean metric) before acting on a borderline result"
        )


def _omnibus(
    stats: dict[str, MetricStatistic], arms: tuple[str, ...], pol: DecisionPolicy
) -> tuple[dict[str, Any], dict[tuple[int, int], Any]]:
    """The k-arm test of "all arms equal" and, for proportions, the Marascuilo pairs."""
    values = [stats[a] for a in arms]
    if all(isinstance(v, ProportionStatistic) for v in values):
        r = k_proportion_test(values, alpha=pol.alpha)  # type: ignore[arg-type]
        omnibus = {"name": "chi_square_homogeneity", "statistic": r.chi2, "p_value": r.p_value,
                   "dof": r.dof, "method": "Pearson chi-square test of homogeneity (2×k)",
                   "status": r.status}  # fmt: skip
        return omnibus, {(p.a, p.b): p for p in r.pairs}
    w = welch_anova(values)  # type: ignore[arg-type]
    omnibus = {"name": "welch_anova", "statistic": w.statistic, "p_value": w.p_value,
               "dof": w.df_num, "df_denom": w.df_denom, "method": w.method,
               "status": w.status}  # fmt: skip
    return omnibus, {}


def _pairwise(
    stats: dict[str, MetricStatistic],
    arms: tuple[str, ...],
    pol: DecisionPolicy,
    marascuilo: dict[tuple[int, int], Any],
) -> tuple[tuple[dict[str, Any], ...], str]:
    """Every pair (estimate = later − earlier arm) with family-wise adjusted p-values."""
    pairs = list(itertools.combinations(range(len(arms)), 2))
    m = len(pairs)
    level = pol.alpha / m
    rows: list[dict[str, Any]] = []
    for i, j in pairs:
        a, b = stats[arms[i]], stats[arms[j]]
        if pol.uses_sequential:
            r: Any = confidence_sequence(a, b, alpha=level, config=pol.sequential_config)
            row = {"estimate": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high,
                   "p_value": r.p_value, "method": "asymptotic_cs", "status": r.status}  # fmt: skip
        else:
            if isinstance(a, ProportionStatistic) and isinstance(b, ProportionStatistic):
                r = two_proportion_test(a, b, alpha=level)
                method = "two_proportion_z"
            else:
                r = welch_test(a, b, alpha=level)  # type: ignore[arg-type]
                method = "welch_t"
            # "zero_baseline" only means the relative lift is undefined; the test is valid.
            status = "ok" if r.status in ("ok", "zero_baseline") else r.status
            row = {"estimate": r.difference, "ci_low": r.ci_low, "ci_high": r.ci_high,
                   "p_value": r.p_value, "method": method, "status": status}  # fmt: skip
        row = {"a": arms[i], "b": arms[j], **row}
        if (i, j) in marascuilo:
            pair = marascuilo[(i, j)]
            row["marascuilo_critical_value"] = pair.critical_value
            row["marascuilo_significant"] = pair.significant
        rows.append(row)
    raw = [_usable_p(r) for r in rows]
    if pol.uses_sequential:
        adjusted = [min(1.0, m * p) for p in raw]
        how = (
            f"Bonferroni over {m} pairs: each confidence sequence at alpha/{m} = {level:.4g}, "
            "valid at every look"
        )
    else:
        adjusted = list(holm(raw, alpha=pol.alpha).adjusted_p_values)
        how = (
            f"Holm over {m} pairs at alpha {pol.alpha:g}; intervals Bonferroni-simultaneous "
            f"at alpha/{m}"
        )
    for row, adj in zip(rows, adjusted, strict=True):
        row["adjusted_p_value"] = adj
        row["significant"] = row["status"] == "ok" and adj < pol.alpha
        if pol.uses_sequential:  # the CS excludes 0 exactly when p < alpha/m
            row["significant"] = row["significant"] and not row["ci_low"] <= 0.0 <= row["ci_high"]
    return tuple(rows), how


def _usable_p(row: dict[str, Any]) -> float:
    p = row["p_value"]
    return float(p) if row["status"] == "ok" and math.isfinite(p) else 1.0


def _better(row: dict[str, Any], arm: str, higher_is_better: bool) -> bool:
    """Whether ``arm`` is significantly better than the other arm of ``row``."""
    if not row["significant"]:
        return False
    sign = 1.0 if higher_is_better else -1.0
    towards_b = sign * row["estimate"] > 0
    return towards_b if arm == row["b"] else not towards_b


def _decide(
    arms: tuple[str, ...],
    stats: dict[str, MetricStatistic],
    srm: SRMResult | None,
    pairwise: tuple[dict[str, Any], ...],
    guardrails: dict[str, tuple[dict[str, Any], ...]],
    pol: DecisionPolicy,
) -> tuple[str, str | None, tuple[str, ...], tuple[Criterion, ...], dict[str, int] | None]:
    """The rules of the module docstring: (decision, winner, harmful arms, criteria, remaining)."""
    challengers = arms[1:]
    reasons: list[Criterion] = []
    pairs = {(r["a"], r["b"]): r for r in pairwise}

    def row(a: str, b: str) -> dict[str, Any]:
        return pairs.get((a, b)) or pairs[(b, a)]

    # 1. Guardrails, per challenger.
    breached: list[str] = []
    for arm in challengers:
        for g in guardrails[arm]:
            status = g["status"]
            observed = g["challenger"]
            detail = f"{status}: {arm} {_fmt(observed)} vs limit {_fmt(g['limit'])}"
            if g.get("alpha") is not None:
                detail += f" (Wilson interval at alpha/{len(challengers)} = {g['alpha']:.4g})"
            if status in ("inconclusive", "no_data"):
                detail += " (not yet clear from the data; blocks promotion of this arm)"
            reasons.append(
                Criterion(f"guardrail:{g['name']}:{arm}", status == "met", observed, g["limit"],
                          detail)
            )  # fmt: skip
            if status == "breached":
                breached.append(arm)
    if breached:
        harmful = tuple(dict.fromkeys(breached))
        return "rollback", None, harmful, tuple(reasons), None

    # 2. SRM.
    if srm is not None:
        p = 1.0 if math.isnan(srm.p_value) else srm.p_value
        reasons.append(
            Criterion("srm", not srm.mismatch, p, pol.srm_threshold,
                      f"chi-square p={p:.3g} for counts {srm.observed} vs weights "
                      f"{tuple(round(w, 4) for w in srm.weights)}"
                      + (": assignment is broken, no arm can be promoted" if srm.mismatch else ""))
        )  # fmt: skip
        if srm.mismatch:
            return "continue", None, (), tuple(reasons), None

    # 3. Minimum sample.
    n = {a: int(stats[a].n) for a in arms}
    smallest = min(arms, key=lambda a: n[a])
    enough = n[smallest] >= pol.min_sample_per_arm
    reasons.append(
        Criterion("min_sample", enough, float(n[smallest]), float(pol.min_sample_per_arm),
                  f"smallest arm {smallest} has {n[smallest]} of the "
                  f"{pol.min_sample_per_arm} labelled rows required")
    )  # fmt: skip
    if not enough:
        return "continue", None, (), tuple(reasons), _remaining(arms, stats, pol, len(pairwise))

    # 4. Harm: significantly worse than the champion.
    harmful = tuple(
        a for a in challengers if _better(row(CHAMPION, a), CHAMPION, pol.higher_is_better)
    )
    for arm in challengers:
        r = row(CHAMPION, arm)
        worse = arm in harmful
        reasons.append(
            Criterion(f"no_harm:{arm}", not worse, r["adjusted_p_value"], pol.alpha,
                      f"{arm} − champion = {_fmt(r['estimate'])} "
                      f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}], adjusted p = "
                      f"{_fmt(r['adjusted_p_value'])}"
                      + (": significantly worse" if worse else ""))
        )  # fmt: skip
    if harmful:
        return "rollback", None, harmful, tuple(reasons), None

    # 5. The best challenger must beat the champion and every other challenger.
    sign = 1.0 if pol.higher_is_better else -1.0
    best = max(challengers, key=lambda a: sign * stats[a].mean)
    vs_champion = row(CHAMPION, best)
    beats_champion = _better(vs_champion, best, pol.higher_is_better)
    reasons.append(
        Criterion("best_beats_champion", beats_champion, vs_champion["adjusted_p_value"],
                  pol.alpha,
                  f"best challenger {best}: {best} − champion = {_fmt(vs_champion['estimate'])}, "
                  f"adjusted p = {_fmt(vs_champion['adjusted_p_value'])}")
    )  # fmt: skip
    others = [a for a in challengers if a != best]
    unbeaten = [a for a in others if not _better(row(best, a), best, pol.higher_is_better)]
    worst_p = max((row(best, a)["adjusted_p_value"] for a in others), default=0.0)
    reasons.append(
        Criterion("best_beats_other_challengers", not unbeaten, worst_p, pol.alpha,
                  f"{best} is significantly better than every other challenger"
                  if not unbeaten
                  else f"{best} is not significantly better than {', '.join(unbeaten)}")
    )  # fmt: skip
    if beats_champion and not unbeaten:
        pending = [g["name"] for g in guardrails[best] if g["status"] != "met"]
        if not pending:
            return "promote", best, (), tuple(reasons), None
        reasons.append(
            Criterion(f"guardrails_conclusive:{best}", False, None, None,
                      f"{best} would win but its guardrails {pending} are not yet conclusive")
        )  # fmt: skip
        return "continue", None, (), tuple(reasons), None

    # 6. Planned horizon.
    if pol.max_sample_per_arm is not None:
        reached = n[smallest] >= pol.max_sample_per_arm
        reasons.append(
            Criterion("max_sample", not reached, float(n[smallest]),
                      float(pol.max_sample_per_arm),
                      "planned sample reached without a winner" if reached
                      else "planned sample not yet reached")
        )  # fmt: skip
        if reached:
            return "keep_champion", None, (), tuple(reasons), None

    # 7. Keep collecting.
    return "continue", None, (), tuple(reasons), _remaining(arms, stats, pol, len(pairwise))


def _remaining(
    arms: tuple[str, ...], stats: dict[str, MetricStatistic], pol: DecisionPolicy, m: int
) -> dict[str, int] | None:
    """More labelled rows per arm (module docstring, rule 7); None when nothing is known."""
    required = _required_per_arm(arms, stats, pol, m)
    out: dict[str, int] = {}
    for a in arms:
        n = int(stats[a].n)
        more = max(pol.min_sample_per_arm - n, 0)
        if required is not None:
            more = max(more, required - n)
        if pol.max_sample_per_arm is not None:
            more = min(more, max(pol.max_sample_per_arm - n, 0))
        out[a] = int(more)
    if required is None and not any(out.values()):
        return None
    return out


def _required_per_arm(
    arms: tuple[str, ...], stats: dict[str, MetricStatistic], pol: DecisionPolicy, m: int
) -> int | None:
    """Per-arm size detecting ``mde`` between two arms at level ``alpha / m`` with ``power``."""
    mde = pol.min_detectable_effect
    if mde is None:
        return None
    level = pol.alpha / m
    champion = stats[CHAMPION]
    if not pol.uses_sequential:
        if isinstance(champion, ProportionStatistic):
            if not 0.0 < champion.mean < 1.0 or not 0.0 < champion.mean + mde < 1.0:
                return None
            plan = sample_size_proportions(champion.mean, mde, alpha=level, power=pol.power)
        else:
            sd = math.sqrt(max(stats[a].variance for a in arms))
            if not sd > 0.0:
                return None
            plan = sample_size_means(mde, sd, alpha=level, power=pol.power)
        return plan.n_per_arm
    # Sequential: the worst pair's variance, the n where CS half-width + z_power·SE = MDE
    # (as arbiter.stats.verdict does for two arms, at the Bonferroni level).
    v = max(stats[a].variance + stats[b].variance for a, b in itertools.combinations(arms, 2))
    if not v > 0.0:
        return None
    z_power = float(_st.norm.ppf(pol.power))
    target = pol.sequential_config.target_sample_size if pol.sequential_config else 5000.0
    rho = sequential_rho(level, target)

    def gap(n: float) -> float:
        se = math.sqrt(v / n)
        return float(cs_halfwidth(se, 2.0 * n, rho, level)) + z_power * se - mde

    if gap(1e13) > 0:
        return None
    if gap(1.0) <= 0:
        return 1
    return math.ceil(optimize.brentq(gap, 1.0, 1e13, rtol=1e-10))


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    v = float(value)
    return f"{v:.4g}" if math.isfinite(v) or math.isinf(v) else "–"


def _criterion(c: Criterion) -> dict[str, Any]:
    return {"name": c.name, "met": c.met, "observed": c.observed, "threshold": c.threshold,
            "detail": c.detail}  # fmt: skip


__all__ = ["MultiArmAnalysis", "analyze_multiarm"]
