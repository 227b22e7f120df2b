"""The gateway's monitor: analysis gauges and alerts, refreshed off the request path.

Requests only bump counters. Every ``alerts.check_interval_s`` one background task (its work
in a thread) reads the event log like ``arbiter drift`` and ``arbiter analyze`` do, and sets
``arbiter_drift_score``/``arbiter_drift_detected`` (champion traffic vs its reference
profile), ``arbiter_shadow_discrepancy_rate``, ``arbiter_srm_p_value`` and ``arbiter_verdict``
per experiment; a canary's SRM p-value and verdict come from its own checkpoints
(:func:`observe_checkpoint`). Alerts fire on a *change* (drift appears, SRM appears, the
registry becomes unreachable, shadows start being dropped), not at every check, so a pager
is not re-paged every minute for the same condition. Each worker process keeps its own
memory of what it already reported.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arbiter.gateway.state import GatewayState

log = logging.getLogger(__name__)

#: Decisions the verdict gauge zeroes when another one is current.
DECISIONS = ("promote", "keep_champion", "continue", "rollback", "confirm_with_ab")
#: Strategies whose experiment ``arbiter analyze`` decides (a canary decides at checkpoints).
_ANALYSED = ("shadow", "ab")


class GatewayMonitor:
    """What one worker last saw, so that alerts fire on changes (see the module docstring)."""

    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self.registry_reachable = True
        self.events_writable = True
        self.drifted: dict[str, bool] = {}
        self.srm: dict[str, bool] = {}
        self.shadow_counts: dict[str, tuple[int, int]] = {}
        self.shadow_alerting: dict[str, bool] = {}
        # (model, version) -> its reference profile, or None when it has none (looked up once)
        self.profiles: dict[tuple[str, str], Any] = {}

    # --- cheap checks, on the event loop --------------------------------------------------

    def check_registry(self, reachable: bool) -> None:
        """After each registry poll: alert when the registry becomes unreachable or returns."""
        if reachable == self.registry_reachable:
            return
        self.registry_reachable = reachable
        if reachable:
            self.state.alerts.notify(
                "gateway_recovered",
                "gateway: the model registry is reachable again",
                details={"component": "registry"},
            )
        else:
            self.state.alerts.notify(
                "gateway_degraded",
                "gateway degraded: the model registry is unreachable; serving the models "
                "already loaded",
                details={"component": "registry"},
            )

    def check_storage(self) -> None:
        """Alert when the event log stops (or starts again) taking writes."""
        from arbiter.gateway.storage import storage_health

        health = storage_health(self.state.writer, self.state.store)
        writable = bool(health["writable"])
        if writable == self.events_writable:
            return
        self.events_writable = writable
        if writable:
            self.state.alerts.notify(
                "gateway_recovered",
                "gateway: the event log takes writes again",
                details={"component": "events"},
            )
        else:
            self.state.alerts.notify(
                "gateway_degraded",
                f"gateway degraded: the event log cannot be written ({health['reason']}); "
                "/readyz answers 503",
                details={"component": "events", "reason": health["reason"],
                         "buffered": health["buffered"]},
            )  # fmt: skip

    def check_shadows(self) -> None:
        """Alert when more than ``alerts.shadow_drop_rate`` of the shadows since the last
        check were dropped (and once it falls back under, the next rise alerts again)."""
        settings = self.state.config.alerts
        for name, executor in self.state.shadows.items():
            accepted, dropped = executor.accepted, executor.dropped
            before = self.shadow_counts.get(name, (0, 0))
            self.shadow_counts[name] = (accepted, dropped)
            new_accepted, new_dropped = accepted - before[0], dropped - before[1]
            total = new_accepted + new_dropped
            if total < settings.shadow_min_requests:
                continue
            rate = new_dropped / total
            above = rate > settings.shadow_drop_rate
            if above and not self.shadow_alerting.get(name, False):
                self.state.alerts.notify(
                    "shadow_drop_rate",
                    f"{name}: {rate:.1%} of {total} shadow requests dropped since the last "
                    f"check (threshold {settings.shadow_drop_rate:.1%}); the challenger "
                    "sees less traffic than configured",
                    model=name,
                    details={"drop_rate": rate, "dropped": new_dropped, "mirrored": total,
                             "threshold": settings.shadow_drop_rate},
                )  # fmt: skip
            self.shadow_alerting[name] = above

    # --- analyses, in a worker thread -------------------------------------------------------

    def refresh(self) -> None:
        """Drift per model, then each shadow/A/B experiment's analysis; gauges and alerts."""
        for name, cfg in self.state.config.models.items():
            try:
                self._drift(name)
            except Exception:  # one model's failure must not starve the others' gauges
                log.exception("%s: drift check for the gauges failed", name)
            if cfg.experiment.strategy not in _ANALYSED:
                continue
            try:
                self._analysis(name)
            except Exception as exc:
                from arbiter.errors import NotFoundError

                if isinstance(exc, NotFoundError):  # no traffic yet: nothing to show
                    continue
                log.exception("%s: experiment analysis for the gauges failed", name)

    def _drift(self, name: str) -> None:
        from arbiter.loop._drift import check
        from arbiter.loop.context import LoopContext

        endpoint = self.state.pool.endpoints[name]
        champion = endpoint.models.get(endpoint.config.champion_alias)
        if champion is None:
            return
        ctx = LoopContext(
            self.state.home, name, self.state.config, self.state.pool.registry, self.state.store
        )
        key = (name, champion.version)
        if key not in self.profiles:
            self.profiles[key] = self._profile(name, champion.version)
        if self.profiles[key] is None:
            return  # no reference profile for this version: nothing to compare with
        window = self.state.config.alerts.drift_window
        evidence = check(
            ctx, champion.version, {"drift_window": window}, reference=self.profiles[key]
        )
        if evidence.get("status") != "ok":
            return
        metrics = self.state.metrics
        for feature in evidence["features"]:
            if feature["statistic"] is not None:
                metrics.drift_score.labels(name, feature["column"], feature["method"]).set(
                    feature["statistic"]
                )
        drifted = bool(evidence["drifted"])
        metrics.drift_detected.labels(name).set(1 if drifted else 0)
        if drifted and not self.drifted.get(name, False):
            self.state.alerts.notify(
                "drift_detected",
                f"{name}: drift detected on v{champion.version}'s traffic: {evidence['summary']}",
                model=name,
                details={
                    "version": champion.version,
                    "window": evidence.get("window"),
                    "rows": evidence.get("rows"),
                    "n_drifted": evidence.get("n_drifted"),
                    "n_tested": evidence.get("n_tested"),
                    "drifted_features": [f["column"] for f in evidence["features"] if f["drifted"]],
                    "source": "gateway",
                },
            )
        self.drifted[name] = drifted

    def _profile(self, name: str, version: str) -> Any:
        from arbiter.errors import NotFoundError
        from arbiter.registry.profiles import load_profile

        registry = self.state.pool.registry
        try:
            return load_profile(
                registry.tracking_uri, name, version, registry_uri=registry.registry_uri
            )
        except NotFoundError:
            return None

    def _analysis(self, name: str) -> None:
        from arbiter.analysis import analyze_experiment

        cfg = self.state.config.models[name]
        experiment = cfg.experiment_name(name)
        with self.state.store.connect() as con:
            analysis = analyze_experiment(con, name, experiment, model_config=cfg)
        metrics = self.state.metrics
        agreement = getattr(getattr(analysis, "aggregates", None), "agreement", None)
        if agreement is not None and agreement.pairs > 0:
            metrics.shadow_discrepancy.labels(name, experiment).set(agreement.discrepancy.mean)
        srm = getattr(analysis, "srm", None)
        p_value = getattr(srm, "p_value", None)
        set_experiment_gauges(self.state, name, experiment, analysis.decision, p_value)
        self._srm_alert(name, experiment, p_value, getattr(analysis, "srm_basis", None))

    def _srm_alert(
        self, name: str, experiment: str, p_value: float | None, basis: str | None
    ) -> None:
        if p_value is None or not math.isfinite(p_value):
            return
        threshold = self.state.config.models[name].decision.srm_p_threshold
        mismatch = p_value < threshold
        if mismatch and not self.srm.get(experiment, False):
            self.state.alerts.notify(
                "srm_detected",
                f"{name}: sample ratio mismatch in {experiment} (p = {p_value:.2g} < "
                f"{threshold:g}): the split is not what was configured, so its comparison "
                "cannot be trusted",
                model=name,
                details={"experiment": experiment, "p_value": p_value, "threshold": threshold,
                         "basis": basis},
            )  # fmt: skip
        self.srm[experiment] = mismatch


