"""From the home's ``decision:`` section to the statistics core's :class:`DecisionPolicy`.

The YAML says what the team wants (level, sample sizes, guardrail limits); the data decide the
rest: the mode (an A/B challenger serves users, a shadow one does not), the metric's kind and
direction (accuracy is a proportion to maximise, a regression loss a mean to minimise) and
the traffic split the SRM check expects.
"""

from __future__ import annotations

from arbiter.analysis.aggregate import Task
from arbiter.config import DecisionConfig
from arbiter.stats.sequential import SequentialConfig
from arbiter.stats.verdict import DecisionPolicy, Guardrail, Mode

ERROR_RATE = "error_rate"
LATENCY_P99 = "latency_p99_ms"
SHADOW_DISCREPANCY = "shadow_discrepancy_rate"


def guardrails_for(config: DecisionConfig, *, mode: Mode, task: Task) -> tuple[Guardrail, ...]:
    """The guardrails that apply to this mode and task (a null limit disables one)."""
    limits = config.guardrails
    rails: list[Guardrail] = []
    if limits.max_error_rate is not None:
        rails.append(Guardrail(ERROR_RATE, limits.max_error_rate, "max"))
    # Only where the challenger serves: a shadow's latency is measured off the request path,
    # in a bounded background pool competing with the served traffic, so it is not the latency
    # users would see (it is still reported, just not used as a gate).
    if limits.max_latency_p99_ratio is not None and mode != "shadow":
        # decide() expresses relative limits as an allowed degradation: ratio 1.5 -> +50 %.
        rails.append(
            Guardrail(LATENCY_P99, limits.max_latency_p99_ratio - 1.0, relative_to_champion=True)
        )
    # Disagreement is only defined for labels: two regressors almost never agree exactly.
    if mode == "shadow" and task == "classification" and limits.max_shadow_discrepancy is not None:
        rails.append(Guardrail(SHADOW_DISCREPANCY, limits.max_shadow_discrepancy, "max"))
    return tuple(rails)


def to_decision_policy(
    config: DecisionConfig,
    *,
    mode: Mode,
    task: Task,
    traffic_weights: tuple[float, float] = (0.5, 0.5),
) -> DecisionPolicy:
    """Build the :class:`DecisionPolicy` for one experiment.

    Parameters
    ----------
    config : DecisionConfig
        The model's ``decision:`` section.
    mode : {"ab", "canary", "shadow", "offline"}
        Whether the challenger serves users.
    task : {"classification", "regression"}
        Accuracy (a proportion, higher is better) or a per-row loss (a mean, lower is better).
    traffic_weights : tuple of float, default (0.5, 0.5)
        Expected (champion, challenger) split for the SRM check.

    Returns
    -------
    DecisionPolicy
        Sequential in ``canary`` mode whatever ``config.sequential`` says (a canary peeks at
        every checkpoint). ``sequential_config`` is always explicit, so the analysis shows the
        very interval the decision used: tuned to ``2 * max_sample_per_arm`` total observations
        when a horizon is planned, else to the core's default.
    """
    seq = (
        SequentialConfig(target_sample_size=2.0 * config.max_sample_per_arm)
        if config.max_sample_per_arm is not None
        else SequentialConfig()
    )
    return DecisionPolicy(
        metric_kind="proportion" if task == "classification" else "mean",
        higher_is_better=task == "classification",
        alpha=config.alpha,
        # A canary looks at its data at every checkpoint: only a sequential test survives that.
        sequential=True if mode == "canary" else config.sequential,
        sequential_config=seq,
        min_sample_per_arm=config.min_sample_per_arm,
        max_sample_per_arm=config.max_sample_per_arm,
        min_detectable_effect=config.mde,
        power=config.power,
        guardrails=guardrails_for(config, mode=mode, task=task),
        traffic_weights=traffic_weights,
        srm_threshold=config.srm_p_threshold,
        mode=mode,
    )


__all__ = [
    "ERROR_RATE",
    "LATENCY_P99",
    "SHADOW_DISCREPANCY",
    "guardrails_for",
    "to_decision_policy",
]
