"""Everything a running gateway holds, built once in the lifespan and read by the routes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from arbiter.alerts.sink import NullAlerts
from arbiter.config import HomeConfig
from arbiter.gateway.dispatch import Dispatcher
from arbiter.gateway.metrics import GatewayMetrics
from arbiter.gateway.pool import ModelPool
from arbiter.gateway.responses import status_for
from arbiter.gateway.shadow import ShadowExecutor
from arbiter.home import Home


@dataclass
class GatewayState:
    """The live objects of one gateway process (no module-level globals)."""

    home: Home
    config: HomeConfig
    pool: ModelPool
    metrics: GatewayMetrics
    writer: Any  # arbiter.events.EventWriter
    store: Any  # arbiter.events.EventStore
    dispatcher: Dispatcher
    shadows: dict[str, ShadowExecutor] = field(default_factory=dict)
    token: str | None = None  # the API token, read once at start-up
    admin_token: str | None = None  # the admin API's token (its own, else the API token)
    recent: Any = None  # arbiter.gateway.recent_requests.RecentRequests: /feedback's checks
    started_at: float = field(default_factory=time.time)
    alerts: Any = field(default_factory=NullAlerts)  # arbiter.alerts.AlertSink (issue 12)
    monitor: Any = None  # arbiter.gateway.monitoring.GatewayMonitor: gauges, change alerts
    startup: dict[str, Any] = field(default_factory=dict)  # StartupTimeline.as_dict()

    def count_ok(self, model: str, arm: str, protocol: str, start: float) -> None:
        self.metrics.requests.labels(model, arm, protocol, "200").inc()
        self.metrics.latency.labels(model, arm).observe(time.perf_counter() - start)

    def count_error(self, model: str, exc: BaseException, protocol: str = "arbiter") -> None:
        status, code = status_for(exc)
        # The dispatcher names the arm of a routed request on its error (a failed model's
        # arm); "none" is left for requests refused before any arm was chosen.
        arm = getattr(exc, "arm", None) or "none"
        self.metrics.requests.labels(model, arm, protocol, str(status)).inc()
        if code != "model_error":  # model errors are counted where they happen
            self.metrics.errors.labels(model, code).inc()
