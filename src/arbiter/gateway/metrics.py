"""Prometheus metrics of one gateway.

Each app gets its own ``CollectorRegistry`` (tests create many apps in one process). With
several uvicorn workers, ``PROMETHEUS_MULTIPROC_DIR`` is set by ``arbiter serve`` and
``/metrics`` aggregates every worker's files.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class GatewayMetrics:
    """The counters and histograms the gateway updates on every request."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        # In multiprocess mode the values live in files; the per-app registry only collects.
        target = None if self.multiprocess else self.registry
        kw = {"registry": target}
        self.requests = Counter(
            "arbiter_requests_total",
            "Requests answered, by model, arm, protocol and HTTP status.",
            ["model", "arm", "protocol", "status"],
            **kw,
        )
        self.latency = Histogram(
            "arbiter_request_latency_seconds",
            "Time from request to response (whole request), by model and arm.",
            ["model", "arm"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.model_latency = Histogram(
            "arbiter_model_latency_seconds",
            "Model prediction time, by model, alias and role (served or shadow).",
            ["model", "alias", "role"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.shadow = Counter(
            "arbiter_shadow_total",
            "Shadow predictions by outcome: ok, error, timeout, dropped (saturated).",
            ["model", "outcome"],
            **kw,
        )
        self.errors = Counter(
            "arbiter_errors_total",
            "Requests that failed, by model and kind (bad_request, model_error, ...).",
            ["model", "kind"],
            **kw,
        )
        self.swaps = Counter(
            "arbiter_model_swaps_total",
            "Hot swaps after a registry alias moved.",
            ["model", "alias"],
            **kw,
        )
        self.registry_up = Gauge(
            "arbiter_registry_up",
            "1 when the last registry poll succeeded, else 0.",
            multiprocess_mode="liveall",
            **kw,
        )
        self.bandit_share = Gauge(
            "arbiter_bandit_share",
            "Traffic share a bandit's controller allocates to each arm (last update).",
            ["model", "arm"],
            multiprocess_mode="livemostrecent",
            **kw,
        )
        self.feedback = Counter(
            "arbiter_feedback_total", "Labels durably stored via /feedback.", **kw
        )
        self.canary_share = Gauge(
            "arbiter_canary_share",
            "Challenger share this worker routes for a canary model.",
            ["model"],
            multiprocess_mode="liveall",
            **kw,
        )
        self.canary_transitions = Counter(
            "arbiter_canary_transitions_total",
            "Canary transitions this worker wrote, by model and action.",
            ["model", "action"],
            **kw,
        )
        self._collect_hooks: list[Callable[[], None]] = []

    def on_collect(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` before every scrape (to copy gauges from live objects)."""
        self._collect_hooks.append(hook)

    def render(self) -> tuple[bytes, str]:
        for hook in self._collect_hooks:
            hook()
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


__all__ = ["LATENCY_BUCKETS", "GatewayMetrics"]
