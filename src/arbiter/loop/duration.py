"""Durations on the command line: ``90s``, ``15m``, ``1h``, ``1h30m``, ``7d``."""

from __future__ import annotations

import re

from arbiter.errors import InvalidInputError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str, *, field: str = "duration") -> float:
    """Seconds in ``text`` (``"1h30m"`` -> 5400.0); a bare number is seconds.

    Raises
    ------
    InvalidInputError
        ``text`` is not a positive duration.
    """
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        parts = _PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise InvalidInputError(
                f"{field}: {text!r} is not a duration; use e.g. 90s, 15m, 1h, 1h30m, 7d",
                field=field,
            ) from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not seconds > 0:
        raise InvalidInputError(f"{field}: {text!r} must be positive", field=field)
    return seconds


def format_duration(seconds: float) -> str:
    """``5400`` -> ``"1h30m"``; below a minute, whole seconds."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


__all__ = ["format_duration", "parse_duration"]
