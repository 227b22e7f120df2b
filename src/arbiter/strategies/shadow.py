"""``strategy: shadow``: the champion answers; a sample of requests is mirrored to the challenger.

The mirrored predictions are logged beside the champion's (role ``shadow``), so the analysis
compares both models on the same rows (paired tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from arbiter.routing import Shadow
from arbiter.strategies.base import ExperimentConfig, OneChallenger, describe_arms
from arbiter.strategies.spec import LiveEndpoint, StrategySpec

if TYPE_CHECKING:
    from arbiter.config import ModelConfig


class ShadowExperimentConfig(OneChallenger):
    """A shadow test: the challenger scores a sample of the champion's requests off the path."""

    strategy: Literal["shadow"] = "shadow"
    shadow_sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    shadow_max_in_flight: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Most shadows of this model in flight; more are dropped and counted. "
        "Default (null): 2 × max_batch_size × shadow_workers with the process executor and "
        "batching on (a worker's next batch queues while it scores), else 8.",
    )
    shadow_timeout_s: float = Field(default=5.0, gt=0.0)
    shadow_executor: Literal["process", "thread"] = Field(
        default="process",
        description="process: low-priority worker processes (a CPU-bound challenger cannot "
        "slow the champion); thread: threads in the gateway process (light challengers).",
    )
    shadow_workers: int = Field(default=1, ge=1, le=64, description="process: worker count.")
    shadow_hang_s: float | None = Field(
        default=None,
        gt=0.0,
        description="process: a worker whose call has run this long is killed and replaced "
        "(logged, counted in arbiter_shadow_worker_restarts_total), so a hung challenger "
        "cannot hold the shadow slots. Default (null): 3 × shadow_timeout_s.",
    )

    @model_validator(mode="after")
    def _hang_after_timeout(self) -> ShadowExperimentConfig:
        if self.shadow_hang_s is not None and self.shadow_hang_s < self.shadow_timeout_s:
            raise ValueError("shadow_hang_s must be >= shadow_timeout_s")
        return self


def routing(model: str, config: ModelConfig) -> Shadow:
    """The champion serves; ``shadow_sample_rate`` of requests name the challenger to mirror to."""
    exp = config.experiment
    assert isinstance(exp, ShadowExperimentConfig)
    return Shadow(config.champion_alias, exp.challenger_alias, exp.shadow_sample_rate)


def describe(config: ExperimentConfig, endpoint: LiveEndpoint) -> dict[str, Any]:
    """Arms, split and the sample rate."""
    assert isinstance(config, ShadowExperimentConfig)
    return {**describe_arms(config, endpoint), "shadow_sample_rate": config.shadow_sample_rate}


SPEC = StrategySpec(
    name="shadow",
    config=ShadowExperimentConfig,
    routing=routing,
    analysis="arbiter.analysis.analyze:analyze_shadow",
    describe=describe,
    report="arbiter.report.summary:shadow_section",
)

__all__ = ["SPEC", "ShadowExperimentConfig", "describe", "routing"]
