"""A/B/n: the champion against k − 1 challengers, every pair in one error-controlled family.

:func:`pairwise_comparisons` compares every pair of arms on the primary metric as **one
family** whose family-wise error rate is at most ``alpha``: with ``sequential`` (the default)
each pair's always-valid confidence sequence at ``alpha / m`` (Bonferroni over the
``m = k(k − 1)/2`` pairs; time-uniform, so the union bound holds at any stopping time), else
the fixed-horizon pooled z-test (proportions), Welch t-test (means) or delta-method z-test
(per-unit ratios), Holm-adjusted over the pairs, with Bonferroni-simultaneous intervals.

**Per unit.** Assignment is sticky per unit (user), so a returning user's rows share an arm
and are correlated; a row-level test treats them as independent and rejects an A/A
comparison far more often than ``alpha`` (18.6 % of runs with repeating users in the issue's
analysis). When units repeat, the caller passes each arm's :class:`RatioStatistic` (a
unit's summed metric over its rows) and every test uses the delta-method variance of the
ratio, the cluster-robust variance of the row-level mean (Deng, Knoblich & Lu 2018), as the
two-arm path does; :func:`effective_units` reports how many units the arm's rows really rest
on. The fixed-horizon per-unit test refers its statistic to Student's t with
:func:`unit_dof` degrees of freedom rather than the normal: a few heavy users make the
delta-method variance rest on few units, and the normal reference then over-rejects.

:func:`decide_multiarm` applies the rules (the first that fires decides):

1. A challenger **breaches a guardrail** (:mod:`arbiter.stats.guardrails`) → ``rollback``,
   naming every such arm.
2. **SRM** → ``continue``: never promote on a broken split.
3. **Minimum sample**: an arm below ``min_sample_per_arm`` → ``continue``, with the remaining
   sample per arm.
4. A challenger **significantly worse than the champion** (in the family) → ``rollback``,
   naming every such arm.
5. The **best challenger** (best point estimate) significantly better than the champion
   **and** than every other challenger → ``promote`` it, provided all its guardrails are
   conclusively met (else ``continue``). Two challengers both better than the champion but
   indistinguishable from each other are not promoted: the data cannot say which to keep.
6. Every arm reached ``max_sample_per_arm`` without a winner → ``keep_champion``.
7. Otherwise ``continue``, with the remaining sample per arm: up to ``min_sample_per_arm``
   and, when ``min_detectable_effect`` is set, up to the size at which a pair of arms
   differing by it is detected with ``power`` at the Bonferroni level ``alpha / m``
   (:func:`arbiter.stats.power.sequential_sample_size` for the confidence sequence), capped
   at ``max_sample_per_arm``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from scipy import special as _sp

from arbiter.errors import InvalidInputError
from arbiter.stats.guardrails import GuardrailCheck
from arbiter.stats.means import ratio_test, welch_test
from arbiter.stats.multiple import holm
from arbiter.stats.power import (
    sample_size_means,
    sample_size_proportions,
    sequential_sample_size,
)
from arbiter.stats.proportions import two_proportion_test
from arbiter.stats.results import MarascuiloPair, SRMResult
from arbiter.stats.sequential import confidence_sequence, sequential_rho
from arbiter.stats.sufficient import ProportionStatistic, RatioStatistic, SampleMeanStatistic
from arbiter.stats.verdict.policy import DecisionPolicy
from arbiter.stats.verdict.types import Criterion, Decision, Verdict, reason_number

CHAMPION = "champion"
#: Planned total size the sequences are tuned for when the policy sets none.
DEFAULT_TARGET_SAMPLE_SIZE = 5000.0

ArmMetric = ProportionStatistic | SampleMeanStatistic | RatioStatistic


#: Below this many effective units an arm's per-unit (cluster) test rests on a few heavy
#: units, and its normal approximation is optimistic: the analyses warn.
FEW_UNITS = 30.0


def effective_units(stat: ArmMetric) -> float:
    """How many independent units an arm's rows rest on: ``(Σ d)² / Σ d²`` for a ratio.

    ``d`` is a unit's rows, so equal activity gives the number of units and skewed activity
    (a few heavy users) fewer; for row-level statistics every row is a unit (``n``).
    """
    if isinstance(stat, RatioStatistic):
        return stat.d_sum**2 / stat.d_sum_squares if stat.d_sum_squares > 0 else 0.0
    return float(stat.n)


@dataclass(frozen=True, slots=True)
class PairwiseComparison:
    """One pair of the family: ``estimate`` = arm ``b`` − arm ``a`` (``a`` comes first)."""

    a: str
    b: str
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str
    status: str
    adjusted_p_value: float = 1.0
    significant: bool = False
    marascuilo_critical_value: float | None = None
    marascuilo_significant: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values; the Marascuilo keys only for proportions."""
        out = {
            "a": self.a,
            "b": self.b,
            "estimate": self.estimate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "method": self.method,
            "status": self.status,
        }
        if self.marascuilo_significant is not None:
            out["marascuilo_critical_value"] = self.marascuilo_critical_value
            out["marascuilo_significant"] = self.marascuilo_significant
        out["adjusted_p_value"] = self.adjusted_p_value
        out["significant"] = self.significant
        return out


