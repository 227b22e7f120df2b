"""Reading the current window from the event log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from arbiter.durations import WindowSpec, parse_duration, parse_window
from arbiter.errors import InvalidInputError
from arbiter.events import EventStore, EventWriter
from arbiter.events.window import read_window

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _write(home: Path, n: int = 400) -> EventStore:
    store = EventStore(home)
    rng = np.random.default_rng(0)
    ages = rng.normal(40, 10, n)
    features = [
        json.dumps({"age": float(a), "city": c, "vip": bool(i % 3 == 0)})
        for i, (a, c) in enumerate(zip(ages, rng.choice(["a", "b"], n), strict=True))
    ]
    # One row per minute, the newest at NOW - 1 min.
    ts = [int((NOW - timedelta(minutes=n - i)).timestamp() * 1e6) for i in range(n)]
    writer = EventWriter(store)
    writer.append_predictions(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "row_index": [0] * n,
            "ts": ts,
            "model": "fraud",
            "role": "served",
            "version": ["1"] * (n // 2) + ["2"] * (n - n // 2),
            "prediction": ["1"] * n,
            "prediction_num": [1.0] * n,
            "score": rng.random(n).tolist(),
            "features": features,
        }
    )
    # Noise that must be left out: shadow rows, errors, forced arms, another model.
    writer.append_predictions(
        {
            "request_id": ["s"] * 5,
            "ts": ts[-5:],
            "model": "fraud",
            "role": "shadow",
            "features": features[:5],
        }
    )
    writer.append_predictions(
        {
            "request_id": ["e"] * 5,
            "ts": ts[-5:],
            "model": "fraud",
            "role": "served",
            "error": "boom",
            "features": features[:5],
        }
    )
    writer.append_predictions(
        {
            "request_id": ["f"] * 5,
            "ts": ts[-5:],
            "model": "fraud",
            "role": "served",
            "forced": True,
            "features": features[:5],
        }
    )
    writer.append_predictions(
        {
            "request_id": ["o"] * 5,
            "ts": ts[-5:],
            "model": "other",
            "role": "served",
            "features": features[:5],
        }
    )
    writer.close()
    return store


def test_parse_duration() -> None:
    # The one grammar of arbiter.durations (tests/test_durations.py): 1h30m works here too.
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("6h") == timedelta(hours=6)
    assert parse_duration("1d") == timedelta(days=1)
    assert parse_duration("1.5h") == timedelta(minutes=90)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    for bad in ("", "d", "-1d", "0h", "1y"):
        with pytest.raises(InvalidInputError):
            parse_duration(bad)


def test_parse_window_takes_a_period_a_row_count_or_none() -> None:
    assert parse_window("6h") == WindowSpec(period=timedelta(hours=6), text="6h")
    assert parse_window("5000 rows") == WindowSpec(rows=5000, text="5000 rows")
    assert parse_window("1 row").rows == 1 and parse_window("20ROWS").rows == 20
    assert parse_window(None) == parse_window("none") == parse_window(" None ") == WindowSpec()
    assert parse_window("7d").describe() == "last 7d"
    assert parse_window("300 rows").describe() == "last 300 rows"
    assert WindowSpec().describe() == "whole log"
    for bad in ("", "0 rows", "-5 rows", "5 row s", "1y", "rows", "5000"):
        with pytest.raises(InvalidInputError) as info:
            parse_window(bad, field="drift_window")
        assert info.value.field == "drift_window" and "'5000 rows'" in str(info.value)


def test_window_by_time_and_by_count(tmp_path: Path) -> None:
    store = _write(tmp_path)
    columns = {"age": "numeric", "city": "categorical", "vip": "categorical", "gone": "numeric"}
    with store.connect() as con:
        w = read_window(con, "fraud", columns, window=timedelta(hours=1), now=NOW)
        assert w.n == 60  # rows at NOW-60min ... NOW-1min
        assert list(w.features.columns) == ["age", "city", "vip", "gone"]
        assert w.features["age"].dtype == np.float64
        assert set(w.features["city"]) == {"a", "b"}
        assert set(w.features["vip"]) == {"true", "false"}
        assert w.features["gone"].isna().all()
        assert w.scores.notna().all()
        last = read_window(con, "fraud", columns, last=100)
        assert last.n == 100 and last.end == NOW - timedelta(minutes=1)
        # ``now`` bounds the last rows too: the window as it stood ten minutes ago.
        earlier = read_window(con, "fraud", columns, last=100, now=NOW - timedelta(minutes=10))
        assert earlier.n == 100 and earlier.end == NOW - timedelta(minutes=10)
        by_version = read_window(con, "fraud", columns, last=400, version="1")
        assert by_version.scores.notna().sum() == 200  # scores only from version 1 rows
        assert by_version.n == 400  # features from every served row
        assert read_window(con, "nobody", columns, last=10).n == 0
    with pytest.raises(InvalidInputError):
        read_window(None, "fraud", columns, last=0)  # type: ignore[arg-type]


@pytest.mark.slow
def test_window_reads_a_million_rows_quickly(tmp_path: Path) -> None:
    import time

    store = EventStore(tmp_path)
    n = 1_000_000
    rng = np.random.default_rng(0)
    a = rng.normal(size=n).round(4).astype(str)
    features = np.char.add(np.char.add('{"age": ', a), ', "city": "x"}').tolist()
    writer = EventWriter(store, max_batch=250_000, max_buffer=1_000_000)
    writer.append_predictions(
        {
            "request_id": "r",
            "row_index": np.arange(n, dtype=np.int32),
            "model": "m",
            "role": "served",
            "features": features,
        }
    )
    writer.close()
    with store.connect() as con:
        start = time.perf_counter()
        w = read_window(con, "m", {"age": "numeric", "city": "categorical"}, last=n)
        elapsed = time.perf_counter() - start
    assert w.n == n
    assert elapsed < 10.0
