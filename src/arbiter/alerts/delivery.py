"""Delivering alerts off the serving path: a queue, one sender thread, retries, a dead letter.

``emit`` only puts the alert on a bounded in-memory schedule and returns; a daemon thread
sends it to every subscribed webhook with httpx. A failed attempt (network error, timeout,
HTTP 5xx, 408, 429) is retried after an exponentially growing delay with jitter (so many
gateways do not retry in step); a refusal (another 4xx) is not retried. What cannot be
delivered lands as one JSON line in the dead-letter file and in
``arbiter_alerts_dead_lettered_total``. ``close`` gives pending deliveries a bounded time at
exit and dead-letters the rest, so a process never hangs on a receiver that hangs.

Nothing here logs or records a webhook's URL or secret: a Slack URL is a credential. Webhooks
are named by their ``name``.

Why hand-written: the delivery is a priority queue of due times plus httpx; the retry
libraries (tenacity, backoff) retry by sleeping in the caller, which would hold one alert's
backoff in front of every other alert.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter

from arbiter.alerts.alert import Alert, Severity, new_alert
from arbiter.alerts.payloads import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    json_body,
    sign,
    slack_body,
)
from arbiter.config import AlertsConfig, WebhookConfig
from arbiter.errors import ConfigError

log = logging.getLogger(__name__)

#: HTTP statuses worth another attempt; any other non-2xx is the receiver refusing the alert.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Webhook:
    """A configured webhook with its URL and secret read from the environment."""

    config: WebhookConfig
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    def wants(self, alert: Alert) -> bool:
        """Whether this webhook subscribed to the alert's event (and model)."""
        if alert.event not in self.config.events:
            return False
        models = self.config.models
        return models is None or alert.model is None or alert.model in models

    def request(self, alert: Alert, now: float) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one attempt (signed afresh: the timestamp is now)."""
        body = slack_body(alert) if self.config.format == "slack" else json_body(alert)
        headers = {
            "content-type": "application/json",
            EVENT_HEADER: alert.event,
            DELIVERY_HEADER: alert.id,
        }
        if self.secret is not None:
            ts = int(now)
            headers[TIMESTAMP_HEADER] = str(ts)
            headers[SIGNATURE_HEADER] = sign(self.secret, ts, body)
        return body, headers


def resolve_webhooks(config: AlertsConfig, env: dict[str, str] | None = None) -> list[Webhook]:
    """Read each webhook's URL and secret from the environment.

    Raises
    ------
    ConfigError
        A named environment variable is unset or empty (named, its value never shown).
    """
    env = dict(os.environ) if env is None else env
    out = []
    for cfg in config.webhooks:
        url = cfg.url
        if cfg.url_env is not None:
            url = env.get(cfg.url_env) or None
            if url is None:
                raise ConfigError(
                    f"alerts.webhooks {cfg.name!r}: environment variable {cfg.url_env} "
                    "(url_env) is not set"
                )
            if not url.startswith(("http://", "https://")):
                raise ConfigError(
                    f"alerts.webhooks {cfg.name!r}: {cfg.url_env} must hold an http(s) URL"
                )
        secret = None
        if cfg.secret_env is not None:
            secret = env.get(cfg.secret_env) or None
            if secret is None:
                raise ConfigError(
                    f"alerts.webhooks {cfg.name!r}: environment variable {cfg.secret_env} "
                    "(secret_env) is not set; unsigned alerts are not sent in its place"
                )
        assert url is not None
        out.append(Webhook(cfg, url, secret))
    return out


@dataclass
class _Delivery:
    alert: Alert
    webhook: Webhook
    attempts: int = 0
    last_error: str | None = None


class AlertCounters:
    """``arbiter_alerts_{sent,failed,dead_lettered}_total`` by event and webhook."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        labels = ["event", "webhook"]
        self.sent = Counter(
            "arbiter_alerts_sent_total", "Alerts a webhook accepted (HTTP 2xx).", labels,
            registry=registry,
        )  # fmt: skip
        self.failed = Counter(
            "arbiter_alerts_failed_total",
            "Failed delivery attempts (each retry counts), by event and webhook.",
            labels,
            registry=registry,
        )
        self.dead_lettered = Counter(
            "arbiter_alerts_dead_lettered_total",
            "Alerts given up on (attempts exhausted, refused, queue full, or pending at exit) "
            "and written to the dead-letter file.",
            labels,
            registry=registry,
        )