@dataclass(frozen=True, slots=True)
class PairwiseFamily:
    """Every pair of arms with family-wise adjusted p-values, and how they were adjusted."""

    comparisons: tuple[PairwiseComparison, ...]
    multiplicity: str

    def pair(self, a: str, b: str) -> PairwiseComparison:
        """The comparison of arms ``a`` and ``b``, in either order."""
        for c in self.comparisons:
            if {c.a, c.b} == {a, b}:
                return c
        raise KeyError(f"no pair {a!r}/{b!r}")


def pairwise_comparisons(
    stats: Mapping[str, ArmMetric],
    arms: Sequence[str],
    policy: DecisionPolicy,
    marascuilo: Mapping[tuple[int, int], MarascuiloPair] | None = None,
) -> PairwiseFamily:
    """Compare every pair of arms on the primary metric as one family (module docstring).

    Parameters
    ----------
    stats : mapping of str to ProportionStatistic, SampleMeanStatistic or RatioStatistic
        Each arm's sufficient statistics; per-unit ratios when units repeat (module
        docstring), all arms of one kind.
    arms : sequence of str
        Arm names, champion first; a pair ``(i, j)`` with ``i < j`` is estimated as
        ``arms[j] − arms[i]``, so every champion pair reads challenger − champion.
    policy : DecisionPolicy
        ``alpha`` (family-wise), ``uses_sequential`` and ``sequential_config``.
    marascuilo : mapping, optional
        Marascuilo pairs of :func:`arbiter.stats.proportions.k_proportion_test` by index pair,
        shown beside the pairwise tests (they do not decide).

    Returns
    -------
    PairwiseFamily
    """
    arms = tuple(arms)
    if len(arms) < 2:
        raise InvalidInputError(f"need at least two arms, got {list(arms)}", field="arms")
    marascuilo = marascuilo or {}
    pairs = list(itertools.combinations(range(len(arms)), 2))
    m = len(pairs)
    level = policy.alpha / m
    raw_rows: list[dict[str, Any]] = []
    for i, j in pairs:
        a, b = stats[arms[i]], stats[arms[j]]
        if policy.uses_sequential:
            r: Any = confidence_sequence(a, b, alpha=level, config=policy.sequential_config)
            row = {"estimate": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high,
                   "p_value": r.p_value, "method": "asymptotic_cs", "status": r.status}  # fmt: skip
        else:
            if isinstance(a, ProportionStatistic) and isinstance(b, ProportionStatistic):
                r = two_proportion_test(a, b, alpha=level)
                method = "two_proportion_z"
            elif isinstance(a, RatioStatistic) and isinstance(b, RatioStatistic):
                r = _small_sample_t(ratio_test(a, b, alpha=level), a, b, level)
                method = "delta_method_t"
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
        raw_rows.append(row)
    raw = [_usable_p(r) for r in raw_rows]
    if policy.uses_sequential:
        adjusted = [min(1.0, m * p) for p in raw]
        how = (
            f"Bonferroni over {m} pairs: each confidence sequence at alpha/{m} = {level:.4g}, "
            "valid at every look"
        )
    else:
        adjusted = list(holm(raw, alpha=policy.alpha).adjusted_p_values)
        how = (
            f"Holm over {m} pairs at alpha {policy.alpha:g}; intervals Bonferroni-simultaneous "
            f"at alpha/{m}"
        )
    out = []
    for row, adj in zip(raw_rows, adjusted, strict=True):
        significant = row["status"] == "ok" and adj < policy.alpha
        if policy.uses_sequential:  # the CS excludes 0 exactly when p < alpha/m
            significant = significant and not row["ci_low"] <= 0.0 <= row["ci_high"]
        out.append(PairwiseComparison(**row, adjusted_p_value=adj, significant=significant))
    return PairwiseFamily(tuple(out), how)