def set_experiment_gauges(
    state: GatewayState, name: str, experiment: str, decision: str | None, p_value: float | None
) -> None:
    """Set ``arbiter_verdict`` (one-hot) and ``arbiter_srm_p_value`` of one experiment."""
    metrics = state.metrics
    if p_value is not None and math.isfinite(p_value):
        metrics.srm_p_value.labels(name, experiment).set(p_value)
    if decision is None:
        return
    for known in {*DECISIONS, decision}:
        metrics.verdict.labels(name, experiment, known).set(1 if known == decision else 0)


def observe_checkpoint(state: GatewayState, name: str, evidence: dict[str, Any] | None) -> None:
    """A canary checkpoint's SRM p-value and verdict, into the gauges and the SRM alert."""
    monitor: GatewayMonitor | None = getattr(state, "monitor", None)
    if evidence is None or monitor is None:
        return
    experiment = state.config.models[name].experiment_name(name)
    p_value = (evidence.get("srm") or {}).get("p_value")
    set_experiment_gauges(state, name, experiment, evidence.get("verdict"), p_value)
    monitor._srm_alert(name, experiment, p_value, (evidence.get("srm") or {}).get("basis"))


async def run_monitor(state: GatewayState, monitor: GatewayMonitor) -> None:
    """Every ``alerts.check_interval_s``: shadow drops and storage on the loop (counter
    reads), analyses in a thread. Never dies: a failed round is logged and retried."""
    interval = state.config.alerts.check_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            monitor.check_shadows()
            monitor.check_storage()
            await asyncio.to_thread(monitor.refresh)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("gateway monitor round failed")


__all__ = [
    "DECISIONS",
    "GatewayMonitor",
    "observe_checkpoint",
    "run_monitor",
    "set_experiment_gauges",
]
