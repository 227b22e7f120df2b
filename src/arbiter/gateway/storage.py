"""Is the event log writable? What ``/readyz`` and ``/metrics`` say about the gateway's disk.

A gateway whose flushes fail keeps answering predictions (they are buffered, bounded), but it
is no longer keeping its promise that an acknowledged event reaches the disk, and feedback is
refused with 503. A load balancer should take it out of rotation and an operator should be
paged: ``/readyz`` answers 503 ``degraded`` with a reason, and
``arbiter_events_writable`` drops to 0, until a write succeeds again. Nothing here names a path:
``/readyz`` is unauthenticated.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge

from arbiter.gateway.metrics import GatewayMetrics


def storage_health(writer: Any, store: Any) -> dict[str, object]:
    """The event log's write health, from the prediction writer and the feedback/outcome store.

    Returns
    -------
    dict
        ``writable`` (bool), ``reason`` (why writes fail, e.g. "No space left on device";
        None when writable), ``failing_for_s`` (seconds since writes began to fail),
        ``buffered`` (prediction rows waiting for a successful flush).
    """
    since: list[float] = []
    reasons: list[str] = []
    buffered = 0
    stats = getattr(writer, "stats", None)
    if stats is not None:
        snapshot = stats()
        buffered = snapshot.buffered
        if snapshot.failing_since_unix is not None:
            since.append(snapshot.failing_since_unix)
            reasons.append(snapshot.last_error or "event writes fail")
    health = getattr(store, "write_health", None)
    if health is not None:
        failing_since, reason = health()
        if failing_since is not None:
            since.append(failing_since)
            reasons.append(reason or "event writes fail")
    return {
        "writable": not since,
        "reason": reasons[0] if reasons else None,
        "failing_for_s": round(time.time() - min(since), 3) if since else None,
        "buffered": buffered,
    }


def install_storage_metrics(metrics: GatewayMetrics, writer: Any, store: Any) -> None:
    """Add the event-log gauges and counters to ``metrics``, refreshed at every scrape.

    ``arbiter_events_writable`` (1/0; the minimum over workers), ``arbiter_events_buffered``,
    ``arbiter_event_flush_failures_total`` and ``arbiter_events_dropped_total`` (rows the
    bounded buffer shed while flushes kept failing: acknowledged and lost).
    """
    target = None if metrics.multiprocess else metrics.registry
    writable = Gauge(
        "arbiter_events_writable",
        "1 while the event log can be written (flushes and feedback writes succeed), else 0.",
        multiprocess_mode="livemin",
        registry=target,
    )
    buffered = Gauge(
        "arbiter_events_buffered",
        "Prediction rows buffered in memory, waiting for a successful flush.",
        multiprocess_mode="livesum",
        registry=target,
    )
    failures = Counter(
        "arbiter_event_flush_failures_total",
        "Failed attempts to write buffered predictions to the event log.",
        registry=target,
    )
    dropped = Counter(
        "arbiter_events_dropped_total",
        "Acknowledged prediction rows dropped because the buffer overflowed while flushes failed.",
        registry=target,
    )
    seen = {"failures": 0, "dropped": 0}
    writable.set(1)

    def refresh() -> None:
        health = storage_health(writer, store)
        writable.set(1 if health["writable"] else 0)
        stats = getattr(writer, "stats", None)
        if stats is None:
            return
        snapshot = stats()
        buffered.set(snapshot.buffered)
        # Counters only go up: add what the writer counted since the last scrape.
        failures.inc(max(0, snapshot.flush_errors - seen["failures"]))
        dropped.inc(max(0, snapshot.events_dropped - seen["dropped"]))
        seen["failures"] = snapshot.flush_errors
        seen["dropped"] = snapshot.events_dropped

    metrics.on_collect(refresh)


__all__ = ["install_storage_metrics", "storage_health"]
