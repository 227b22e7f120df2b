"""Bodies and signatures of webhook deliveries: pure functions, no I/O.

Signing follows the scheme Stripe and GitHub made familiar: HMAC-SHA256 over the exact bytes
sent, keyed with a shared secret, hex-encoded after ``sha256=``. The timestamp is part of the
signed message (``"<timestamp>.<body>"``), so a captured delivery cannot be replayed later
than the receiver's tolerance (docs/alerts.md has the receiver's check).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from arbiter.alerts.alert import Alert

SIGNATURE_HEADER = "X-Arbiter-Signature"
TIMESTAMP_HEADER = "X-Arbiter-Timestamp"
EVENT_HEADER = "X-Arbiter-Event"
DELIVERY_HEADER = "X-Arbiter-Delivery"

#: Slack allows at most 10 fields per section block.
_SLACK_FIELDS = 10
_ICON = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


def _dumps(document: Any) -> bytes:
    # Compact and key-sorted: the bytes are what is signed, so they must not depend on dict
    # order; default=str keeps an odd value (a Path, a numpy scalar) from losing the alert.
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def json_body(alert: Alert) -> bytes:
    """The generic webhook's body: :meth:`Alert.to_dict` as compact JSON."""
    return _dumps(alert.to_dict())


def _scalar(value: Any) -> str | None:
    if isinstance(value, str | int | float | bool):
        text = str(value)
        return text if len(text) <= 200 else text[:197] + "..."
    return None


def slack_body(alert: Alert) -> bytes:
    """A Slack incoming-webhook message: ``text`` (notifications) plus Block Kit blocks.

    The details' scalar values become the section's fields (up to Slack's ten); nested
    evidence stays in the generic JSON payload.
    """
    doc = alert.to_dict()
    title = f"{_ICON[alert.severity]} arbiter {alert.event.replace('_', ' ')}"
    fields = [
        {"type": "mrkdwn", "text": f"*{key}*\n{text}"}
        for key, value in sorted(alert.details.items())
        if (text := _scalar(value)) is not None
    ][:_SLACK_FIELDS]
    section: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": alert.summary},
    }
    if fields:
        section["fields"] = fields
    where = f"{doc['at']} · {doc['source']['host']}"
    context = f"{alert.severity} · model {alert.model or '-'} · {where}"
    return _dumps(
        {
            "text": f"{title}: {alert.summary}",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
                section,
                {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
            ],
        }
    )


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, ``"<timestamp>." + body``)."""
    message = str(int(timestamp)).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    timestamp: str | int,
    body: bytes,
    signature: str,
    *,
    now: float,
    tolerance_s: float = 300.0,
) -> bool:
    """Whether ``signature`` signs ``body`` at ``timestamp`` and the timestamp is recent.

    What a receiver runs (a copy without arbiter is in docs/alerts.md); compared in constant
    time.
    """
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "json_body",
    "sign",
    "slack_body",
    "verify",
]
