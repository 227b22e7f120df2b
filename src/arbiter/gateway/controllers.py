"""Background controllers of adaptive strategies, one asyncio task per model that needs one.

A canary's share and a bandit's allocation change while the gateway runs. The routing core
holds no state, so each such strategy has a controller here that reads the shared state (the
registry for a canary, the event log for a bandit), builds the new frozen strategy and swaps
it into the endpoint with one reference assignment — the same way a model swap works. Every
worker process runs its own controllers against the same shared state, so all workers (and
replicas) converge within one controller interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from arbiter.strategies import spec_for

if TYPE_CHECKING:
    from arbiter.gateway.state import GatewayState

log = logging.getLogger(__name__)

Controller = Callable[["GatewayState", str], Awaitable[None]]


async def prime_controllers(state: GatewayState) -> None:
    """Apply every adaptive strategy's stored state once, before the gateway takes traffic."""
    for name, cfg in state.config.models.items():
        prime = spec_for(cfg.experiment.strategy).hook("prime")
        if prime is not None:
            await prime(state, name)


def start_controllers(state: GatewayState) -> list[asyncio.Task[None]]:
    """One task per model whose strategy has a controller (its spec's ``controller``)."""
    tasks = []
    for name, cfg in state.config.models.items():
        # Resolved lazily: a gateway without canaries or bandits never loads their machinery.
        controller: Controller | None = spec_for(cfg.experiment.strategy).hook("run")
        if controller is not None:
            tasks.append(asyncio.create_task(controller(state, name), name=f"controller:{name}"))
    return tasks


async def stop_controllers(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


__all__ = ["prime_controllers", "start_controllers", "stop_controllers"]
