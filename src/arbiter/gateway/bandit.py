"""The bandit controller: Thompson-sampling allocation recomputed from the shared event log.

Every ``experiment.bandit.update_interval_s`` seconds, in a worker thread, the controller

1. reads each arm's reward sufficient statistics from the event log with one aggregate query
   (:func:`arbiter.analysis.bandit.bandit_rewards`: this experiment's served, unforced rows
   that did not fail, joined with their latest label; labels that are not valid rewards of the
   declared type are ignored and counted, and a label posted for a failed request is no
   reward), or, with ``reward: {metric: NAME}``, each exposed unit's value of a 0/1 metric
   (:func:`arbiter.analysis.bandit.metric_rewards`);
2. builds the Beta posteriors (:class:`~arbiter.routing.bandit.BanditState`) and the
   allocation: uniform during the warm-up, then the posterior probability of being best,
   floored (:func:`~arbiter.routing.bandit.state_allocation`);
3. swaps ``endpoint.strategy`` for a new :class:`~arbiter.routing.bandit.BanditStrategy` with
   one reference assignment, sets the ``arbiter_bandit_share`` gauge and what ``GET /models``
   shows.

There is no bandit state in memory to keep in sync: the event log, shared by every worker and
replica, is the state. The Monte-Carlo allocation is seeded from the sufficient statistics
(:func:`~arbiter.analysis.bandit.allocation_rng`), so workers reading the same snapshot compute
identical shares. A failing update is logged and retried at the next interval, keeping the
last allocation; the controller never dies.

Cost: one aggregate query that grows with the experiment's rows (a 10 M-row log with 2.5 M
rows in the experiment and 6 M labels: about 2 s on 2 cores; 2 M rows: 0.25 s). When an update
takes long, the pause before the next one grows so the controller uses at most a fifth of a
core.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from arbiter.analysis.bandit import (
    allocation_rng,
    arm_rewards,
    bandit_config,
    bandit_state,
)
from arbiter.routing.bandit import BanditStrategy, state_allocation

if TYPE_CHECKING:
    from arbiter.gateway.state import GatewayState

log = logging.getLogger(__name__)

# Log an allocation change when some arm's share moved by at least this much since the last
# logged allocation (every update is in the gauge and in GET /models anyway).
_LOG_CHANGE = 0.05
# Most of one core the controller's updates may take (see run_bandit_controller).
_MAX_DUTY = 0.2


class BanditController:
    """Recomputes one model's bandit allocation from the event log (one instance per task)."""

    def __init__(self, state: GatewayState, name: str) -> None:
        self.state = state
        self.name = name
        self._logged_shares: dict[str, float] | None = None
        self._invalid = 0
        self._warm: bool | None = None

    def update(self) -> dict[str, Any]:
        """Read the log, recompute the allocation and swap it in; return what was applied.

        Blocking (DuckDB query, Monte-Carlo draws): run it in a thread.
        """
        endpoint = self.state.pool.endpoint(self.name)
        cfg = endpoint.config
        aliases = cfg.arms()
        settings = cfg.experiment.bandit
        experiment = endpoint.experiment
        started = time.perf_counter()
        con = self.state.store.connect()
        try:
            # Labels, or a metric's per-unit values (``reward: {metric: NAME}``).
            rewards, crossed = arm_rewards(con, self.name, experiment, list(aliases), settings, cfg)
        finally:
            con.close()
        config = bandit_config(settings, len(aliases))
        posterior = bandit_state(rewards, config)
        values = state_allocation(posterior, allocation_rng(experiment, posterior))
        shares = {arm: float(v) for arm, v in zip(posterior.arms, values, strict=True)}
        endpoint.strategy = BanditStrategy.from_allocation(aliases, shares)  # atomic swap
        for arm, share in shares.items():
            self.state.metrics.bandit_share.labels(self.name, arm).set(share)
        means = posterior.posterior_mean
        invalid = sum(r.invalid for r in rewards.values())
        summary: dict[str, Any] = {
            "reward": settings.describe_reward(),
            "floor": config.floor,
            "warmup": config.n_warmup,
            "in_warmup": posterior.in_warmup,
            "update_interval_s": settings.update_interval_s,
            "updated_at": time.time(),
            "shares": shares,
            "posterior_mean": {a: float(m) for a, m in zip(posterior.arms, means, strict=True)},
            "rewards": {a: r.rewarded for a, r in rewards.items()},
            "invalid_rewards": invalid,
        }
        if settings.reward_metric is not None:
            summary["crossed_units"] = crossed
        endpoint.bandit = summary  # one reference assignment, read by GET /models
        self._log(summary, invalid, time.perf_counter() - started)
        return summary

    def _log(self, summary: dict[str, Any], invalid: int, elapsed_s: float) -> None:
        if invalid > self._invalid:
            log.warning(
                "%s bandit: %d label(s) are not valid %s rewards and are ignored (%d new)",
                self.name,
                invalid,
                summary["reward"],
                invalid - self._invalid,
            )
        self._invalid = invalid
        warm = not summary["in_warmup"]
        if self._warm is not None and warm and not self._warm:
            log.info("%s bandit: warm-up over, allocation now follows the posteriors", self.name)
        self._warm = warm
        shares: dict[str, float] = summary["shares"]
        last = self._logged_shares
        if last is None or any(abs(shares[a] - last.get(a, 0.0)) >= _LOG_CHANGE for a in shares):
            log.info(
                "%s bandit allocation: %s (posterior means %s; update took %.0f ms)",
                self.name,
                {a: round(s, 3) for a, s in shares.items()},
                {a: round(m, 4) for a, m in summary["posterior_mean"].items()},
                elapsed_s * 1000,
            )
            self._logged_shares = dict(shares)


async def prime_bandit(state: GatewayState, name: str) -> None:
    """Apply the allocation the log already supports before the gateway takes traffic.

    A restarted gateway resumes where the experiment was instead of starting uniform again.
    A failure is logged and the uniform start kept: serving matters more than the allocation.
    """
    try:
        await asyncio.to_thread(BanditController(state, name).update)
    except Exception:
        log.exception("%s bandit: could not compute the initial allocation; starting uniform", name)


async def run_bandit_controller(state: GatewayState, name: str) -> None:
    """Recompute model ``name``'s allocation every ``update_interval_s`` until cancelled."""
    controller = BanditController(state, name)
    interval = state.config.models[name].experiment.bandit.update_interval_s
    pause = interval
    stretched = False
    while True:
        await asyncio.sleep(pause)
        started = time.perf_counter()
        try:
            await asyncio.to_thread(controller.update)
        except Exception:  # never let the controller die: keep the last allocation, retry
            log.exception("%s bandit: allocation update failed; keeping the last one", name)
        took = time.perf_counter() - started
        # On a huge experiment the query can take seconds: stretch the pause so the
        # controller never spends more than _MAX_DUTY of a core on it.
        pause = max(interval, took * (1.0 / _MAX_DUTY - 1.0))
        if pause > interval and not stretched:
            log.info(
                "%s bandit: an update took %.1f s; updates now every %.1f s instead of %.1f s",
                name,
                took,
                pause,
                interval,
            )
        stretched = pause > interval


__all__ = ["BanditController", "prime_bandit", "run_bandit_controller"]
