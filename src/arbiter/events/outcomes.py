"""Validation of outcome events: the business events (purchase, session...) of a unit.

An outcome is ``{"unit_id": "u-1", "event": "purchase", "value": 12.5, "ts": ...}`` with an
optional ``request_id``. It names a unit, not a prediction: the analysis attributes it to the
arm the unit was exposed to (:mod:`arbiter.analysis.metrics`). Like feedback, outcomes are
written durably by :meth:`arbiter.events.EventStore.write_outcomes`, all rows of a call or none.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from arbiter.errors import InvalidInputError
from arbiter.events.schema import OUTCOMES_SCHEMA

OUTCOME_FIELDS = frozenset({"unit_id", "event", "value", "ts", "request_id"})
#: Event names: what a metric definition selects on (``event: purchase``).
EVENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
MAX_UNIT_ID_CHARS = 256
#: How far in the future an outcome's ``ts`` may lie (clock skew between hosts), microseconds.
MAX_FUTURE_US = 24 * 3600 * 1_000_000
#: The earliest accepted ``ts``: 2000-01-01 UTC. Older timestamps are almost always a unit
#: mistake (seconds sent as microseconds, a zero default) rather than real events.
MIN_TS_US = 946_684_800 * 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_ts(value: Any, field: str, now_us: int, *, max_future_us: int = MAX_FUTURE_US) -> int:
    """``value`` as microseconds since the epoch, UTC.

    Accepts a timezone-aware :class:`~datetime.datetime`, an ISO 8601 string with a zone
    (``2026-12-01T10:00:00Z``), or an integer number of microseconds. The result lies between
    :data:`MIN_TS_US` and ``now_us + max_future_us`` (the allowed clock skew): a far-future
    ``ts`` would otherwise sit inside every attribution window forever, or, for a label, beat
    every later correction (latest ``ts`` wins). Checking the range here, on Python integers,
    also keeps values beyond int64 (``2**64 - 1``) from ever reaching Arrow.
    """
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InvalidInputError(
                f"ts must be an ISO 8601 time with a zone (2026-12-01T10:00:00Z), got {value!r}",
                field=field,
            ) from None
        value = parsed
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInputError("ts must carry a time zone (e.g. a trailing Z)", field=field)
        # A difference of aware datetimes: exact, and no OverflowError for year 1 at +05:00
        # (which astimezone(UTC) would raise).
        us = (value - _EPOCH) // timedelta(microseconds=1)
    elif isinstance(value, int) and not isinstance(value, bool):
        us = value
    else:
        raise InvalidInputError(
            f"ts must be an ISO 8601 time or microseconds since the epoch, got "
            f"{type(value).__name__}",
            field=field,
        )
    if not MIN_TS_US <= us <= now_us + max_future_us:
        raise InvalidInputError(
            f"ts must lie between 2000-01-01 and {max_future_us / 1e6:g} s from now "
            "(microseconds since the epoch, or ISO 8601 with a zone)",
            field=field,
        )
    return us


def _finite(value: float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond the float range
        return False


def outcome_columns(
    rows: Sequence[Mapping[str, Any]], *, max_future_us: int = MAX_FUTURE_US
) -> dict[str, list[Any]]:
    """Validate outcome rows and return them as columns of :data:`OUTCOMES_SCHEMA`.

    Parameters
    ----------
    rows : sequence of mapping
        Each with ``unit_id`` (non-empty str of at most 256 characters), ``event`` (a name
        matching :data:`EVENT_NAME`), and optionally ``value`` (a finite number; default 1),
        ``ts`` (see :func:`parse_ts`; default now) and ``request_id`` (non-empty str).
    max_future_us : int, default one day
        The clock skew allowed for ``ts`` (see :func:`parse_ts`).

    Returns
    -------
    dict of str to list
        One list per schema column, ``ts`` in microseconds since the epoch.

    Raises
    ------
    InvalidInputError
        On the first invalid row; ``field`` is its path, e.g. ``rows[3].value``. Nothing is
        returned, so a caller writes all rows or none.
    """
    now_us = time.time_ns() // 1000
    cols: dict[str, list[Any]] = {name: [] for name in OUTCOMES_SCHEMA.names}
    for i, row in enumerate(rows):
        where = f"rows[{i}]"
        if not isinstance(row, Mapping):
            raise InvalidInputError(f"outcome row {i} is not an object", field=where)
        unknown = row.keys() - OUTCOME_FIELDS
        if unknown:
            name = sorted(map(str, unknown))[0]
            raise InvalidInputError(
                f"unknown outcome field {name!r}; allowed: {', '.join(sorted(OUTCOME_FIELDS))}",
                field=f"{where}.{name}",
            )
        unit_id = row.get("unit_id")
        if not isinstance(unit_id, str) or not unit_id or len(unit_id) > MAX_UNIT_ID_CHARS:
            raise InvalidInputError(
                f"unit_id must be a non-empty string of at most {MAX_UNIT_ID_CHARS} characters",
                field=f"{where}.unit_id",
            )
        event = row.get("event")
        if not isinstance(event, str) or not EVENT_NAME.match(event):
            raise InvalidInputError(
                "event must be a name of letters, digits and _ . : - (at most 128 characters)",
                field=f"{where}.event",
            )
        value = row.get("value", 1.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
            raise InvalidInputError(
                f"value must be a finite number, got {value!r}", field=f"{where}.value"
            )
        ts = (
            parse_ts(row["ts"], f"{where}.ts", now_us, max_future_us=max_future_us)
            if "ts" in row
            else now_us
        )
        request_id = row.get("request_id")
        if request_id is not None and (not isinstance(request_id, str) or not request_id):
            raise InvalidInputError(
                "request_id must be a non-empty string when given", field=f"{where}.request_id"
            )
        cols["unit_id"].append(unit_id)
        cols["event"].append(event)
        cols["value"].append(float(value))
        cols["ts"].append(ts)
        cols["request_id"].append(request_id)
    return cols


__all__ = ["EVENT_NAME", "OUTCOME_FIELDS", "outcome_columns", "parse_ts"]