def decide_multiarm(
    arms: Sequence[str],
    stats: Mapping[str, ArmMetric],
    family: PairwiseFamily,
    guardrails: Mapping[str, Sequence[GuardrailCheck]],
    policy: DecisionPolicy,
    *,
    srm: SRMResult | None = None,
) -> Verdict:
    """Decide an A/B/n experiment (rules in the module docstring).

    Parameters
    ----------
    arms : sequence of str
        Arm names, ``"champion"`` first.
    stats : mapping of str to ProportionStatistic or SampleMeanStatistic
        Each arm's primary-metric statistics (labelled rows).
    family : PairwiseFamily
        From :func:`pairwise_comparisons` on the same statistics and policy.
    guardrails : mapping of str to sequence of GuardrailCheck
        Per challenger, its guardrails judged against the champion
        (:func:`arbiter.stats.guardrails.check_rate` at ``breach_alpha / (k − 1)`` and
        ``alpha / (k − 1)``: k − 1 challengers are k − 1 chances of a false breach).
    policy : DecisionPolicy
        ``alpha``, ``higher_is_better``, sample sizes, ``min_detectable_effect``, ``power``,
        ``srm_threshold``.
    srm : SRMResult, optional
        The k-category SRM test; None when no split can be checked.

    Returns
    -------
    Verdict
        ``winner`` with ``promote``; ``rolled_back`` (every harmful arm) with ``rollback``;
        ``remaining_per_arm`` (and its largest value as ``estimated_remaining_sample``) with
        ``continue`` when something is known.
    """
    arms = tuple(arms)
    if len(arms) < 2 or arms[0] != CHAMPION:
        raise InvalidInputError(
            f"arms must start with {CHAMPION!r} and have a challenger, got {list(arms)}",
            field="arms",
        )
    challengers = arms[1:]
    reasons: list[Criterion] = []

    def verdict(
        decision: Decision,
        winner: str | None = None,
        harmful: tuple[str, ...] = (),
        remaining: dict[str, int] | None = None,
    ) -> Verdict:
        return Verdict(
            decision,
            tuple(reasons),
            max(remaining.values()) if remaining else None,
            srm_p_value=None if srm is None else _finite_p(srm.p_value),
            winner=winner,
            rolled_back=harmful,
            remaining_per_arm=remaining,
        )

    # 1. Guardrails, per challenger.
    breached: list[str] = []
    for arm in challengers:
        for g in guardrails.get(arm, ()):
            detail = (
                f"{g.status}: {arm} {reason_number(g.challenger)} vs limit {reason_number(g.limit)}"
            )
            if g.alpha is not None and g.breach_alpha is not None:
                k = len(challengers)
                detail += (
                    f" (breached when the time-uniform lower bound at BREACH_ALPHA/{k} = "
                    f"{g.breach_alpha:.4g} clears the limit, met when the time-uniform upper "
                    f"bound at alpha/{k} = {g.alpha:.4g} does)"
                )
            if g.status in ("inconclusive", "no_data"):
                detail += " (not yet clear from the data; blocks promotion of this arm)"
            reasons.append(
                Criterion(f"guardrail:{g.name}:{arm}", g.status == "met", g.challenger, g.limit,
                          detail)
            )  # fmt: skip
            if g.status == "breached":
                breached.append(arm)
    if breached:
        return verdict("rollback", harmful=tuple(dict.fromkeys(breached)))

    # 2. SRM.
    if srm is not None:
        p = _finite_p(srm.p_value)
        reasons.append(
            Criterion("srm", not srm.mismatch, p, policy.srm_threshold,
                      f"chi-square p={p:.3g} for counts {srm.observed} vs weights "
                      f"{tuple(round(w, 4) for w in srm.weights)}"
                      + (": assignment is broken, no arm can be promoted" if srm.mismatch else ""))
        )  # fmt: skip
        if srm.mismatch:
            return verdict("continue")

    # 3. Minimum sample.
    n = {a: int(stats[a].n) for a in arms}
    smallest = min(arms, key=lambda a: n[a])
    enough = n[smallest] >= policy.min_sample_per_arm
    reasons.append(
        Criterion("min_sample", enough, float(n[smallest]), float(policy.min_sample_per_arm),
                  f"smallest arm {smallest} has {n[smallest]} of the "
                  f"{policy.min_sample_per_arm} labelled "
                  f"{'units' if isinstance(stats[smallest], RatioStatistic) else 'rows'} "
                  "required")
    )  # fmt: skip
    m = len(family.comparisons)
    if not enough:
        return verdict("continue", remaining=_remaining(arms, stats, policy, m))

    # 4. Harm: significantly worse than the champion.
    higher = policy.higher_is_better
    harmful = tuple(a for a in challengers if _better(family.pair(CHAMPION, a), CHAMPION, higher))
    for arm in challengers:
        r = family.pair(CHAMPION, arm)
        worse = arm in harmful
        reasons.append(
            Criterion(f"no_harm:{arm}", not worse, r.adjusted_p_value, policy.alpha,
                      f"{arm} − champion = {reason_number(r.estimate)} "
                      f"[{reason_number(r.ci_low)}, {reason_number(r.ci_high)}], adjusted p = "
                      f"{reason_number(r.adjusted_p_value)}"
                      + (": significantly worse" if worse else ""))
        )  # fmt: skip
    if harmful:
        return verdict("rollback", harmful=harmful)

    # 5. The best challenger must beat the champion and every other challenger.
    sign = 1.0 if higher else -1.0
    best = max(challengers, key=lambda a: sign * stats[a].mean)
    vs_champion = family.pair(CHAMPION, best)
    beats_champion = _better(vs_champion, best, higher)
    reasons.append(
        Criterion("best_beats_champion", beats_champion, vs_champion.adjusted_p_value,
                  policy.alpha,
                  f"best challenger {best}: {best} − champion = "
                  f"{reason_number(vs_champion.estimate)}, "
                  f"adjusted p = {reason_number(vs_champion.adjusted_p_value)}")
    )  # fmt: skip
    others = [a for a in challengers if a != best]
    unbeaten = [a for a in others if not _better(family.pair(best, a), best, higher)]
    worst_p = max((family.pair(best, a).adjusted_p_value for a in others), default=0.0)
    reasons.append(
        Criterion("best_beats_other_challengers", not unbeaten, worst_p, policy.alpha,
                  f"{best} is significantly better than every other challenger"
                  if not unbeaten
                  else f"{best} is not significantly better than {', '.join(unbeaten)}")
    )  # fmt: skip
    if beats_champion and not unbeaten:
        pending = [g.name for g in guardrails.get(best, ()) if g.status != "met"]
        if not pending:
            return verdict("promote", winner=best)
        reasons.append(
            Criterion(f"guardrails_conclusive:{best}", False, None, None,
                      f"{best} would win but its guardrails {pending} are not yet conclusive")
        )  # fmt: skip
        return verdict("continue")

    # 6. Planned horizon.
    if policy.max_sample_per_arm is not None:
        reached = n[smallest] >= policy.max_sample_per_arm
        reasons.append(
            Criterion("max_sample", not reached, float(n[smallest]),
                      float(policy.max_sample_per_arm),
                      "planned sample reached without a winner" if reached
                      else "planned sample not yet reached")
        )  # fmt: skip
        if reached:
            return verdict("keep_champion")

    # 7. Keep collecting.
    return verdict("continue", remaining=_remaining(arms, stats, policy, m))


