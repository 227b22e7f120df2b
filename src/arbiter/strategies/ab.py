"""``strategy: ab``: units split between the champion and one or several challengers (A/B/n).

The split is a sticky hash of the unit id salted with the experiment name, so a user keeps
their arm. One challenger (``challenger_alias``, ``challenger_share``) is an A/B test; a list
in ``challengers`` (each with its ``share``) is an A/B/n test whose arms are named after their
aliases.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from arbiter.routing import ABTest, MultiArmTest, slot_layout
from arbiter.strategies.base import IsolatedArms, SeveralChallengers, describe_arms
from arbiter.strategies.spec import Controller, LiveEndpoint, StrategySpec

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


def routing_with_shares(
    config: ModelConfig, shares: Mapping[str, float], salt: str
) -> ABTest | MultiArmTest:
    """The split at changed ``shares`` (challenger arm -> share), salted with ``salt``.

    The challengers keep the slots of their *configured* shares
    (:func:`~arbiter.routing.slot_layout`), so a changed share only moves units between the
    champion and that challenger (``arbiter split``, docs/analysis.md).
    """
    exp = config.experiment
    assert isinstance(exp, ABExperimentConfig)
    if exp.challengers:
        layout = slot_layout([c.share for c in exp.challengers])
        return MultiArmTest(
            config.champion_alias,
            tuple((c.alias, c.alias, shares.get(c.alias, c.share)) for c in exp.challengers),
            salt=salt,
            layout=layout,
        )
    share = shares.get("challenger", exp.challenger_share)
    return ABTest(config.champion_alias, exp.challenger_alias, share, salt=salt)


def describe_ab(config: ABExperimentConfig, endpoint: LiveEndpoint) -> dict[str, Any]:
    """``GET /models``: arms, the live split and the experiment's control (running/stopped)."""
    out = describe_arms(config, endpoint)
    control = getattr(endpoint, "control", None)
    out["status"] = "running" if control is None else control["status"]
    if control is not None:
        out["control"] = control
    return out


SPEC = StrategySpec(
    name="ab",
    config=ABExperimentConfig,
    routing=routing,
    controller=Controller(
        run="arbiter.gateway.experiment_control:run_experiment_controller",
        prime="arbiter.gateway.experiment_control:prime_experiment_control",
    ),
    analysis="arbiter.analysis.ab:analyze_ab",
    describe=describe_ab,
)

__all__ = ["SPEC", "ABExperimentConfig", "describe_ab", "routing", "routing_with_shares"]
