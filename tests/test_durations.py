"""One grammar for every duration and window option: arbiter.durations."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

import arbiter
from arbiter.durations import WindowSpec, format_duration, parse_duration, parse_window
from arbiter.errors import InvalidInputError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(minutes=90)),
        ("1h 30m", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
        ("1.5w", timedelta(weeks=1.5)),
        (" 6 H ", timedelta(hours=6)),
        ("2.5", timedelta(seconds=2.5)),  # a bare number is seconds (loop --every 3600)
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "h", "1x", "1y", "d7", "7 days", "-5", "-1d", "0s", "0", "inf", "nan", "1e3"]
)
def test_parse_duration_rejects_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_duration(text, field="every")
    assert info.value.field == "every" and str(info.value).startswith("every:")


def test_format_duration_inverts_parse_duration() -> None:
    texts = [format_duration(s) for s in (5, 60, 5400, 90061)]
    assert texts == ["5s", "1m", "1h30m", "1d1h1m1s"]
    assert [parse_duration(t).total_seconds() for t in texts] == [5, 60, 5400, 90061]


def test_parse_window_takes_a_period_a_row_count_or_none() -> None:
    assert parse_window("1h30m") == WindowSpec(period=timedelta(minutes=90), text="1h30m")
    assert parse_window("5000 rows") == WindowSpec(rows=5000, text="5000 rows")
    assert parse_window("1 row").rows == 1 and parse_window("20ROWS").rows == 20
    assert parse_window(None) == parse_window("none") == parse_window(" None ") == WindowSpec()
    assert parse_window("7d").describe() == "last 7d"
    assert parse_window("300 rows").describe() == "last 300 rows"


@pytest.mark.parametrize("text", ["", "0 rows", "rows", "1y", "0h", "5000"])
def test_parse_window_rejects_naming_the_field(text: str) -> None:
    # A bare number is refused in a window: seconds or rows?
    with pytest.raises(InvalidInputError) as info:
        parse_window(text, field="drift_window")
    assert info.value.field == "drift_window" and "'5000 rows'" in str(info.value)


def test_one_grammar_for_every_caller() -> None:
    """``1h30m`` works for loop, drift and retrain alike (it failed in drift and retrain):
    no module but arbiter.durations defines a duration or window parser."""
    src = Path(arbiter.__file__).parent
    defined = sorted(
        str(path.relative_to(src))
        for path in src.rglob("*.py")
        if re.search(r"^def (parse_duration|parse_window)\b", path.read_text(), re.M)
    )
    assert defined == ["durations.py"]
    assert parse_window("1h30m", field="window").period == timedelta(minutes=90)