class AlertDispatcher:
    """Sends alerts to webhooks from a background thread (see the module docstring).

    Parameters
    ----------
    config : AlertsConfig
        ``alerts:`` of ``arbiter.yaml``.
    dead_letter_path : Path
        JSON lines of undeliverable alerts (created on first use).
    registry : CollectorRegistry or None, default None
        Where the counters register (the gateway's); None with ``private_registry`` False
        means prometheus' multiprocess files (a gateway with several workers).
    private_registry : bool, default True
        Register the counters in a registry of their own (CLI and loop processes, which
        expose no /metrics), so building two dispatchers never collides.
    component : str
        Stamped on every alert this process raises: ``gateway``, ``cli`` or ``loop``.
    transport : httpx.BaseTransport, optional
        For embedding; the default is httpx's network transport.
    """

    def __init__(
        self,
        config: AlertsConfig,
        *,
        dead_letter_path: Path,
        registry: CollectorRegistry | None = None,
        private_registry: bool = True,
        component: str = "gateway",
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.webhooks = resolve_webhooks(config)
        self.dead_letter_path = Path(dead_letter_path)
        self.component = component
        target = CollectorRegistry() if registry is None and private_registry else registry
        self.counters = AlertCounters(target)
        self._clock = clock
        self._wall = wall_clock
        self._client = httpx.Client(
            timeout=config.timeout_s, follow_redirects=False, transport=transport
        )
        self._heap: list[tuple[float, int, _Delivery]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closing_at: float | None = None  # the flush deadline, once close() was called
        self._file_lock = threading.Lock()
        self._random = random.Random()
        self._thread = threading.Thread(target=self._run, name="arbiter-alerts", daemon=True)
        self._thread.start()

    # --- the emitting side (any thread; never blocks on the network) ------------------------

    def emit(self, alert: Alert) -> None:
        """Schedule ``alert`` for every webhook that subscribed to it; returns at once."""
        targets = [w for w in self.webhooks if w.wants(alert)]
        if not targets:
            return
        overflow: list[_Delivery] = []
        with self._cond:
            for webhook in targets:
                delivery = _Delivery(alert, webhook)
                if self._closing_at is not None or len(self._heap) >= self.config.queue_size:
                    delivery.last_error = "closed" if self._closing_at else "queue full"
                    overflow.append(delivery)
                    continue
                heapq.heappush(self._heap, (self._clock(), next(self._seq), delivery))
            self._cond.notify()
        for delivery in overflow:  # rare: a flood of alerts, or an alert after close()
            self._dead_letter(delivery, str(delivery.last_error))

    def notify(
        self,
        event: str,
        summary: str,
        *,
        model: str | None = None,
        details: dict[str, Any] | None = None,
        severity: Severity | None = None,
    ) -> None:
        """Build an alert stamped with this process's component and :meth:`emit` it."""
        self.emit(new_alert(event, summary, model=model, details=details, severity=severity,
                            component=self.component))  # fmt: skip

    def pending(self) -> int:
        """Deliveries waiting (scheduled or backing off)."""
        with self._cond:
            return len(self._heap)

    def close(self, timeout_s: float | None = None) -> None:
        """Deliver what is pending within ``timeout_s`` (default ``flush_timeout_s``), then
        dead-letter the rest and stop. Waits at most that long plus one HTTP timeout."""
        bound = self.config.flush_timeout_s if timeout_s is None else timeout_s
        with self._cond:
            if self._closing_at is None:
                self._closing_at = self._clock() + bound
            self._cond.notify()
        self._thread.join(bound + self.config.timeout_s + 1.0)
        self._client.close()

    def __enter__(self) -> AlertDispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the sending thread -----------------------------------------------------------------

    def _next(self) -> _Delivery | None:
        """Wait for the next due delivery; None when closing and its time is up."""
        with self._cond:
            while True:
                now = self._clock()
                closing = self._closing_at
                if closing is not None and (not self._heap or now >= closing):
                    return None
                if self._heap and self._heap[0][0] <= now:
                    return heapq.heappop(self._heap)[2]
                wait = None if not self._heap else self._heap[0][0] - now
                if closing is not None:
                    wait = closing - now if wait is None else min(wait, closing - now)
                self._cond.wait(wait)

    def _run(self) -> None:
        while (delivery := self._next()) is not None:
            try:
                self._attempt(delivery)
            except Exception:  # the sender must not die: this alert is lost, say so
                log.exception("alert %s to %s failed unexpectedly", delivery.alert.event,
                              delivery.webhook.name)  # fmt: skip
                self._dead_letter(delivery, "unexpected error in the sender")
        with self._cond:
            left = [d for _, _, d in self._heap]
            self._heap.clear()
        for delivery in left:
            self._dead_letter(delivery, "still pending at exit")

    def _attempt(self, delivery: _Delivery) -> None:
        alert, webhook = delivery.alert, delivery.webhook
        delivery.attempts += 1
        body, headers = webhook.request(alert, self._wall())
        retry = True
        try:
            response = self._client.post(webhook.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        else:
            if 200 <= response.status_code < 300:
                self.counters.sent.labels(alert.event, webhook.name).inc()
                log.info("alert %s (%s) sent to %s", alert.event, alert.id, webhook.name)
                return
            error = f"HTTP {response.status_code}"
            retry = response.status_code in RETRY_STATUSES
        delivery.last_error = error
        self.counters.failed.labels(alert.event, webhook.name).inc()
        if not retry:
            self._dead_letter(delivery, f"refused: {error}")
            return
        if delivery.attempts >= self.config.max_attempts:
            self._dead_letter(delivery, f"{delivery.attempts} attempts failed")
            return
        delay = self._backoff(delivery.attempts)
        log.warning(
            "alert %s to %s failed (%s, attempt %d of %d); retrying in %.1f s",
            alert.event, webhook.name, error, delivery.attempts, self.config.max_attempts, delay,
        )  # fmt: skip
        with self._cond:
            heapq.heappush(self._heap, (self._clock() + delay, next(self._seq), delivery))

    def _backoff(self, attempts: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        cap = min(self.config.max_backoff_s, self.config.backoff_s * 2 ** (attempts - 1))
        return cap / 2 + self._random.uniform(0, cap / 2)

    def _dead_letter(self, delivery: _Delivery, reason: str) -> None:
        alert, webhook = delivery.alert, delivery.webhook
        self.counters.dead_lettered.labels(alert.event, webhook.name).inc()
        line = {
            "dead_lettered_at": self._wall(),
            "reason": reason,
            "webhook": webhook.name,
            "attempts": delivery.attempts,
            "last_error": delivery.last_error,
            "alert": alert.to_dict(),
        }
        try:
            with self._file_lock:
                self.dead_letter_path.parent.mkdir(parents=True, exist_ok=True)
                with self.dead_letter_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(line, sort_keys=True, default=str) + "\n")
        except OSError as exc:
            log.error("alert %s (%s) to %s lost: the dead-letter file cannot be written (%s)",
                      alert.event, alert.id, webhook.name, exc.strerror)  # fmt: skip
            return
        log.warning("alert %s (%s) to %s dead-lettered: %s", alert.event, alert.id,
                    webhook.name, reason)  # fmt: skip


def read_dead_letters(path: Path) -> list[dict[str, Any]]:
    """The dead-letter file's entries, oldest first (empty when there is none)."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


__all__ = [
    "RETRY_STATUSES",
    "AlertCounters",
    "AlertDispatcher",
    "Webhook",
    "read_dead_letters",
    "resolve_webhooks",
]
