"""Guardrail metrics: non-inferiority criteria added to a two-arm verdict.

A guardrail metric (``decision.guardrail_metrics``: chargebacks must not increase by more
than ``max_increase``) is a one-sided question: *is there evidence that the challenger harms
the metric by more than the margin?* Its test is one-sided at ``alpha`` toward harm:

* harm is an increase: the lower confidence bound ``L`` of challenger − champion; the
  guardrail is **breached** when ``L > margin`` (harm beyond the margin is significant);
* harm is a decrease: the upper bound ``U``; breached when ``U < -margin``.

With ``sequential`` the bound is the one-sided always-valid confidence sequence of
:func:`arbiter.stats.sequential.confidence_sequence` (safe at every look, as a canary's harm
test); otherwise the fixed-horizon Welch / delta-method bound. A breach is harm to the users
the challenger serves, so :func:`apply_metric_guardrails` turns the verdict into
``rollback`` when it serves (``keep_champion`` otherwise), as a breached operational
guardrail does in :func:`arbiter.stats.verdict.decide`. A guardrail that cannot be computed
yet (an arm without units) has no observation: it blocks a promotion (``continue``) and
rolls nothing back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Literal

from arbiter.errors import InvalidInputError
from arbiter.stats.means import ratio_test, welch_test
from arbiter.stats.sequential import SequentialConfig, confidence_sequence
from arbiter.stats.sufficient import RatioStatistic, SampleMeanStatistic
from arbiter.stats.verdict.types import Criterion, Decision, Verdict, reason_number

Harm = Literal["increase", "decrease"]


def non_inferiority_criterion(
    name: str,
    control: SampleMeanStatistic | RatioStatistic,
    treatment: SampleMeanStatistic | RatioStatistic,
    *,
    margin: float,
    harm: Harm,
    alpha: float = 0.05,
    sequential: SequentialConfig | None = None,
) -> Criterion:
    """Judge one guardrail metric: breached when harm beyond ``margin`` is significant.

    Parameters
    ----------
    name : str
        The metric's name; the criterion is ``guardrail_metric:<name>``.
    control, treatment : SampleMeanStatistic or RatioStatistic
        Champion and challenger per-unit statistics (CUPED-adjusted ones are
        :class:`SampleMeanStatistic` too, see :func:`arbiter.stats.cuped.cuped_adjusted`).
    margin : float
        Largest harm tolerated (>= 0), in the metric's units (difference of per-unit means or
        of ratios).
    harm : {"increase", "decrease"}
        Which direction of challenger − champion is harm.
    alpha : float, default 0.05
        One-sided level of the bound.
    sequential : SequentialConfig, optional
        Use the always-valid one-sided confidence sequence with this tuning (peeking-safe);
        ``None`` uses the fixed-horizon test.

    Returns
    -------
    Criterion
        ``observed`` is the one-sided bound (None when it cannot be computed yet: no
        observation, which blocks promotion), ``threshold`` the limit (``margin`` or
        ``-margin``), ``met`` False when breached or unobserved.
    """
    if not (math.isfinite(margin) and margin >= 0.0):
        raise InvalidInputError(f"margin must be >= 0, got {margin!r}", field="margin")
    if harm not in ("increase", "decrease"):
        raise InvalidInputError(f"harm must be increase or decrease, got {harm!r}", field="harm")
    alternative: Literal["larger", "smaller"] = "larger" if harm == "increase" else "smaller"
    if sequential is not None:
        r = confidence_sequence(
            control, treatment, alpha=alpha, alternative=alternative, config=sequential
        )
        estimate, low, high, status = r.estimate, r.ci_low, r.ci_high, r.status
        method = "one-sided confidence sequence"
    else:
        test = ratio_test if isinstance(control, RatioStatistic) else welch_test
        m = test(control, treatment, alpha=alpha, alternative=alternative)  # type: ignore[arg-type]
        estimate, low, high = m.difference, m.ci_low, m.ci_high
        status = "ok" if m.status == "zero_baseline" else m.status
        method = "one-sided fixed-horizon bound"
    criterion = f"guardrail_metric:{name}"
    limit = margin if harm == "increase" else -margin
    if status == "zero_variance" and math.isfinite(estimate):
        low = high = estimate  # both arms constant (e.g. no chargeback at all): exact
    elif status != "ok":
        return Criterion(criterion, False, None, limit, "no observation yet (too little data)")
    bound = low if harm == "increase" else high
    breached = bound > limit if harm == "increase" else bound < limit
    side = "lower" if harm == "increase" else "upper"
    word = "increase" if harm == "increase" else "decrease"
    detail = (
        f"{method}: difference {reason_number(estimate)}, {side} bound "
        f"{reason_number(bound)} vs allowed {word} {reason_number(margin)}: "
        + ("harm beyond the margin" if breached else "no significant harm beyond the margin")
    )
    return Criterion(criterion, not breached, float(bound), float(limit), detail)


def apply_metric_guardrails(
    verdict: Verdict, criteria: tuple[Criterion, ...], *, serving: bool
) -> Verdict:
    """Add guardrail-metric criteria to a two-arm verdict and let them veto it.

    A breached criterion (observed, not met) makes the decision ``rollback`` when the
    challenger serves users, else ``keep_champion``; an unobserved one turns a ``promote``
    into ``continue``. Otherwise the decision stands, with the criteria listed.
    """
    if not criteria:
        return verdict
    reasons = verdict.reasons + tuple(criteria)
    breached = any(c.observed is not None and not c.met for c in criteria)
    missing = any(c.observed is None for c in criteria)
    if breached:
        decision: Decision = "rollback" if serving else "keep_champion"
        return replace(
            verdict,
            decision=decision,
            reasons=reasons,
            winner=None,
            rolled_back=("challenger",) if serving else (),
            estimated_remaining_sample=None,
        )
    if missing and verdict.decision == "promote":
        return replace(verdict, decision="continue", reasons=reasons, winner=None)
    return replace(verdict, reasons=reasons)


def apply_metric_guardrails_multiarm(
    verdict: Verdict, criteria: Mapping[str, tuple[Criterion, ...]], *, serving: bool
) -> Verdict:
    """:func:`apply_metric_guardrails` for an A/B/n verdict, per challenger.

    ``criteria`` maps each challenger to its guardrail-metric criteria (listed in the reasons
    as ``<criterion>:<arm>``). Every challenger with a breach is rolled back (``rollback``
    when serving, else ``keep_champion``), the winner included; a winner with an unobserved
    guardrail is not promoted yet (``continue``).
    """
    reasons = verdict.reasons + tuple(
        replace(c, name=f"{c.name}:{arm}") for arm, crits in criteria.items() for c in crits
    )
    breached = sorted(
        arm
        for arm, crits in criteria.items()
        if any(c.observed is not None and not c.met for c in crits)
    )
    if breached:
        if not serving:
            return replace(verdict, decision="keep_champion", reasons=reasons, winner=None)
        rolled = tuple(sorted(set(verdict.rolled_back) | set(breached)))
        return replace(
            verdict, decision="rollback", reasons=reasons, winner=None, rolled_back=rolled,
            remaining_per_arm=None, estimated_remaining_sample=None,
        )  # fmt: skip
    winner = verdict.winner
    unobserved = winner is not None and any(c.observed is None for c in criteria.get(winner, ()))
    if verdict.decision == "promote" and unobserved:
        return replace(verdict, decision="continue", reasons=reasons, winner=None)
    return replace(verdict, reasons=reasons)


__all__ = [
    "Harm",
    "apply_metric_guardrails",
    "apply_metric_guardrails_multiarm",
    "non_inferiority_criterion",
]
