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

if TYPE_CHECKING:
    from arbiter.gateway.state import GatewayState

log = logging.getLogger(__name__)

Controller = Callable[["GatewayState", str], Awaitable[None]]


def _controller_for(strategy: str) -> Controller | None:
    # Imported lazily: a gateway without canaries or bandits never loads their machinery.
    if strategy == "canary":
        from arbiter.gateway.canary import run_canary_controller

        return run_canary_controller
    if strategy == "bandit":
        from arbiter.gateway.bandit import run_bandit_controller

        return run_bandit_controller
    return None


async def prime_controllers(state: GatewayState) -> None:
    """Apply every adaptive strategy's stored state once, before the gateway takes traffic."""
    for name, cfg in state.config.models.items():
        strategy = cfg.experiment.strategy
        if strategy == "canary":
            from arbiter.gateway.canary import prime_canary

            await prime_canary(state, name)
        elif strategy == "bandit":
            from arbiter.gateway.bandit import prime_bandit

            await prime_bandit(state, name)


def start_controllers(state: GatewayState) -> list[asyncio.Task[None]]:
    """One task per model whose strategy has a controller."""
    tasks = []
    for name, cfg in state.config.models.items():
        controller = _controller_for(cfg.experiment.strategy)
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
