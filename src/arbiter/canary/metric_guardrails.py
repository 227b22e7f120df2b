"""Canary rollback on guardrail metrics: harm to a business metric beyond its margin.

``decision.guardrail_metrics`` names metrics that must not get worse by more than a margin
(non-inferiority: ``{metric: chargebacks, max_increase: 0.0}``). At every canary checkpoint
:func:`metric_guardrail_criteria` measures each of them per unit
(:func:`arbiter.analysis.metrics.metric_statistics`: outcomes attributed to units after their
first exposure, units exposed to both arms left out) and tests one-sidedly whether the
challenger is worse than the champion **by more than the margin**::

    max_increase m:  H0: challenger − champion <= m    vs  H1: > m   (harm = an increase)
    max_decrease m:  H0: challenger − champion >= −m   vs  H1: < −m  (harm = a decrease)

with the one-sided always-valid confidence sequence (the same
:func:`arbiter.stats.verdict.non_inferiority_criterion` ``arbiter analyze`` uses, with a
:class:`~arbiter.stats.sequential.SequentialConfig`), so a canary may look at every
checkpoint, hundreds of times, and still roll an unharmful challenger back with probability at
most ``alpha``. A significant harm is a breached criterion ``guardrail_metric:<name>``:
:func:`with_metric_guardrails` turns the checkpoint's verdict into ``rollback``, and the
canary rolls back. Too few units is not harm (noise never rolls a canary back on its own):
the criterion is met and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from arbiter.analysis.metrics import metric_statistics
from arbiter.config import ModelConfig
from arbiter.events.query import Scope
from arbiter.metric_definitions import MetricGuardrail
from arbiter.stats.sequential import SequentialConfig
from arbiter.stats.verdict import Criterion, Verdict, non_inferiority_criterion
from arbiter.stats.verdict.metric_guardrails import Harm

#: Units per arm before a guardrail metric is tested (the confidence sequence is asymptotic).
MIN_UNITS_PER_ARM = 30


def _harm(rail: MetricGuardrail) -> tuple[Harm, float]:
    """Which direction of challenger − champion is harm for ``rail``, and its margin."""
    if rail.max_increase is not None:
        return "increase", float(rail.max_increase)
    assert rail.max_decrease is not None
    return "decrease", float(rail.max_decrease)


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
    """One criterion per ``decision.guardrail_metrics`` entry; breached ones mean rollback.

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
        From :func:`arbiter.stats.verdict.non_inferiority_criterion` (named
        ``guardrail_metric:<name>``, ``observed`` the one-sided bound): breached = observed
        and not met. Before ``min_units`` per arm: met, ``observed`` None, saying why.
    """
    rails = model_config.decision.guardrail_metrics
    if not rails:
        return []
    champion, challenger = arms[0], arms[1]
    sequential = (
        SequentialConfig()
        if target_sample_size is None
        else SequentialConfig(target_sample_size=target_sample_size)
    )
    out: list[Criterion] = []
    for rail in rails:
        harm, margin = _harm(rail)
        data = metric_statistics(con, scope, model_config, rail.metric, arms=[champion, challenger])
        units = {arm: int(data.units.get(arm, 0)) for arm in (champion, challenger)}
        if min(units.values()) < min_units:
            out.append(
                Criterion(
                    f"guardrail_metric:{rail.metric}",
                    True,
                    None,
                    margin if harm == "increase" else -margin,
                    f"not tested yet: {units[champion]}/{units[challenger]} units "
                    f"(champion/challenger), {min_units} per arm needed",
                )
            )
            continue
        criterion = non_inferiority_criterion(
            rail.metric,
            data.stats[champion],  # type: ignore[arg-type]  # no CUPED here
            data.stats[challenger],  # type: ignore[arg-type]
            margin=margin,
            harm=harm,
            alpha=alpha,
            sequential=sequential,
        )
        crossed = f"; {data.crossed_units} crossed units left out" if data.crossed_units else ""
        detail = f"{criterion.detail} ({units[champion]}/{units[challenger]} units{crossed})"
        out.append(replace(criterion, detail=detail))
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
    harmed = any(c.observed is not None and not c.met for c in criteria)
    return replace(
        verdict,
        reasons=(*verdict.reasons, *criteria),
        decision="rollback" if harmed else verdict.decision,
    )


__all__ = [
    "MIN_UNITS_PER_ARM",
    "metric_guardrail_criteria",
    "with_metric_guardrails",
]
