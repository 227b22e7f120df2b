"""Metric definitions of ``arbiter.yaml``: what an experiment is decided on, per model.

A team defines its metrics once, under ``models.<name>.metrics``, and names the one that
decides (``decision.primary_metric``) and the ones that must not get worse
(``decision.guardrail_metrics``)::

    models:
      fraud:
        metrics:
          conversion: {event: purchase, aggregate: any}
          revenue: {event: purchase, aggregate: sum}
          sessions: {event: session, aggregate: count}
          revenue_per_session: {ratio: [revenue, sessions]}
          chargebacks: {event: chargeback, aggregate: count, direction: decrease}
          recall: {label_metric: recall, positive: 1}
        decision:
          primary_metric: conversion
          guardrail_metrics:
            - {metric: chargebacks, max_increase: 0.0}
          cuped: true

Three kinds, told apart by their key (``event``, ``ratio``, ``label_metric``):

:class:`EventMetric`
    Per unit, from its outcome events (``POST /outcomes``) after its first exposure:
    ``any`` (1 if the unit had the event, else 0), ``sum`` of values, or ``count``. Units
    exposed without events count as zeros.
:class:`RatioMetric`
    Ratio of two event metrics' per-unit sums over the units of an arm (revenue per session),
    analysed with the delta method.
:class:`LabelMetric`
    Model quality from labelled predictions (``/feedback``): recall, precision, log loss...
    aggregated per unit like outcomes.

These are plain pydantic models (validated once when the file is read); what each kind means
in SQL lives in :mod:`arbiter.analysis.metrics`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from arbiter.durations import parse_duration
from arbiter.errors import InvalidInputError

METRIC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")

Direction = Literal["increase", "decrease"]
LabelMetricName = Literal[
    "accuracy",
    "recall",
    "precision",
    "f1",
    "log_loss",
    "brier",
    "pr_auc",
    "roc_auc",
    "cost",
    "class_rate",
]
#: Label metrics where lower is better; every other one is higher-is-better by default.
LOWER_IS_BETTER: frozenset[str] = frozenset({"log_loss", "brier", "cost"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_window(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_duration(value, field="window")
    except InvalidInputError as exc:
        raise ValueError(exc.message) from None
    return value


class EventMetric(_Frozen):
    """A per-unit aggregate of one outcome event after the unit's first exposure."""

    kind: Literal["event"] = "event"
    event: str = Field(description="Outcome event name, as sent to POST /outcomes.")
    aggregate: Literal["any", "sum", "count"] = Field(
        default="sum",
        description="any: 1 if the unit had the event; sum: sum of values; count: events.",
    )
    window: str | None = Field(
        default=None,
        description="Attribution window after first exposure (e.g. 7d); default: to the end "
        "of the analysis.",
    )
    direction: Direction = Field(default="increase", description="Which way is better.")

    @field_validator("window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        return _check_window(value)


class RatioMetric(_Frozen):
    """Ratio of two event metrics' sums (e.g. revenue per session), by the delta method."""

    kind: Literal["ratio"] = "ratio"
    ratio: tuple[str, str] = Field(description="[numerator metric, denominator metric].")
    direction: Direction = "increase"


class LabelMetric(_Frozen):
    """A model-quality metric computed from labelled predictions, per unit."""

    kind: Literal["label"] = "label"
    label_metric: LabelMetricName
    positive: str | int | float | bool | None = Field(
        default=None,
        description="The positive class (recall, precision, f1, pr_auc, roc_auc, class_rate).",
    )
    costs: dict[str, dict[str, float]] | None = Field(
        default=None,
        description="cost: cost matrix {actual: {predicted: cost}}; missing pairs cost 0.",
    )
    direction: Direction | None = Field(
        default=None, description="Default: decrease for log_loss, brier and cost."
    )

    @property
    def better(self) -> Direction:
        """The direction that is better, with the metric's default filled in."""
        if self.direction is not None:
            return self.direction
        return "decrease" if self.label_metric in LOWER_IS_BETTER else "increase"


def _metric_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return getattr(value, "kind", None)
    if isinstance(value, dict):
        for key, kind in (("event", "event"), ("ratio", "ratio"), ("label_metric", "label")):
            if key in value:
                return kind
        return value.get("kind")
    return None


MetricDefinition = Annotated[
    Annotated[EventMetric, Tag("event")]
    | Annotated[RatioMetric, Tag("ratio")]
    | Annotated[LabelMetric, Tag("label")],
    Discriminator(
        _metric_kind,
        custom_error_type="metric_kind",
        custom_error_message="a metric needs one of the keys event, ratio or label_metric",
    ),
]


class MetricGuardrail(_Frozen):
    """A metric that must not get worse than a margin (non-inferiority).

    ``max_increase`` for a metric where an increase is harm (chargebacks), ``max_decrease``
    where a decrease is (revenue); in the metric's units per unit (absolute difference of
    per-unit means, or of ratios). Harm beyond the margin blocks a promote and rolls a canary
    back.
    """

    metric: str
    max_increase: float | None = Field(default=None, ge=0.0)
    max_decrease: float | None = Field(default=None, ge=0.0)

    @model_validator(mode="after")
    def _one_margin(self) -> MetricGuardrail:
        if (self.max_increase is None) == (self.max_decrease is None):
            raise ValueError(
                f"guardrail metric {self.metric!r}: give exactly one of max_increase and "
                "max_decrease"
            )
        return self


def check_metrics(
    metrics: dict[str, EventMetric | RatioMetric | LabelMetric],
    primary: str | None,
    guardrails: tuple[MetricGuardrail, ...],
) -> None:
    """Raise ``ValueError`` unless names are valid and every reference resolves."""
    for name, metric in metrics.items():
        if not METRIC_NAME.match(name):
            raise ValueError(f"metric name {name!r} must match {METRIC_NAME.pattern}")
        if isinstance(metric, RatioMetric):
            for part in metric.ratio:
                if not isinstance(metrics.get(part), EventMetric):
                    raise ValueError(
                        f"metrics.{name}: ratio part {part!r} must be an event metric defined "
                        f"under metrics (defined: {', '.join(sorted(metrics)) or 'none'})"
                    )
    if primary is not None and primary not in metrics:
        raise ValueError(
            f"decision.primary_metric {primary!r} is not defined under metrics "
            f"(defined: {', '.join(sorted(metrics)) or 'none'})"
        )
    for rail in guardrails:
        if rail.metric not in metrics:
            raise ValueError(
                f"decision.guardrail_metrics: {rail.metric!r} is not defined under metrics "
                f"(defined: {', '.join(sorted(metrics)) or 'none'})"
            )


__all__ = [
    "LOWER_IS_BETTER",
    "METRIC_NAME",
    "Direction",
    "EventMetric",
    "LabelMetric",
    "LabelMetricName",
    "MetricDefinition",
    "MetricGuardrail",
    "RatioMetric",
    "check_metrics",
]
