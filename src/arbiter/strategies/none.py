"""``strategy: none``: no experiment, the champion answers everything."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from arbiter.routing import ChampionOnly
from arbiter.strategies.base import ExperimentConfig
from arbiter.strategies.spec import StrategySpec

if TYPE_CHECKING:
    from arbiter.config import ModelConfig


class NoneExperimentConfig(ExperimentConfig):
    """The champion alone: only the keys every strategy shares."""

    strategy: Literal["none"] = "none"


def routing(model: str, config: ModelConfig) -> ChampionOnly:
    """Every request to the champion."""
    return ChampionOnly(config.champion_alias)


SPEC = StrategySpec(name="none", config=NoneExperimentConfig, routing=routing)

__all__ = ["SPEC", "NoneExperimentConfig", "routing"]
