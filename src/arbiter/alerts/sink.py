"""The one interface emitters use: ``alerts.notify(event, summary, model=..., details=...)``.

Canary checkpoints, the gateway's monitor, the loop and the CLI take an :class:`AlertSink`;
:func:`open_alerts` gives them the home's dispatcher, or :class:`NullAlerts` when no webhook
is configured (so no thread and no client exist for nothing).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from arbiter.alerts.alert import Severity
from arbiter.config import HomeConfig

log = logging.getLogger(__name__)

DEAD_LETTER_FILE = Path("alerts") / "dead-letter.jsonl"


class AlertSink(Protocol):
    """Something that takes alerts without blocking its caller."""

    def notify(
        self,
        event: str,
        summary: str,
        *,
        model: str | None = None,
        details: dict[str, Any] | None = None,
        severity: Severity | None = None,
    ) -> None: ...

    def close(self, timeout_s: float | None = None) -> None: ...


class NullAlerts:
    """The sink of a home without webhooks: takes every alert and sends nothing."""

    def notify(
        self,
        event: str,
        summary: str,
        *,
        model: str | None = None,
        details: dict[str, Any] | None = None,
        severity: Severity | None = None,
    ) -> None:
        return None

    def close(self, timeout_s: float | None = None) -> None:
        return None

    def __enter__(self) -> NullAlerts:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def dead_letter_path(home_root: Path, config: HomeConfig) -> Path:
    """Where undeliverable alerts go: ``alerts.dead_letter_file`` or HOME/alerts/...jsonl."""
    configured = config.alerts.dead_letter_file
    return configured if configured is not None else Path(home_root) / DEAD_LETTER_FILE


def open_alerts(
    home_root: Path,
    config: HomeConfig,
    *,
    component: str,
    registry: Any = None,
    private_registry: bool = True,
) -> Any:
    """The alert sink of one process: an :class:`~arbiter.alerts.AlertDispatcher` when
    ``alerts.webhooks`` lists any, else :class:`NullAlerts`. Close it at exit.

    Raises
    ------
    ConfigError
        A webhook's ``url_env`` or ``secret_env`` is unset.
    """
    if not config.alerts.webhooks:
        return NullAlerts()
    from arbiter.alerts.delivery import AlertDispatcher

    return AlertDispatcher(
        config.alerts,
        dead_letter_path=dead_letter_path(home_root, config),
        registry=registry,
        private_registry=private_registry,
        component=component,
    )


__all__ = ["DEAD_LETTER_FILE", "AlertSink", "NullAlerts", "dead_letter_path", "open_alerts"]
