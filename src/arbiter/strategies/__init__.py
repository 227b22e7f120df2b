"""Strategies, one registered spec each: how a model's traffic is shared with challengers.

Each module declares one :class:`~arbiter.strategies.spec.StrategySpec`; the registry lines
below make them known. A new strategy is one new module and one ``register`` line
(docs/design/strategies.md). Everything else (the gateway, the analysis, the report, the
CLI) looks a strategy up with :func:`spec_for` instead of switching on its name.
"""

from __future__ import annotations

from arbiter.strategies import ab, bandit, canary, interleave, none, shadow
from arbiter.strategies.base import ExperimentConfig
from arbiter.strategies.spec import (
    SPECS,
    Controller,
    Hook,
    MetricSpec,
    StrategySpec,
    register,
    resolve_hook,
    spec_for,
)

# The registry: one line per strategy.
register(none.SPEC)
register(shadow.SPEC)
register(ab.SPEC)
register(canary.SPEC)
register(interleave.SPEC)
register(bandit.SPEC)

__all__ = [
    "SPECS",
    "Controller",
    "ExperimentConfig",
    "Hook",
    "MetricSpec",
    "StrategySpec",
    "register",
    "resolve_hook",
    "spec_for",
]
