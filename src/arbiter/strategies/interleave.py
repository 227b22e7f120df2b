"""``strategy: interleave``: two rankers' lists merged per ``/rank`` request.

``/rank`` scores both rankers and serves their interleaved list (arbiter.gateway.ranking);
every other protocol (``/predict``, invocations) is answered by the champion alone and logged
under strategy ``interleave``: that is what :class:`arbiter.routing.Interleave` routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from arbiter.routing import Interleave
from arbiter.strategies.base import Frozen, OneChallenger, describe_arms
from arbiter.strategies.spec import StrategySpec

if TYPE_CHECKING:
    from arbiter.config import ModelConfig


class InterleaveConfig(Frozen):
    """Interleaving of two rankers (ranking models answer an ordered list of item ids)."""

    method: Literal["team_draft", "balanced"] = "team_draft"
    length: int | None = Field(
        default=10, ge=1, description="Items in the merged list (null: as long as both lists)."
    )


class InterleaveExperimentConfig(OneChallenger):
    """An interleaving test of the champion ranker against the challenger."""

    strategy: Literal["interleave"] = "interleave"
    interleave: InterleaveConfig = InterleaveConfig()


def routing(model: str, config: ModelConfig) -> Interleave:
    """Champion-only routing that carries the merge settings ``/rank`` reads."""
    exp = config.experiment
    assert isinstance(exp, InterleaveExperimentConfig)
    return Interleave(
        config.champion_alias,
        exp.challenger_alias,
        method=exp.interleave.method,
        length=exp.interleave.length,
    )


SPEC = StrategySpec(
    name="interleave",
    config=InterleaveExperimentConfig,
    routing=routing,
    analysis="arbiter.analysis.interleave:analyze_interleave",
    describe=describe_arms,
    # Labels are clicks on items, not a ground truth a ranking could be "accurate" against:
    # which ranker wins is the interleaving analysis's test.
    labels_score_models=False,
)

__all__ = ["SPEC", "InterleaveConfig", "InterleaveExperimentConfig", "routing"]
