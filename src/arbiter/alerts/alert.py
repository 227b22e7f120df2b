"""What an alert is: one event about one model (or the gateway), ready to be sent anywhere.

The event names and the configuration live in :mod:`arbiter.config` (``alerts:``); this module
only shapes the message. An alert carries its own id, so a receiver that gets a retried
delivery twice can drop the duplicate.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from arbiter.config import ALERT_EVENTS

Severity = Literal["info", "warning", "critical"]

#: The version of the JSON document (docs/alerts.md); bumped on an incompatible change.
SCHEMA = "arbiter.alert/1"

#: How bad each event is when its emitter does not say otherwise.
DEFAULT_SEVERITY: dict[str, Severity] = {
    "canary_advance": "info",
    "canary_promote": "info",
    "canary_rollback": "critical",
    "srm_detected": "warning",
    "drift_detected": "warning",
    "loop_decision": "info",
    "gateway_degraded": "critical",
    "gateway_recovered": "info",
    "shadow_drop_rate": "warning",
}


@dataclass(frozen=True)
class Alert:
    """One alert.

    Attributes
    ----------
    event : str
        One of :data:`arbiter.config.ALERT_EVENTS`.
    summary : str
        One line a human reads first (Slack's text, a pager's title).
    model : str or None
        The model it is about; None for the gateway as a whole.
    details : dict
        JSON-able evidence (a canary's stage and reasons, drifted features...).
    severity : {"info", "warning", "critical"}
    component : str
        Which kind of process raised it: ``gateway``, ``cli`` or ``loop``.
    id : str
        Unique per alert; the same on every retry and every webhook.
    at : float
        Unix time it was raised.
    """

    event: str
    summary: str
    model: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    severity: Severity = "info"
    component: str = "gateway"
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.event not in ALERT_EVENTS:
            raise ValueError(f"unknown alert event {self.event!r}; use one of {ALERT_EVENTS}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON document a generic webhook receives (docs/alerts.md, "Payload")."""
        return {
            "schema": SCHEMA,
            "id": self.id,
            "event": self.event,
            "severity": self.severity,
            "model": self.model,
            "summary": self.summary,
            "at": datetime.fromtimestamp(self.at, tz=UTC).isoformat(),
            "source": {"component": self.component, "host": _HOST, "pid": os.getpid()},
            "details": self.details,
        }


_HOST = socket.gethostname()


def new_alert(
    event: str,
    summary: str,
    *,
    model: str | None = None,
    details: dict[str, Any] | None = None,
    severity: Severity | None = None,
    component: str = "gateway",
) -> Alert:
    """An :class:`Alert` with the event's default severity unless one is given."""
    return Alert(
        event=event,
        summary=summary,
        model=model,
        details=dict(details or {}),
        severity=severity or DEFAULT_SEVERITY.get(event, "warning"),
        component=component,
    )


__all__ = ["DEFAULT_SEVERITY", "SCHEMA", "Alert", "Severity", "new_alert"]
