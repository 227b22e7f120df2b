"""``strategy: ab``: units split between the champion and one or several challengers (A/B/n).

The split is a sticky hash of the unit id salted with the experiment name, so a user keeps
their arm. One challenger (``challenger_alias``, ``challenger_share``) is an A/B test; a list
in ``challengers`` (each with its ``share``) is an A/B/n test whose arms are named after their
aliases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from arbiter.routing import ABTest, MultiArmTest
from arbiter.strategies.base import IsolatedArms, SeveralChallengers, describe_arms
from arbiter.strategies.spec import StrategySpec

if TYPE_CHECKING:
    from arbiter.config import ModelConfig


class ABExperimentConfig(IsolatedArms, SeveralChallengers):
    """An A/B or A/B/n test."""

    strategy: Literal["ab"] = "ab"
    challenger_share: float = Field(
        default=0.5, ge=0.0, le=1.0, description="A/B: share of units sent to the challenger."
    )

    @model_validator(mode="after")
    def _shares(self) -> ABExperimentConfig:
        if sum(c.share for c in self.challengers) > 1.0 + 1e-9:
            raise ValueError("challenger shares sum to more than 1")
        return self


def routing(model: str, config: ModelConfig) -> ABTest | MultiArmTest:
    """The sticky split, salted with the experiment name."""
    exp = config.experiment
    assert isinstance(exp, ABExperimentConfig)
    salt = config.experiment_name(model)
    if exp.challengers:
        return MultiArmTest(
            config.champion_alias,
            tuple((c.alias, c.alias, c.share) for c in exp.challengers),
            salt=salt,
        )
    return ABTest(config.champion_alias, exp.challenger_alias, exp.challenger_share, salt=salt)


SPEC = StrategySpec(
    name="ab",
    config=ABExperimentConfig,
    routing=routing,
    analysis="arbiter.analysis.ab:analyze_ab",
    describe=describe_arms,
)

__all__ = ["SPEC", "ABExperimentConfig", "routing"]
