"""``strategy: canary``: the challenger's share ramps up in stages, checked at every checkpoint.

The gateway starts at 0 % (:func:`routing`); the canary controller
(``arbiter.gateway.canary``) reads the shared canary state and swaps in the current stage's
split, and the checkpoints promote or roll back by themselves (``arbiter canary status``), so
``arbiter analyze`` has nothing to decide here.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from arbiter.strategies.base import (
    ExperimentConfig,
    Frozen,
    IsolatedArms,
    OneChallenger,
    describe_arms,
)
from arbiter.strategies.spec import Controller, LiveEndpoint, MetricSpec, StrategySpec

if TYPE_CHECKING:
    from arbiter.config import ModelConfig
    from arbiter.routing.canary import CanaryStrategy


class CanaryStageConfig(Frozen):
    """One stage of a canary plan (see arbiter.routing.canary.CanaryStage)."""

    share: float = Field(gt=0.0, le=1.0, description="Challenger share during the stage.")
    min_requests: int = Field(default=0, ge=0, description="Challenger requests in the stage.")
    min_duration_s: float = Field(default=0.0, ge=0.0, description="Seconds the stage lasts.")


class CanaryRampConfig(Frozen):
    """A time-based linear ramp instead of explicit stages."""

    start_share: float = Field(default=0.0, ge=0.0, lt=1.0)
    target_share: float = Field(default=1.0, gt=0.0, le=1.0)
    duration_s: float = Field(gt=0.0, description="Seconds from start_share to target_share.")
    step_s: float = Field(gt=0.0, description="The share changes every step_s seconds.")
    min_requests: int = Field(default=0, ge=0, description="Challenger requests per step.")

    @model_validator(mode="after")
    def _shape(self) -> CanaryRampConfig:
        if self.start_share >= self.target_share:
            raise ValueError("start_share must be below target_share")
        if self.step_s > self.duration_s:
            raise ValueError("step_s must be <= duration_s")
        return self


class CanaryConfig(Frozen):
    """How a canary ramps, how often it is checked, and what a rollback does."""

    stages: list[CanaryStageConfig] | None = Field(
        default=None,
        description="Explicit plan; default 1% -> 5% -> 25% -> 50% -> 100% (docs/canary.md).",
    )
    ramp: CanaryRampConfig | None = Field(
        default=None, description="Time-based linear ramp instead of stages."
    )
    analysis_interval_s: float = Field(
        default=60.0, gt=0.0, description="Seconds between checkpoint analyses."
    )
    require_primary_sample: bool = Field(
        default=True,
        description="Promote only once the primary metric reached decision.min_sample_per_arm "
        "labelled rows per arm; false for models without labels (guardrails only).",
    )
    max_prediction_psi: float | None = Field(
        default=0.25,
        gt=0.0,
        description="Guardrail: PSI of the challenger's predictions against the champion's "
        "since the canary started (null disables).",
    )
    holdback: float = Field(
        default=0.05,
        ge=0.0,
        lt=0.5,
        description="Share of units the champion keeps during the last stage, so harm is "
        "still tested on concurrent rows; 0 disables (the last stage routes 100% and harm "
        "is tested on the earlier stages only).",
    )
    max_harm: float | None = Field(
        default=None,
        gt=0.0,
        description="Non-inferiority margin (absolute, metric units: accuracy points as a "
        "fraction, or loss units): promote only once the always-valid bound of challenger - "
        "champion excludes a harm of max_harm; null promotes when no harm was detected.",
    )
    on_rollback: Literal["archive", "flag"] = Field(
        default="archive",
        description="archive: remove the challenger alias and tag the version archived; "
        "flag: only tag the version.",
    )

    @model_validator(mode="after")
    def _one_plan(self) -> CanaryConfig:
        if self.stages is not None and self.ramp is not None:
            raise ValueError("give either stages or ramp, not both")
        if self.stages is not None:
            if not self.stages:
                raise ValueError("stages must not be empty")
            shares = [s.share for s in self.stages]
            if any(b <= a for a, b in itertools.pairwise(shares)):
                raise ValueError("stage shares must be strictly increasing")
            if shares[-1] != 1.0:
                raise ValueError("the last stage must have share 1.0 (the promotion stage)")
        return self


class CanaryExperimentConfig(IsolatedArms, OneChallenger):
    """A canary release of the challenger."""

    strategy: Literal["canary"] = "canary"
    fallback_to_champion: bool = Field(
        default=False,
        description="A failed or timed-out challenger call answered by the champion instead "
        "of a 500/504. Off by default for a canary: its share is the blast radius it accepts, "
        "and the guardrail counts the failure either way.",
    )
    canary: CanaryConfig = CanaryConfig()


def routing(model: str, config: ModelConfig) -> CanaryStrategy:
    """0 % to the challenger until the controller applies the stored canary state."""
    # Imported here, not at the top: the canary core loads the statistics (scipy), which
    # reading arbiter.yaml does not need. (No cycle: arbiter.routing imports no strategy.)
    from arbiter.routing.canary import CanaryStrategy

    exp = config.experiment
    assert isinstance(exp, CanaryExperimentConfig)
    return CanaryStrategy(
        config.champion_alias, exp.challenger_alias, 0.0, salt=config.experiment_name(model)
    )


def describe(config: ExperimentConfig, endpoint: LiveEndpoint) -> dict[str, Any]:
    """Arms, split and the controller's last view of the canary (status, stage, share)."""
    return {**describe_arms(config, endpoint), "canary": endpoint.canary or {"status": "unknown"}}


SPEC = StrategySpec(
    name="canary",
    config=CanaryExperimentConfig,
    routing=routing,
    controller=Controller(
        run="arbiter.gateway.canary:run_canary_controller",
        prime="arbiter.gateway.canary:prime_canary",
    ),
    describe=describe,
    metrics=(
        MetricSpec(
            "canary_share",
            "gauge",
            "arbiter_canary_share",
            "Challenger share this worker routes for a canary model.",
            ("model",),
            multiprocess_mode="liveall",
        ),
        MetricSpec(
            "canary_transitions",
            "counter",
            "arbiter_canary_transitions_total",
            "Canary transitions this worker wrote, by model and action.",
            ("model", "action"),
        ),
    ),
)

__all__ = [
    "SPEC",
    "CanaryConfig",
    "CanaryExperimentConfig",
    "CanaryRampConfig",
    "CanaryStageConfig",
    "describe",
    "routing",
]
