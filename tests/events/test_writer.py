"""The buffered writer: append paths, flush triggers, failures, counters, lifecycle."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import numpy as np
import pyarrow as pa
import pytest

from arbiter.errors import EventStoreError, InvalidInputError
from arbiter.events import EventStore, EventWriter, count_events


def _disk_full(directory, table, **kwargs):
    raise OSError(28, "No space left on device")


def test_append_predictions_broadcasts_scalars(store: EventStore) -> None:
    writer = EventWriter(store)
    n = writer.append_predictions(
        {
            "request_id": "r",
            "row_index": np.arange(4, dtype=np.int64),
            "model": "m",
            "prediction_num": pa.array([0.0, 1.0, 0.0, 1.0]),
            "prediction": ("0", "1", "0", "1"),
        }
    )
    assert n == 4
    assert writer.append_predictions({"request_id": "s", "model": "m"}) == 1
    writer.close()
    rows = (
        store.connect()
        .sql(
            "SELECT request_id, row_index, prediction, prediction_num FROM predictions "
            "ORDER BY request_id, row_index"
        )
        .fetchall()
    )
    assert rows == [
        ("r", 0, "0", 0.0), ("r", 1, "1", 1.0), ("r", 2, "0", 0.0), ("r", 3, "1", 1.0),
        ("s", None, None, None),
    ]  # fmt: skip


def test_append_rejects_unknown_columns_and_ragged_batches(store: EventStore) -> None:
    writer = EventWriter(store)
    with pytest.raises(InvalidInputError) as info:
        writer.append_prediction(request_id="r", modle="m")
    assert info.value.field == "modle"
    with pytest.raises(InvalidInputError) as info:
        writer.append_predictions({"request_id": ["a", "b"], "row_index": [0]})
    assert info.value.field == "row_index"
    assert writer.stats().buffered == 0
    writer.close()
    assert store.segments("predictions") == []


def test_interrupted_append_leaves_the_buffer_aligned(store: EventStore) -> None:
    """An exception half-way through extending the columns must not misalign later rows."""

    class Exploding(list):
        def __iter__(self):
            raise KeyboardInterrupt

    writer = EventWriter(store)
    writer.append_prediction(request_id="a", row_index=0)
    with pytest.raises(KeyboardInterrupt):
        writer.append_predictions(
            {"request_id": "b", "row_index": [0], "features": Exploding(["x"])}
        )
    writer.append_prediction(request_id="c", row_index=0)
    writer.close()
    rows = store.connect().sql("SELECT request_id, features FROM predictions ORDER BY 1").fetchall()
    assert rows == [("a", None), ("c", None)]
    assert writer.stats().events_appended == 2


def test_background_flush_by_interval_and_by_size(store: EventStore) -> None:
    writer = EventWriter(store, flush_interval=0.05).start()
    writer.append_prediction(request_id="r", row_index=0)
    deadline = time.monotonic() + 5
    while writer.stats().events_written < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.stats().events_written == 1
    writer.close()

    sized = EventWriter(store, flush_interval=60.0, max_batch=100).start()
    sized.append_predictions({"request_id": "s", "row_index": range(250)})
    deadline = time.monotonic() + 5
    while sized.stats().events_written < 250 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sized.stats().events_written == 250
    sized.close()
    # 1 segment from the first writer; 250 rows split into segments of at most 100.
    assert len(store.segments("predictions")) == 1 + 3
    assert count_events(store) == 251


def test_failed_flush_keeps_rows_and_retries(
    store: EventStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    writer = EventWriter(store)
    writer.append_predictions({"request_id": "r", "row_index": range(10)})
    monkeypatch.setattr("arbiter.events.segments.write_segment", _disk_full)
    with caplog.at_level(logging.ERROR), pytest.raises(EventStoreError, match="10 rows stay"):
        writer.flush()
    assert "No space left" in caplog.text
    writer.append_predictions({"request_id": "s", "row_index": range(5)})
    stats = writer.stats()
    assert (stats.buffered, stats.flush_errors, stats.events_written) == (15, 1, 0)
    monkeypatch.undo()
    writer.close()
    assert writer.stats().events_written == 15
    order = store.connect().sql("SELECT request_id FROM predictions").fetchall()
    assert [r[0] for r in order] == ["r"] * 10 + ["s"] * 5  # failed rows kept their place


def test_buffer_overflow_drops_oldest_loudly(
    store: EventStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    writer = EventWriter(store, max_batch=10, max_buffer=20)
    monkeypatch.setattr("arbiter.events.segments.write_segment", _disk_full)
    writer.append_predictions({"request_id": "old", "row_index": range(15)})
    with pytest.raises(EventStoreError):
        writer.flush()
    with caplog.at_level(logging.ERROR):
        writer.append_predictions({"request_id": "new", "row_index": range(15)})
    assert "dropped the 10 oldest events" in caplog.text
    stats = writer.stats()
    assert (stats.buffered, stats.events_dropped, stats.events_appended) == (20, 10, 30)
    monkeypatch.undo()
    writer.close()
    rows = (
        store.connect()
        .sql("SELECT request_id, count(*) FROM predictions GROUP BY 1 ORDER BY 1")
        .fetchall()
    )
    assert rows == [("new", 15), ("old", 5)]


def test_unconvertible_values_become_null_and_are_counted(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = EventWriter(store)
    writer.append_prediction(request_id="r", row_index=0, score=0.5, version=3)
    writer.append_prediction(request_id="r", row_index=1, score="high", version="4")
    with caplog.at_level(logging.ERROR):
        writer.close()
    assert writer.stats().values_nulled == 1
    assert "'score'" in caplog.text
    rows = (
        store.connect().sql("SELECT score, version FROM predictions ORDER BY row_index").fetchall()
    )
    assert rows == [(0.5, "3"), (None, "4")]


def test_stats_and_on_flush(store: EventStore) -> None:
    seen: list[tuple[int, float]] = []
    writer = EventWriter(store, on_flush=lambda rows, seconds: seen.append((rows, seconds)))
    assert writer.stats().last_flush_unix is None
    writer.append_predictions({"request_id": "r", "row_index": range(7)})
    writer.flush()
    writer.flush()  # nothing buffered: no empty segment
    stats = writer.stats()
    assert (stats.events_appended, stats.events_written, stats.flushes, stats.buffered) == (
        7,
        7,
        1,
        0,
    )
    assert stats.last_flush_unix is not None and stats.last_flush_seconds is not None
    assert [rows for rows, _ in seen] == [7]
    writer.close()
    assert len(store.segments("predictions")) == 1


def test_close_is_idempotent_and_final(store: EventStore) -> None:
    writer = EventWriter(store, flush_interval=60.0).start()
    writer.append_prediction(request_id="r", row_index=0)
    writer.close()
    writer.close()
    assert count_events(store) == 1
    with pytest.raises(EventStoreError, match="closed"):
        writer.append_prediction(request_id="r", row_index=1)
    with pytest.raises(EventStoreError, match="closed"):
        writer.start()


def test_async_flush_and_close(store: EventStore) -> None:
    async def main() -> None:
        writer = EventWriter(store, flush_interval=60.0).start()
        writer.append_prediction(request_id="r", row_index=0)
        await writer.aflush()
        assert count_events(store) == 1
        writer.append_prediction(request_id="r", row_index=1)
        await writer.aclose()

    asyncio.run(main())
    assert count_events(store) == 2


def test_append_keeps_no_per_row_objects(store: EventStore) -> None:
    """The collector must not have more containers to walk as the buffer grows."""
    writer = EventWriter(store, max_buffer=100_000)
    writer.append_prediction(request_id="warm-up", row_index=0)
    gc.collect()
    before = len(gc.get_objects())
    for i in range(20_000):
        writer.append_prediction(request_id=f"r{i}", row_index=i, model="m", score=0.5)
    for i in range(200):
        writer.append_predictions({"request_id": f"b{i}", "row_index": range(10), "model": "m"})
    gc.collect()
    assert len(gc.get_objects()) - before < 50
    assert writer.stats().buffered == 22_001
    writer.close()


def test_invalid_parameters(store: EventStore) -> None:
    with pytest.raises(InvalidInputError) as info:
        EventWriter(store, flush_interval=0)
    assert info.value.field == "flush_interval"
    with pytest.raises(InvalidInputError):
        EventWriter(store, max_batch=0)
    with pytest.raises(InvalidInputError):
        EventWriter(store, max_batch=10, max_buffer=5)
