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

from arbiter.strategies import SPECS, MetricSpec

#: Rows (or requests) per batched model call: powers of two up to well past the default 32.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)
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
            "Requests that failed, by model and kind (bad_request, model_error, ...); a failed "
            "model call is counted even when the champion answered in its place.",
            ["model", "kind"],
            **kw,
        )
        # Deadlines and fallbacks (docs/canary.md, "Deadlines and isolation").
        self.arm_errors = Counter(
            "arbiter_model_errors_total",
            "Failed model calls (model_error, model_timeout) by model and the arm whose model "
            "failed, whether or not the champion answered in its place.",
            ["model", "arm", "kind"],
            **kw,
        )
        self.fallbacks = Counter(
            "arbiter_fallbacks_total",
            "Requests the champion answered because the assigned arm's model failed, by model "
            "and that arm (experiment.fallback_to_champion).",
            ["model", "arm"],
            **kw,
        )
        self.shadow_restarts = Counter(
            "arbiter_shadow_worker_restarts_total",
            "Shadow worker processes replaced by the watchdog (a call hung past "
            "shadow_hang_s, or the process died).",
            ["model"],
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
        self.feedback = Counter(
            "arbiter_feedback_total", "Labels durably stored via /feedback.", **kw
        )
        self.outcomes = Counter(
            "arbiter_outcomes_total", "Outcome events durably stored via /outcomes.", **kw
        )
        # Refreshed off the request path by the monitor (arbiter.gateway.monitoring) and the
        # canary checkpoints: analyses, not request counts (issue 12).
        self.drift_score = Gauge(
            "arbiter_drift_score",
            "Drift statistic of one feature (its method's: PSI, KS D, ...) of the champion's "
            "served traffic against its reference profile, at the last check.",
            ["model", "feature", "method"],
            multiprocess_mode="mostrecent",
            **kw,
        )
        self.drift_detected = Gauge(
            "arbiter_drift_detected",
            "1 when the last drift check found the model's dataset drifted, else 0.",
            ["model"],
            multiprocess_mode="mostrecent",
            **kw,
        )
        self.shadow_discrepancy = Gauge(
            "arbiter_shadow_discrepancy_rate",
            "Share of shadowed rows where champion and challenger disagree (last check).",
            ["model", "experiment"],
            multiprocess_mode="mostrecent",
            **kw,
        )
        self.srm_p_value = Gauge(
            "arbiter_srm_p_value",
            "Sample-ratio-mismatch chi-square p-value of the experiment's split (last check).",
            ["model", "experiment"],
            multiprocess_mode="mostrecent",
            **kw,
        )
        self.verdict = Gauge(
            "arbiter_verdict",
            "1 for the experiment's current verdict (promote, keep_champion, continue, "
            "rollback, ...), 0 for the others it had.",
            ["model", "experiment", "decision"],
            multiprocess_mode="mostrecent",
            **kw,
        )
        # Adaptive batching (arbiter.gateway.batching, docs/batching.md).
        self.batch_rows = Histogram(
            "arbiter_batch_size",
            "Rows per batched model call (served arms), by model: a count below the number "
            "of requests means calls were merged.",
            ["model"],
            buckets=BATCH_BUCKETS,
            **kw,
        )
        self.batch_requests = Histogram(
            "arbiter_batch_requests",
            "Requests per batched model call (served arms), by model.",
            ["model"],
            buckets=BATCH_BUCKETS,
            **kw,
        )
        self.batch_retries = Counter(
            "arbiter_batch_retries_total",
            "Batched model calls that raised (or answered something not one entry per row) "
            "and were scored again one request at a time, so that only the request the model "
            "fails on gets the error.",
            ["model"],
            **kw,
        )
        self.shadow_batch_requests = Histogram(
            "arbiter_shadow_batch_requests",
            "Shadow requests per call in the shadow workers, by model (queued shadows are "
            "scored together).",
            ["model"],
            buckets=BATCH_BUCKETS,
            **kw,
        )
        # What each registered strategy adds (arbiter.strategies; e.g. the canary's share).
        self.strategy_metrics: dict[str, Counter | Gauge] = {}
        for spec in SPECS.values():
            for metric in spec.metrics:
                self.strategy_metrics[metric.attr] = _build(metric, target)
        self._collect_hooks: list[Callable[[], None]] = []

    def __getattr__(self, name: str) -> Counter | Gauge:
        # Only reached for names that are not plain attributes: a strategy's metric.
        try:
            return self.__dict__["strategy_metrics"][name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__!r} has no metric {name!r}") from None

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


def _build(metric: MetricSpec, registry: CollectorRegistry | None) -> Counter | Gauge:
    if metric.kind == "counter":
        return Counter(metric.name, metric.documentation, metric.labels, registry=registry)
    return Gauge(
        metric.name,
        metric.documentation,
        metric.labels,
        multiprocess_mode=metric.multiprocess_mode,
        registry=registry,
    )


__all__ = ["BATCH_BUCKETS", "LATENCY_BUCKETS", "GatewayMetrics"]
