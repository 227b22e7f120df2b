"""Canary rollback on guardrail metrics: harm to a business metric beyond its margin.

``decision.guardrail_metrics`` names metrics that must not get worse by more than a margin
(non-inferiority: ``{metric: chargebacks, max_increase: 0.0}``). At every canary checkpoint
:func:`metric_guardrail_criteria` measures each of them per unit
(:func:`arbiter.analysis.metrics.metric_statistics`: outcomes attributed to units after their
first exposure, units exposed to both arms left out) and tests one-sidedly whether the
challenger is worse than the champion **by more than the margin**::

    max_increase m:  H0: challenger − champion <= m    vs  H1: > m   (harm = an increase)
    max_decrease m:  H0: challenger − champion >= −m   vs  H1: < −m  (harm = a decrease)

with the one-sided always-valid confidence sequence of :func:`arbiter.stats.sequential.
confidence_sequence` (``null_value`` at the margin), so a canary may look at every checkpoint,
hundreds of times, and still roll an unharmful challenger back with probability at most
``alpha``. A significant harm is a failing criterion named ``guardrail:metric:<name>`` with
the observed difference: :meth:`arbiter.routing.canary.CheckpointInputs.from_verdict` counts
it as a guardrail breach, and a breach rolls the canary back. Too few units, or no data, is
not harm (noise never rolls a canary back on its own): the criterion is met and says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from arbiter.config import ModelConfig
from arbiter.events.query import Scope
from arbiter.metric_definitions import MetricGuardrail
from arbiter.stats.sequential import SequentialConfig, confidence_sequence
from arbiter.stats.verdict import Criterion, Verdict

#: Units per arm before a guardrail metric is tested (the confidence sequence is asymptotic).
MIN_UNITS_PER_ARM = 30
PREFIX = "guardrail:metric:"


def _harm_test(rail: MetricGuardrail) -> tuple[str, float, str]:
    """(alternative, null value, wording) of the one-sided non-inferiority test of ``rail``."""
    if rail.max_increase is not None:
        return "larger", float(rail.max_increase), f"increase beyond +{rail.max_increase:g}"
    assert rail.max_decrease is not None
    return "smaller", -float(rail.max_decrease), f"decrease beyond -{rail.max_decrease:g}"


def metric_guardrail_criteria(
    con: Any,
    scope: Scope,
    model_config: ModelConfig,
    *,
    alpha: float,
    arms: Sequence[str] = ("champion", "challenger"),
    min_units: int = MIN_UNITS_PER_ARM,
    target_sample_size: float | None = None,
) -> list[Criterion]:
    """One criterion per ``decision.guardrail_metrics`` entry; failing ones mean rollback.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        From :meth:`arbiter.events.EventStore.connect` (reads ``served`` and ``outcomes``).
    scope : Scope
        The canary's rows: its model, experiment and start.
    model_config : ModelConfig
        The metric definitions and ``decision.guardrail_metrics``.
    alpha : float
        One-sided level of the always-valid harm test (the chance that a challenger within
        the margin is ever rolled back by it, over all checkpoints).
    arms : (champion arm, challenger arm)
        The arm names in the log.
    min_units : int
        Units per arm before a metric is tested.
    target_sample_size : float, optional
        Units (both arms) at which the confidence sequence is tightest; default: the
        :class:`~arbiter.stats.sequential.SequentialConfig` default.

    Returns
    -------
    list of Criterion
        ``met`` False only where harm beyond the margin is significant; ``observed`` is the
        difference (challenger − champion) once tested, else None.
    """
    rails = model_config.decision.guardrail_metrics
    if not rails:
        return []
    from arbiter.analysis.metrics import metric_statistics

    champion, challenger = arms[0], arms[1]
    out: list[Criterion] = []
    for rail in rails:
        name = PREFIX + rail.metric
        alternative, null, wording = _harm_test(rail)
        data = metric_statistics(con, scope, model_config, rail.metric, arms=[champion, challenger])
        units = {arm: int(data.units.get(arm, 0)) for arm in (champion, challenger)}
        if min(units.values()) < min_units or not all(
            arm in data.stats for arm in (champion, challenger)
        ):
            out.append(
                Criterion(
                    name,
                    True,
                    None,
                    null,
                    f"not tested yet: {units[champion]}/{units[challenger]} units "
                    f"(champion/challenger), {min_units} per arm needed",
                )
            )
            continue
        config = SequentialConfig(
            null_value=null,
            **({} if target_sample_size is None else {"target_sample_size": target_sample_size}),
        )
        result = confidence_sequence(
            data.stats[champion],
            data.stats[challenger],
            alpha=alpha,
            alternative=alternative,  # type: ignore[arg-type]
            config=config,
        )
        bound = result.ci_low if alternative == "larger" else result.ci_high
        harmed = bool(result.significant) and result.status == "ok"
        crossed = f"; {data.crossed_units} crossed units left out" if data.crossed_units else ""
        out.append(
            Criterion(
                name,
                not harmed,
                None if not math.isfinite(result.estimate) else float(result.estimate),
                null,
                f"{rail.metric}: challenger − champion {result.estimate:+.4g} per unit "
                f"(always-valid one-sided bound {bound:+.4g}, p={result.p_value:.3g}, "
                f"{units[champion]}/{units[challenger]} units{crossed}); "
                + (f"harm: {wording}" if harmed else f"no significant {wording}"),
            )
        )
    return out


def with_metric_guardrails(
    verdict: Verdict,
    con: Any,
    scope: Scope,
    model_config: ModelConfig,
    *,
    alpha: float,
) -> Verdict:
    """``verdict`` with the guardrail-metric criteria appended; a harm makes it a rollback.

    The one call a checkpoint makes (:func:`arbiter.canary.measure.measure_checkpoint`):
    unchanged when no guardrail metric is configured.
    """
    criteria = metric_guardrail_criteria(con, scope, model_config, alpha=alpha)
    if not criteria:
        return verdict
    harmed = any(not c.met for c in criteria)
    return replace(
        verdict,
        reasons=(*verdict.reasons, *criteria),
        decision="rollback" if harmed else verdict.decision,
    )


__all__ = [
    "MIN_UNITS_PER_ARM",
    "PREFIX",
    "metric_guardrail_criteria",
    "with_metric_guardrails",
]