def unit_dof(a: RatioStatistic, b: RatioStatistic) -> float:
    """Degrees of freedom of the per-unit difference of two ratios (module docstring).

    Welch–Satterthwaite over the arms with ``effective_units − 1`` each: the Bell–McCaffrey
    df of a clustered mean is close to the effective number of clusters (``1 / Σ p_g²``) when
    no unit dominates, and the arms are independent.
    """
    va, vb = a.variance / a.n, b.variance / b.n
    da, db = effective_units(a) - 1.0, effective_units(b) - 1.0
    if min(da, db) <= 0.0 or not va + vb > 0.0:
        return math.nan
    return (va + vb) ** 2 / (va * va / da + vb * vb / db)


def _small_sample_t(r: Any, a: RatioStatistic, b: RatioStatistic, level: float) -> Any:
    """The delta-method z-test referred to Student's t with :func:`unit_dof` df.

    With many evenly active units the df are large and nothing changes; when a few heavy
    users carry an arm's rows the df fall towards their effective number and the test
    widens (the normal reference over-rejected: 6.0 % of A/A runs at 5 % in the validity
    suite with Pareto(1.2) activity).
    """
    dof = unit_dof(a, b)
    if r.status not in ("ok", "zero_baseline") or not math.isfinite(dof):
        return r
    half = float(_sp.stdtrit(dof, 1.0 - level / 2.0)) * r.standard_error
    p = float(min(1.0, 2.0 * _sp.stdtr(dof, -abs(r.statistic))))
    return replace(r, p_value=p, dof=dof, ci_low=r.difference - half, ci_high=r.difference + half)


