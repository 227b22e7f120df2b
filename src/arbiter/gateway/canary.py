"""The canary controller of one gateway worker.

Every worker of every replica runs one controller per canary model, against the same stored
state (a registry tag, see :mod:`arbiter.canary.store`). It is two independent loops:

* the **poll loop**: every ``registry.poll_interval_s`` it reads the state and swaps
  ``endpoint.strategy = CanaryStrategy(...)`` at the stored share (one reference
  assignment, as a model swap), so a rollback decided by any worker or operator is applied by
  every worker within one poll interval. Between polls it re-applies the last state as soon
  as the model pool swapped a model (an alias moved), so a newly loaded challenger version
  never inherits the share of the version the canary tested;
* the **checkpoint loop**: every ``experiment.canary.analysis_interval_s`` it runs a
  checkpoint in a thread (DuckDB over the event log, then compare-and-set on a transition),
  when ``may_checkpoint()`` allows it and this worker holds the model's **checkpoint lease**
  (:meth:`~arbiter.canary.service.CanaryService.checkpoint_if_leased`): normally one worker
  of all replicas measures and decides, the others only apply; a lease whose holder died
  expires after three analysis intervals and another worker takes it. The write itself is
  still compare-and-set with a read-back (docs/canary.md: the residual window). A slow or
  failing checkpoint never delays the poll loop; a transition wakes it at once.

Neither loop dies: any error is logged and the next interval tries again. While the registry
is unreachable the worker keeps the share it last applied (a canary does not jump to 0 % or
100 % because the registry blinked).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from arbiter.canary.store import new_holder_id
from arbiter.errors import ArbiterError
from arbiter.gateway.monitoring import observe_checkpoint
from arbiter.routing.canary import CanaryStrategy

if TYPE_CHECKING:
    from arbiter.canary.service import CanaryService, CheckpointResult
    from arbiter.canary.store import Snapshot
    from arbiter.gateway.state import GatewayState

log = logging.getLogger(__name__)

#: Seconds between checks, in the poll loop, of whether the model pool swapped a model.
MODEL_WATCH_S = 0.05

MayCheckpoint = Callable[[], bool]


def _always() -> bool:
    return True


def _service(state: GatewayState, name: str) -> CanaryService:
    from arbiter.canary.service import CanaryService

    return CanaryService(
        state.pool.registry,
        state.home.root,
        name,
        state.config.models[name],
        poll_interval_s=state.config.registry.poll_interval_s,
        alerts=getattr(state, "alerts", None),  # a worker without alerts (tests) has none
    )


def _loaded_version(endpoint: Any, alias: str) -> str | None:
    model = endpoint.models.get(alias)
    return None if model is None else model.version


def apply_snapshot(state: GatewayState, name: str, service: CanaryService, snap: Snapshot) -> None:
    """Swap the endpoint's strategy to the stored share (if it changed) and describe it.

    The challenger gets traffic only while this worker's loaded models are the pair the
    canary tests: the challenger alias's loaded version is the stored challenger version and
    the champion's is the stored champion version. Otherwise (the pool already loaded a new
    challenger or champion before the controller saw the new canary) the share is 0: a
    version never receives the share earned by another one. After a promotion the stored
    share is 100 % until the champion alias serves the promoted version (then 0).
    """
    endpoint = state.pool.endpoints[name]
    loaded_champion = _loaded_version(endpoint, service.champion_alias)
    loaded_challenger = _loaded_version(endpoint, service.challenger_alias)
    share = service.share(snap, loaded_champion)
    stored = service.current(snap)
    mismatch = None
    if share > 0.0:
        if stored is None or loaded_challenger != stored.challenger_version:
            mismatch = f"challenger v{loaded_challenger} loaded"
        elif loaded_champion != stored.champion_version:
            mismatch = f"champion v{loaded_champion} loaded"
        if mismatch is not None:
            share = 0.0
    current = endpoint.strategy
    if not isinstance(current, CanaryStrategy) or current.share != share:
        endpoint.strategy = service.strategy(share)
        if mismatch is not None and stored is not None:
            log.info(
                "%s: canary share now 0 (%s, the canary tests v%s against v%s)",
                name,
                mismatch,
                stored.challenger_version,
                stored.champion_version,
            )
        else:
            log.info("%s: canary share now %.4g", name, share)
    endpoint.canary = {
        "status": "none" if stored is None else stored.state.status,
        "stage": None if stored is None else stored.state.stage,
        "share": share,
        "challenger_version": None if stored is None else stored.challenger_version,
        "state_version": None if stored is None else stored.state.version,
        "read_at": snap.read_at,
        "loaded_versions_match": mismatch is None,
    }
    _set_gauge(state, name, share)


def _set_gauge(state: GatewayState, name: str, share: float) -> None:
    gauge = getattr(state.metrics, "canary_share", None)
    if gauge is not None:
        gauge.labels(name).set(share)


def _count_transition(state: GatewayState, name: str, action: str) -> None:
    counter = getattr(state.metrics, "canary_transitions", None)
    if counter is not None:
        counter.labels(name, action).inc()


def _refresh(state: GatewayState, name: str, service: CanaryService) -> Snapshot:
    snap, _ = service.ensure_started(service.snapshot())
    return snap


async def prime_canary(state: GatewayState, name: str) -> None:
    """Apply the stored share once before the gateway takes traffic (starting the canary
    when its challenger has none yet). On a registry error the share stays at 0 %."""
    try:
        service = _service(state, name)
        snap = await asyncio.to_thread(_refresh, state, name, service)
        apply_snapshot(state, name, service, snap)
    except Exception:  # the gateway must start even if the registry is down
        log.exception("%s: could not read the canary state; serving the champion only", name)


class _Controller:
    """The two loops of one model's controller and what they share (see the module docstring)."""

    def __init__(self, state: GatewayState, name: str, may_checkpoint: MayCheckpoint) -> None:
        self.state = state
        self.name = name
        self.may_checkpoint = may_checkpoint
        self.holder = new_holder_id()  # this worker's identity for the checkpoint lease
        self.poll_s = state.config.registry.poll_interval_s
        self.service: Any = None
        self.snap: Snapshot | None = None  # the last state read, re-applied on model swaps
        self.wake = asyncio.Event()  # set by a checkpoint that made a transition
        self.errors: dict[str, str | None] = {"poll": None, "checkpoint": None}

    def get_service(self) -> CanaryService:
        if self.service is None:
            self.service = _service(self.state, self.name)
        return self.service

    def _failed(self, loop: str, exc: BaseException) -> None:
        """Log a failed step: an ArbiterError once per distinct message, others always."""
        if isinstance(exc, ArbiterError):  # registry down, corrupt state
            if str(exc) != self.errors[loop]:
                log.warning(
                    "%s: canary %s failed (%s); keeping the last share", self.name, loop, exc
                )
            self.errors[loop] = str(exc)
        else:  # never let the controller die: log, keep the last share, retry
            log.error(
                "%s: canary %s failed; keeping the last share",
                self.name,
                loop,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
            self.errors[loop] = "unexpected"

    def _recovered(self, loop: str) -> None:
        if self.errors[loop] is not None:
            log.info("%s: canary %s works again", self.name, loop)
            self.errors[loop] = None

    async def poll_loop(self) -> None:
        loop = asyncio.get_running_loop()
        endpoint = self.state.pool.endpoints[self.name]
        while True:
            self.wake.clear()  # before the read: a transition written meanwhile is in it
            try:
                service = self.get_service()
                snap = await asyncio.to_thread(service.snapshot)
                self.snap = snap
                apply_snapshot(self.state, self.name, service, snap)
                self._recovered("poll")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed("poll", exc)
            # Until the next poll: re-apply the last state when the pool swaps a model (no
            # registry call), and poll at once when a checkpoint made a transition.
            models = endpoint.models
            deadline = loop.time() + self.poll_s
            while (left := deadline - loop.time()) > 0 and not self.wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=min(MODEL_WATCH_S, left))
                if endpoint.models is not models and self.snap is not None:
                    models = endpoint.models
                    try:
                        apply_snapshot(self.state, self.name, self.get_service(), self.snap)
                    except Exception as exc:
                        self._failed("poll", exc)

    def _checkpoint(self, service: CanaryService) -> CheckpointResult | None:
        """In a worker thread: ask the hook, take or renew the lease, then measure."""
        if not self.may_checkpoint():
            return None
        return service.checkpoint_if_leased(self.state.store, self.holder)

    async def checkpoint_loop(self) -> None:
        while True:
            try:
                service = self.get_service()
            except Exception as exc:  # e.g. an invalid plan: logged, retried
                self._failed("checkpoint", exc)
                await asyncio.sleep(self.poll_s)
                continue
            await asyncio.sleep(service.plan.analysis_interval_s)
            try:
                result = await asyncio.to_thread(self._checkpoint, service)
                if result is not None:  # SRM p-value and verdict gauges, the SRM alert
                    observe_checkpoint(self.state, self.name, result.evidence)
                if result is not None and result.record is not None:
                    _count_transition(self.state, self.name, result.action)
                    self.wake.set()
                self._recovered("checkpoint")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed("checkpoint", exc)


async def run_canary_controller(
    state: GatewayState, name: str, *, may_checkpoint: MayCheckpoint | None = None
) -> None:
    """Run the poll loop and the checkpoint loop until cancelled (see the module docstring).

    Parameters
    ----------
    state : GatewayState
        The worker's state (pool, config, event store, metrics).
    name : str
        The canary model.
    may_checkpoint : callable () -> bool, optional
        Asked before every checkpoint; ``False`` skips it (e.g. this worker does not hold
        the checkpoint lease). Default: always ``True``. It is called in the checkpoint's
        worker thread, never on the event loop, so it may block (a registry call to take or
        renew a lease); an exception counts as a failed checkpoint (logged, retried at the
        next interval). The poll loop never asks it: every worker applies the stored state.
    """
    controller = _Controller(state, name, may_checkpoint or _always)
    async with asyncio.TaskGroup() as group:
        group.create_task(controller.poll_loop(), name=f"canary-poll:{name}")
        group.create_task(controller.checkpoint_loop(), name=f"canary-checkpoint:{name}")


__all__ = [
    "MODEL_WATCH_S",
    "MayCheckpoint",
    "apply_snapshot",
    "prime_canary",
    "run_canary_controller",
]
