"""Integrations with other tools; each is an optional extra (``arbiter[airflow]``).

Modules here import their tool at import time and nothing heavy from arbiter, so they load in
the tool's own environment: :mod:`arbiter.integrations.airflow` builds the closed loop's DAG.
"""

from __future__ import annotations

__all__: list[str] = []
