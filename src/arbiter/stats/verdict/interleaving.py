"""Interleaving: which ranker do users prefer, and may the challenger replace the champion?

Rules of :func:`decide_interleaving` (the first that fires decides):

* ``rollback`` when the challenger's failure rate is **breached**
  (:func:`arbiter.stats.guardrails.check_rate`: its time-uniform lower bound at
  :data:`~arbiter.stats.guardrails.BREACH_ALPHA` above the limit; with the true rate at the
  limit the chance of ever a false breach, over any number of looks, is at most 0.001);
* ``rollback`` when the champion wins significantly with at least ``min_sample`` impressions
  with clicks;
* ``promote`` when the challenger wins significantly with that sample and its failure rate is
  **met**: the time-uniform upper bound at ``alpha`` is at or below the limit (so a
  challenger whose true rate is above the limit is ever let through with probability at most
  ``alpha``);
* at ``max_sample`` impressions with clicks: ``keep_champion`` when the challenger wins but
  its failure rate is not shown to be within the limit (it can no longer be promoted, and
  more data would not end the experiment); ``rollback`` when the challenger does not win
  significantly;
* ``continue`` otherwise.

The ``test`` criterion reports the users, their effective number and the Bell–McCaffrey
degrees of freedom of the clustered test, and warns when the df fall below
:data:`~arbiter.stats.interleaving.FEW_CLUSTERS` (a few users carry most impressions).

"Significantly" is the always-valid p-value of the confidence sequence when one is given
(safe to look after every batch), else the clustered t-test's (decide once, at a planned
sample); with zero variance (every user has the same mean outcome) the per-user sign test
decides in both modes (:func:`interleaving_decision_p_value`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from arbiter.errors import InvalidInputError
from arbiter.stats.guardrails import check_rate
from arbiter.stats.interleaving import FEW_CLUSTERS
from arbiter.stats.results import STATUS_OK, STATUS_ZERO_VARIANCE, InterleavingResult
from arbiter.stats.verdict.types import Criterion, Decision, Verdict, reason_number

CHAMPION = "champion"
CHALLENGER = "challenger"


def interleaving_decision_p_value(
    test: InterleavingResult, sequential: Mapping[str, float] | None = None
) -> float:
    """The p-value an interleaving decision compares with ``alpha``.

    The always-valid one when ``sequential`` is given, else the clustered t-test's; with zero
    variance neither test has a standard error and the per-user sign test decides in both
    modes (NaN with fewer than two users).
    """
    if sequential is not None and test.status != STATUS_ZERO_VARIANCE:
        p = sequential["p_value"]
        return p if math.isfinite(p) else math.nan
    if test.status == STATUS_OK and math.isfinite(test.p_value):
        return test.p_value
    return test.sign_test_p_value if test.n_clusters >= 2 else math.nan


def decide_interleaving(
    test: InterleavingResult,
    impressions_with_clicks: int,
    *,
    alpha: float,
    min_sample: int,
    max_sample: int | None = None,
    sequential: Mapping[str, float] | None = None,
    failures: int = 0,
    attempts: int = 0,
    max_error_rate: float | None = None,
) -> Verdict:
    """Decide an interleaving experiment (rules in the module docstring).

    Parameters
    ----------
    test : InterleavingResult
        The clustered test, champion-oriented as
        :func:`arbiter.stats.interleaving.clustered_interleaving_test` returns it
        (``delta > 0``: the champion is preferred).
    impressions_with_clicks : int
        Impressions that carried a preference (the sample the sizes count).
    alpha : float
        Level of the preference test.
    min_sample : int
        Impressions with clicks before a preference decides.
    max_sample : int, optional
        The planned horizon.
    sequential : mapping of str to float, optional
        The always-valid confidence sequence of the challenger's preference: ``ci_low``,
        ``ci_high``, ``p_value``. When given it decides (safe to peek).
    failures, attempts : int, default=0
        The challenger's failed ranking calls out of its attempts.
    max_error_rate : float, optional
        Largest acceptable failure rate, judged by the time-uniform bounds of
        :func:`arbiter.stats.guardrails.check_rate` (breached: rollback; met: promotion may
        proceed; inconclusive: blocks promotion); None: no guardrail.

    Returns
    -------
    Verdict
        ``winner`` is the ranker users prefer significantly (``champion`` or
        ``challenger``), whatever the decision; ``rolled_back`` is ``("challenger",)`` with
        ``rollback``.
    """
    if not (0.0 < alpha < 1.0):
        raise InvalidInputError(f"alpha must be in (0, 1), got {alpha!r}", field="alpha")
    n = impressions_with_clicks
    p = interleaving_decision_p_value(test, sequential)
    significant = p < alpha and test.delta != 0
    challenger_wins = significant and test.delta < 0
    champion_wins = significant and test.delta > 0
    winner = (CHALLENGER if challenger_wins else CHAMPION) if significant else None
    pref = -test.delta
    criteria = [
        Criterion(
            "sample",
            n >= min_sample,
            float(n),
            float(min_sample),
            f"{n:,} impressions with clicks (need {min_sample:,})",
        ),
        Criterion(
            "test",
            test.status == STATUS_OK,
            None,
            None,
            f"clustered interleaving test: {test.status} ({test.n_clusters} users"
            + (
                f", {test.effective_clusters:.1f} effective, {test.dof:.1f} df"
                if math.isfinite(test.effective_clusters) and math.isfinite(test.dof)
                else ""
            )
            + ")"
            + (
                "; every user has the same mean outcome, so the per-user sign test decides"
                if test.status == STATUS_ZERO_VARIANCE
                else ""
            )
            + (
                f"; warning: few effective clusters (df < {FEW_CLUSTERS:g}): a few users carry "
                "most impressions, so the result rests on them (small-sample corrected)"
                if test.n_clusters >= 2 and test.dof < FEW_CLUSTERS
                else ""
            ),
        ),
        Criterion(
            "significance",
            bool(significant),
            None if math.isnan(p) else p,
            alpha,
            f"{'always-valid ' if sequential is not None else ''}p = {reason_number(p)} vs alpha "
            f"{alpha:g}; preference for the challenger Δ = {reason_number(pref)}"
            + (
                f", confidence sequence [{reason_number(sequential['ci_low'])}, "
                f"{reason_number(sequential['ci_high'])}]"
                if sequential is not None
                else " (fixed-sample test: decide once, at the planned sample)"
            ),
        ),
    ]
    breached = False
    guard_met = True
    if max_error_rate is not None:
        # Both sides time-uniform (arbiter.stats.guardrails): the rule runs at every look.
        check = check_rate("error_rate", failures, attempts, max_error_rate, alpha=alpha)
        breached = check.status == "breached"
        guard_met = check.status == "met"
        rate = failures / attempts if attempts else math.nan
        criteria.append(
            Criterion(
                "guardrail:error_rate",
                guard_met,
                None if math.isnan(rate) else rate,
                max_error_rate,
                f"challenger failed {failures:,} of {attempts:,} ranking calls: {check.status}"
                + (
                    f" (time-uniform bound [{reason_number(check.ci_low)}, "
                    f"{reason_number(check.ci_high)}] at alpha {alpha:g})"
                    if check.ci_high is not None
                    else ""
                )
                + (" (clearly above the limit)" if breached else ""),
            )
        )
    sample_met = criteria[0].met

    def verdict(decision: Decision) -> Verdict:
        rolled = (CHALLENGER,) if decision == "rollback" else ()
        return Verdict(decision, tuple(criteria), winner=winner, rolled_back=rolled)

    if breached:
        return verdict("rollback")
    if champion_wins and sample_met:
        return verdict("rollback")
    if challenger_wins and sample_met and guard_met:
        return verdict("promote")
    if max_sample is not None and n >= max_sample:
        if challenger_wins:  # guardrail not met, not breached
            detail = (
                f"reached {max_sample:,} impressions with clicks; the challenger wins but its "
                "failure rate is not shown to be within the limit: keep the champion"
            )
            decision: Decision = "keep_champion"
        else:
            detail = (
                f"reached {max_sample:,} impressions with clicks without a significant "
                "challenger win: keep the champion"
            )
            decision = "rollback"
        criteria.append(Criterion("horizon", False, float(n), float(max_sample), detail))
        return verdict(decision)
    return verdict("continue")


__all__ = ["decide_interleaving", "interleaving_decision_p_value"]
