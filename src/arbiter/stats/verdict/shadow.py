"""The classic shadow-deployment heuristic, an opt-in preset.

:func:`decide_shadow_classic` is the simpler rule some teams use for shadow deployments
(challenger more accurate, discrepancy < 30 %, challenger more confident on > 50 % of
disagreements). It compares point estimates with no error control, so it is an opt-in preset;
the default for shadow traffic is a paired test passed to :func:`arbiter.stats.verdict.decide`.
"""

from __future__ import annotations

from arbiter.errors import InvalidInputError
from arbiter.stats.sufficient import ProportionStatistic
from arbiter.stats.verdict.policy import ShadowClassicPolicy, ShadowObservations
from arbiter.stats.verdict.types import Criterion, Decision, Verdict


def decide_shadow_classic(
    observations: ShadowObservations, policy: ShadowClassicPolicy | None = None
) -> Verdict:
    """The classic shadow preset: promote when three point-estimate criteria hold.

    Challenger accuracy > champion accuracy, discrepancy rate < ``max_discrepancy``, and
    challenger more confident on > ``min_confident_share`` of disagreements → ``promote``;
    fewer than ``min_labelled`` labelled requests → ``continue``; otherwise
    ``keep_champion``. A shadow challenger serves nobody, so this never rolls back. No
    error control: prefer :func:`decide` with a paired test.

    Parameters
    ----------
    observations : ShadowObservations
        The four counts.
    policy : ShadowClassicPolicy, optional
        Thresholds (defaults 30 % / 50 %).

    Returns
    -------
    Verdict
    """
    policy = policy or ShadowClassicPolicy()
    for name in (
        "champion_accuracy",
        "challenger_accuracy",
        "discrepancy",
        "challenger_more_confident",
    ):
        stat = getattr(observations, name)
        if not isinstance(stat, ProportionStatistic) or not (0 <= stat.successes <= stat.n):
            raise InvalidInputError(
                f"{name} must be a ProportionStatistic with 0 <= successes <= n", field=name
            )
    o = observations
    n_labelled = min(o.champion_accuracy.n, o.challenger_accuracy.n)
    enough = n_labelled >= policy.min_labelled and o.discrepancy.n > 0
    reasons = [
        Criterion(
            "min_labelled",
            enough,
            float(n_labelled),
            float(policy.min_labelled),
            f"{n_labelled} labelled requests per model, {o.discrepancy.n} compared",
        )
    ]
    if not enough:
        return Verdict("continue", tuple(reasons), policy.min_labelled - n_labelled)
    acc_c, acc_t = o.champion_accuracy.mean, o.challenger_accuracy.mean
    disc = o.discrepancy.mean
    # With no disagreements there is nothing to be more confident about: criterion holds.
    conf = o.challenger_more_confident.mean if o.challenger_more_confident.n else 1.0
    reasons += [
        Criterion(
            "challenger_more_accurate",
            acc_t > acc_c,
            acc_t,
            acc_c,
            f"accuracy {acc_t:.4f} vs champion {acc_c:.4f}",
        ),
        Criterion(
            "discrepancy",
            disc < policy.max_discrepancy,
            disc,
            policy.max_discrepancy,
            f"models disagree on {disc:.1%} of requests",
        ),
        Criterion(
            "challenger_more_confident",
            conf > policy.min_confident_share,
            conf,
            policy.min_confident_share,
            f"challenger more confident on {conf:.1%} of "
            f"{o.challenger_more_confident.n} disagreements",
        ),
    ]
    decision: Decision = "promote" if all(c.met for c in reasons) else "keep_champion"
    return Verdict(decision, tuple(reasons))


__all__ = ["decide_shadow_classic"]
