"""``strategy: bandit``: Thompson sampling over the champion and the challengers.

The gateway starts with a uniform allocation (:func:`routing`); the bandit controller
(``arbiter.gateway.bandit``) recomputes it from the rewards in the event log every
``bandit.update_interval_s`` and swaps in the new one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from arbiter.strategies.base import (
    ExperimentConfig,
    Frozen,
    IsolatedArms,
    SeveralChallengers,
    describe_arms,
)
from arbiter.strategies.spec import Controller, LiveEndpoint, MetricSpec, StrategySpec

if TYPE_CHECKING:
    from arbiter.config import ModelConfig
    from arbiter.routing.bandit import BanditStrategy


class MetricReward(Frozen):
    """Reward each arm with a metric's per-unit values instead of the labels.

    The metric (under the model's ``metrics``) must be 0/1 per unit: an event metric with
    ``aggregate: any`` (conversion). Its value is attributed to a unit after the unit's first
    exposure; the bandit draws an arm per request, so a unit that returned and saw another
    arm is left out (counted as crossed), and metric rewards suit one exposure per unit.
    """

    metric: str = Field(description="Name of a 0/1 metric defined under the model's metrics.")


class BanditSettings(Frozen):
    """Thompson sampling over the champion and the challengers."""

    reward: Literal["binary", "bounded"] | MetricReward = Field(
        default="binary",
        description="binary: labels 0/1; bounded: any reward in [0, 1]; {metric: NAME}: the "
        "per-unit value of a 0/1 metric (conversion).",
    )
    floor: float = Field(default=0.05, ge=0.0, lt=1.0, description="Minimum share of every arm.")
    warmup: int = Field(
        default=100, ge=0, description="Uniform allocation until every arm has this many rewards."
    )
    update_interval_s: float = Field(
        default=10.0, gt=0.0, description="Seconds between allocation updates from the event log."
    )

    @property
    def reward_kind(self) -> Literal["binary", "bounded"]:
        """What the posterior takes: a metric reward is 0/1 per unit (binary)."""
        return "binary" if isinstance(self.reward, MetricReward) else self.reward

    @property
    def reward_metric(self) -> str | None:
        """The metric that rewards the arms, or None when the labels do."""
        return self.reward.metric if isinstance(self.reward, MetricReward) else None

    def describe_reward(self) -> str:
        """``binary``, ``bounded`` or ``metric:NAME`` (status output, logs)."""
        metric = self.reward_metric
        return self.reward_kind if metric is None else f"metric:{metric}"


class BanditExperimentConfig(IsolatedArms, SeveralChallengers):
    """A bandit over the champion and one or several challengers."""

    strategy: Literal["bandit"] = "bandit"
    bandit: BanditSettings = BanditSettings()

    @model_validator(mode="after")
    def _floor(self) -> BanditExperimentConfig:
        n_arms = 1 + len(self.challenger_arms())
        if self.bandit.floor * n_arms > 1.0:
            raise ValueError(
                f"bandit.floor {self.bandit.floor} times {n_arms} arms exceeds 1; "
                f"use at most {1 / n_arms:.4g}"
            )
        return self


def routing(model: str, config: ModelConfig) -> BanditStrategy:
    """A uniform allocation until the controller applies the first update."""
    # Imported here: the bandit core loads numpy, which reading arbiter.yaml does not need.
    from arbiter.routing.bandit import BanditStrategy

    arms = config.arms()
    return BanditStrategy.from_allocation(arms, [1.0 / len(arms)] * len(arms))


def describe(config: ExperimentConfig, endpoint: LiveEndpoint) -> dict[str, Any]:
    """Arms, split and the controller's last update (once there is one)."""
    out = describe_arms(config, endpoint)
    if endpoint.bandit is not None:
        out["bandit"] = endpoint.bandit
    return out


SPEC = StrategySpec(
    name="bandit",
    config=BanditExperimentConfig,
    routing=routing,
    controller=Controller(
        run="arbiter.gateway.bandit:run_bandit_controller",
        prime="arbiter.gateway.bandit:prime_bandit",
    ),
    analysis="arbiter.analysis.bandit:analyze_bandit",
    describe=describe,
    metrics=(
        MetricSpec(
            "bandit_share",
            "gauge",
            "arbiter_bandit_share",
            "Traffic share a bandit's controller allocates to each arm (last update).",
            ("model", "arm"),
            multiprocess_mode="livemostrecent",
        ),
    ),
)

__all__ = [
    "SPEC",
    "BanditExperimentConfig",
    "BanditSettings",
    "MetricReward",
    "describe",
    "routing",
]
