"""The embedded event store: every prediction and label, as Parquet segments DuckDB reads.

Write predictions through a buffered :class:`EventWriter`, feedback through
:meth:`EventStore.write_feedback` (durable on return), and query with :meth:`EventStore.connect`
(views ``served``, ``shadowed``, ``labeled`` and the rest of :mod:`arbiter.events.query`, narrowed
by a :class:`Scope`). See ``docs/design/event-store.md``.
"""

from __future__ import annotations

from arbiter.events.export import export
from arbiter.events.query import Scope, count_events
from arbiter.events.schema import (
    FEEDBACK_COLUMNS,
    FEEDBACK_SCHEMA,
    OUTCOME_COLUMNS,
    OUTCOMES_SCHEMA,
    PREDICTION_COLUMNS,
    PREDICTIONS_SCHEMA,
    canonical_label,
)
from arbiter.events.segments import CompactionResult
from arbiter.events.store import EventStore
from arbiter.events.writer import EventWriter, ShutdownReport, WriterStats

__all__ = [
    "FEEDBACK_COLUMNS",
    "FEEDBACK_SCHEMA",
    "OUTCOMES_SCHEMA",
    "OUTCOME_COLUMNS",
    "PREDICTIONS_SCHEMA",
    "PREDICTION_COLUMNS",
    "CompactionResult",
    "EventStore",
    "EventWriter",
    "Scope",
    "ShutdownReport",
    "WriterStats",
    "canonical_label",
    "count_events",
    "export",
]