def _finite_p(p: float) -> float:
    return 1.0 if math.isnan(p) else float(p)


def _usable_p(row: Mapping[str, Any]) -> float:
    p = row["p_value"]
    return float(p) if row["status"] == "ok" and math.isfinite(p) else 1.0


def _better(c: PairwiseComparison, arm: str, higher_is_better: bool) -> bool:
    """Whether ``arm`` is significantly better than the other arm of ``c``."""
    if not c.significant:
        return False
    sign = 1.0 if higher_is_better else -1.0
    towards_b = sign * c.estimate > 0
    return towards_b if arm == c.b else not towards_b


def _remaining(
    arms: tuple[str, ...], stats: Mapping[str, ArmMetric], pol: DecisionPolicy, m: int
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
    arms: tuple[str, ...], stats: Mapping[str, ArmMetric], pol: DecisionPolicy, m: int
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
    # Sequential: the worst pair's variance, at the Bonferroni level.
    v = max(stats[a].variance + stats[b].variance for a, b in itertools.combinations(arms, 2))
    cfg = pol.sequential_config
    target = cfg.target_sample_size if cfg else DEFAULT_TARGET_SAMPLE_SIZE
    rho = sequential_rho(level, target)
    return sequential_sample_size(v, mde, alpha=level, power=pol.power, rho=rho)


__all__ = [
    "ArmMetric",
    "PairwiseComparison",
    "PairwiseFamily",
    "decide_multiarm",
    "effective_units",
    "pairwise_comparisons",
    "unit_dof",
]
