"""What a loop step gets and gives back: the :class:`LoopContext` and the :class:`StepOutcome`.

A leaf module, so that the step functions (:mod:`arbiter.loop.steps`) and the helpers they
call (:mod:`arbiter.loop._drift`) share these types without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from arbiter.config import HomeConfig, ModelConfig
from arbiter.home import Home
from arbiter.loop.record import CycleRecord

if TYPE_CHECKING:
    from arbiter.events import EventStore
    from arbiter.registry import MLflowRegistry


@dataclass(frozen=True)
class LoopContext:
    """What every step needs: the home, its configuration, the registry and the event log."""

    home: Home
    model: str
    config: HomeConfig
    registry: MLflowRegistry
    events: EventStore

    @property
    def model_config(self) -> ModelConfig:
        return self.home.model_config(self.model, self.config)

    @property
    def champion_alias(self) -> str:
        return self.home.aliases(self.model, self.config)[0]

    @property
    def challenger_alias(self) -> str:
        return self.home.aliases(self.model, self.config)[1]


@dataclass(frozen=True)
class StepOutcome:
    """A step's evidence; ``waiting`` when the step must run again later (online test)."""

    evidence: dict[str, Any]
    waiting: bool = False


StepFunction = Callable[[LoopContext, CycleRecord, str], StepOutcome]

__all__ = ["LoopContext", "StepFunction", "StepOutcome"]
