"""Alerts: webhooks (signed JSON, Slack) told about canaries, SRM, drift, the loop, the gateway.

:mod:`~arbiter.alerts.alert` shapes an alert, :mod:`~arbiter.alerts.payloads` turns it into
a signed body (pure), :mod:`~arbiter.alerts.delivery` sends it from a background thread with
retries and a dead-letter file, and :mod:`~arbiter.alerts.sink` is the one interface the
emitters call. Configuration: ``alerts:`` in ``arbiter.yaml`` (:class:`arbiter.config.
AlertsConfig`). See docs/alerts.md.
"""

from __future__ import annotations

from arbiter.alerts.alert import DEFAULT_SEVERITY, SCHEMA, Alert, Severity, new_alert
from arbiter.alerts.delivery import (
    RETRY_STATUSES,
    AlertCounters,
    AlertDispatcher,
    Webhook,
    read_dead_letters,
    resolve_webhooks,
)
from arbiter.alerts.payloads import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    json_body,
    sign,
    slack_body,
    verify,
)
from arbiter.alerts.sink import (
    DEAD_LETTER_FILE,
    AlertSink,
    NullAlerts,
    dead_letter_path,
    open_alerts,
)

__all__ = [
    "DEAD_LETTER_FILE",
    "DEFAULT_SEVERITY",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "RETRY_STATUSES",
    "SCHEMA",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Alert",
    "AlertCounters",
    "AlertDispatcher",
    "AlertSink",
    "NullAlerts",
    "Severity",
    "Webhook",
    "dead_letter_path",
    "json_body",
    "new_alert",
    "open_alerts",
    "read_dead_letters",
    "resolve_webhooks",
    "sign",
    "slack_body",
    "verify",
]
