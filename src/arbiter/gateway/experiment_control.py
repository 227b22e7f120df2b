"""The A/B experiment controller of one gateway worker: apply split changes, stop and start.

Every worker of every replica runs one per A/B model. Every ``registry.poll_interval_s`` it
reads the model's control tag (:mod:`arbiter.experiments.split_store`, one
``get_registered_model`` call) and, when the split, the status or the experiment name changed,
swaps ``endpoint.strategy`` (one reference assignment, as a model swap) and the experiment name
requests are logged under. So an ``arbiter split`` or an admin call is applied by every worker
within one poll interval, without a restart.

While the registry is unreachable (or the stored control is unreadable) the worker keeps the
split it last applied; an error is logged once per distinct message.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from arbiter.errors import ArbiterError

if TYPE_CHECKING:
    from arbiter.experiments.split_store import Control, ExperimentControl
    from arbiter.gateway.state import GatewayState

log = logging.getLogger(__name__)


def control_service(state: GatewayState, name: str) -> ExperimentControl:
    from arbiter.experiments.split_store import ExperimentControl

    return ExperimentControl(
        state.pool.registry,
        name,
        state.config.models[name],
        poll_interval_s=state.config.registry.poll_interval_s,
    )


def apply_control(
    state: GatewayState, name: str, service: ExperimentControl, control: Control
) -> None:
    """Swap this worker's routing to ``control`` if it differs from what it applies now."""
    import time

    endpoint = state.pool.endpoints[name]
    applied = endpoint.control
    if applied is not None and 0 < control.version < applied["version"]:
        return  # a poll that read before a write this worker already applied (admin call)
    if applied is None or tuple(applied["key"]) != control.key():
        strategy = service.strategy(control)
        endpoint.experiment_override = control.logged_experiment
        endpoint.strategy = strategy
        if applied is not None or control.version:
            log.info(
                "%s: experiment %s %s, split %s",
                name,
                control.experiment,
                control.status,
                strategy.weights(),
            )
    endpoint.control = {
        "key": list(control.key()),
        "experiment": control.experiment,
        "logged_experiment": control.logged_experiment,
        "status": control.status,
        "shares": service.effective_shares(control),
        "version": control.version,
        "updated_at": control.updated_at,
        "read_at": time.time(),
    }


def _refresh(state: GatewayState, name: str, service: ExperimentControl) -> None:
    apply_control(state, name, service, service.read())


async def prime_experiment_control(state: GatewayState, name: str) -> None:
    """Apply the stored control once before the gateway takes traffic."""
    try:
        await asyncio.to_thread(_refresh, state, name, control_service(state, name))
    except Exception:  # the gateway starts with the configured split if the registry is down
        log.exception("%s: could not read the experiment control; using the configured split", name)


async def run_experiment_controller(state: GatewayState, name: str) -> None:
    """Poll the control every registry poll interval until cancelled (module docstring)."""
    service = control_service(state, name)
    last_error: str | None = None
    while True:
        await asyncio.sleep(state.config.registry.poll_interval_s)
        try:
            await asyncio.to_thread(_refresh, state, name, service)
            if last_error is not None:
                log.info("%s: experiment control readable again", name)
            last_error = None
        except asyncio.CancelledError:
            raise
        except ArbiterError as exc:
            if str(exc) != last_error:
                log.warning("%s: experiment control poll failed (%s); keeping the split", name, exc)
            last_error = str(exc)
        except Exception:  # never let the controller die
            log.exception("%s: experiment control poll failed; keeping the split", name)
            last_error = "unexpected"


__all__ = [
    "apply_control",
    "control_service",
    "prime_experiment_control",
    "run_experiment_controller",
]
