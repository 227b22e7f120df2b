"""Bandits: which arm leads, by posterior probability of being best, and what to do about it.

Bandit-allocated data are adaptively sampled, so no frequentist test is valid on them
(Hadad et al. 2021; Kasy & Sautmann 2021); the posterior probability that each arm is best is
a Bayesian statement (the allocation depends only on observed data, so it drops out of the
likelihood). A bandit therefore never promotes: a challenger that leads is confirmed by a
fixed-split A/B test (decision ``confirm_with_ab``, which only this function returns).
"""

from __future__ import annotations

from collections.abc import Mapping

from arbiter.errors import InvalidInputError
from arbiter.stats.verdict.types import Criterion, Verdict

P_BEST_THRESHOLD = 0.95
"""Posterior probability of being best at which an arm is said to lead."""


def decide_bandit(
    p_best: Mapping[str, float],
    rewards: Mapping[str, int],
    *,
    warmup: int,
    champion: str = "champion",
    threshold: float = P_BEST_THRESHOLD,
) -> Verdict:
    """Decide what a bandit experiment has found.

    * ``continue`` during the warm-up (some arm has fewer than ``warmup`` rewards), or while
      no arm's P(best) reaches ``threshold``;
    * ``keep_champion`` when the champion leads;
    * ``confirm_with_ab`` when a challenger leads: the bandit found a candidate, and a
      fixed-split A/B test of it against the champion (``strategy: ab``) gives the unbiased
      effect estimate and the error-controlled decision that promotion needs.

    Parameters
    ----------
    p_best : mapping of str to float
        Posterior probability that each arm has the highest mean reward.
    rewards : mapping of str to int
        Valid rewards observed per arm (what the warm-up counts).
    warmup : int
        Rewards every arm needs before the allocation adapts.
    champion : str, default="champion"
        The champion's arm name.
    threshold : float, default=P_BEST_THRESHOLD
        P(best) at which an arm leads.

    Returns
    -------
    Verdict
        ``winner`` is the leading arm (also with ``keep_champion``); None with ``continue``.
    """
    if not p_best:
        raise InvalidInputError("p_best needs one probability per arm", field="p_best")
    if set(rewards) != set(p_best):
        raise InvalidInputError(
            f"rewards and p_best must name the same arms, got {sorted(rewards)} and "
            f"{sorted(p_best)}",
            field="rewards",
        )
    short = [f"{a} ({n})" for a, n in rewards.items() if n < warmup]
    fewest = min(rewards.values())
    if short:
        reason = (
            f"warm-up: every arm needs {warmup} rewards before the allocation adapts; "
            f"short: {', '.join(short)}"
        )
        return Verdict(
            "continue", (Criterion("warmup", False, float(fewest), float(warmup), reason),)
        )
    reasons = [
        Criterion(
            "warmup",
            True,
            float(fewest),
            float(warmup),
            f"warm-up done: every arm has at least {warmup} rewards",
        )
    ]
    best = max(p_best, key=p_best.__getitem__)
    p = p_best[best]
    if p < threshold:
        reasons.append(
            Criterion(
                "leader",
                False,
                p,
                threshold,
                f"no arm is best with posterior probability ≥ {threshold:.0%} "
                f"(highest: {best}, {p:.1%}); keep collecting rewards",
            )
        )
        return Verdict("continue", tuple(reasons))
    reasons.append(
        Criterion("leader", True, p, threshold, f"{best} leads: posterior P(best) = {p:.1%} ≥ "
                  f"{threshold:.0%}")
    )  # fmt: skip
    if best == champion:
        reasons.append(
            Criterion(
                "champion_leads",
                True,
                None,
                None,
                "the champion is the best arm; stop the bandit and keep the champion",
            )
        )
        return Verdict("keep_champion", tuple(reasons), winner=best)
    reasons.append(
        Criterion(
            "champion_leads",
            False,
            None,
            None,
            f"confirm before promoting: run a fixed-split A/B test of {best} against the "
            "champion (strategy: ab); bandit data do not support a frequentist test",
        )
    )
    return Verdict("confirm_with_ab", tuple(reasons), winner=best)


__all__ = ["P_BEST_THRESHOLD", "decide_bandit"]
