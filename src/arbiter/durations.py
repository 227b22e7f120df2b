"""Durations and windows as people write them: ``90s``, ``15m``, ``1h30m``, ``7d``, ``5000 rows``.

One grammar for every option and setting that takes a period (``loop --every``, ``--max-wait``,
``drift --window``, ``retrain --include-traffic``, ...), so what works in one place works in
all of them:

* a duration is one or more ``<number><unit>`` parts, units ``s``, ``m``, ``h``, ``d``, ``w``
  (case-insensitive, spaces allowed between parts: ``1h30m`` = ``1h 30m`` = 5400 s), or a bare
  number of seconds (``90``); it must be positive and finite;
* a window is a duration, ``"N rows"`` (the N most recent rows), or ``none`` (everything). A
  bare number is refused in a window: it could mean seconds or rows.

Pure: no I/O and no arbiter imports but :mod:`arbiter.errors`, so the core may use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from arbiter.errors import InvalidInputError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_NUMBER = r"\d+(?:\.\d+)?"
_PART = re.compile(rf"({_NUMBER})\s*([smhdw])")
_DURATION = re.compile(rf"(?:{_NUMBER}\s*[smhdw]\s*)+")
_SECONDS = re.compile(_NUMBER)
_ROWS = re.compile(r"(\d+)\s*rows?", re.IGNORECASE)
_EXAMPLES = "e.g. 90s, 15m, 1h30m, 7d"


def parse_duration(text: str, *, field: str = "duration") -> timedelta:
    """The period ``text`` stands for: ``"1h30m"`` -> 1 h 30 min; a bare number is seconds.

    Parameters
    ----------
    text : str
        ``<number><unit>`` parts (units s, m, h, d, w), or a number of seconds.
    field : str
        The option or setting being parsed, named in the error so the user knows what to fix.

    Returns
    -------
    datetime.timedelta
        Positive.

    Raises
    ------
    InvalidInputError
        ``text`` is not a positive duration (``field`` says which input).
    """
    value = (text or "").strip().lower()
    if _SECONDS.fullmatch(value):
        seconds = float(value)
    elif _DURATION.fullmatch(value):
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(value))
    else:
        raise InvalidInputError(
            f"{field}: {text!r} is not a duration; use a number and a unit s, m, h, d or w "
            f"({_EXAMPLES}) or a number of seconds",
            field=field,
        )
    if not seconds > 0:
        raise InvalidInputError(f"{field}: {text!r} must be a positive duration", field=field)
    return timedelta(seconds=seconds)


def format_duration(seconds: float) -> str:
    """``5400`` -> ``"1h30m"``, the inverse of :func:`parse_duration`; below a minute, seconds."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


@dataclass(frozen=True)
class WindowSpec:
    """Which rows a window covers: a period back from now, the last N rows, or all of them."""

    period: timedelta | None = None
    rows: int | None = None
    text: str = "none"

    def describe(self) -> str:
        """For messages: "last 7d", "last 5000 rows", "whole log"."""
        if self.rows is not None:
            return f"last {self.rows} rows"
        return "whole log" if self.period is None else f"last {self.text.strip()}"


def parse_window(text: str | None, *, field: str = "window") -> WindowSpec:
    """``"7d"`` (a period, as :func:`parse_duration`) or ``"5000 rows"`` (the most recent rows).

    A row count makes a comparison independent of the traffic rate and of when it runs: a
    period that starts "now minus 10 s" reads fewer rows the later the check starts.
    ``None`` or ``"none"`` means every row.

    Raises
    ------
    InvalidInputError
        ``text`` is neither (``field`` says which input).
    """
    if text is None or text.strip().lower() == "none":
        return WindowSpec()
    match = _ROWS.fullmatch(text.strip())
    if match is not None:
        rows = int(match.group(1))
        if rows < 1:
            raise InvalidInputError(
                f"{field}: a window of rows needs at least 1 row (e.g. '5000 rows'); got {text!r}",
                field=field,
            )
        return WindowSpec(rows=rows, text=text)
    if not _SECONDS.fullmatch(text.strip()):
        try:
            return WindowSpec(period=parse_duration(text, field=field), text=text)
        except InvalidInputError:
            pass
    raise InvalidInputError(
        f"{field}: a window is a period with a unit s, m, h, d or w ({_EXAMPLES}), a number "
        f"of recent rows (e.g. '5000 rows') or 'none'; got {text!r}",
        field=field,
    )


__all__ = ["WindowSpec", "format_duration", "parse_duration", "parse_window"]
