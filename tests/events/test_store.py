"""Round trip, views, feedback validation and the latest-label join."""

from __future__ import annotations

import inspect
import threading
from datetime import UTC, datetime

import pyarrow as pa
import pytest

import arbiter.events
from arbiter.errors import EventStoreError, InvalidInputError
from arbiter.events import (
    FEEDBACK_COLUMNS,
    PREDICTION_COLUMNS,
    EventStore,
    EventWriter,
    count_events,
)


def test_exported_members() -> None:
    """``__all__`` lists exactly the public names the package defines (httpx's check)."""
    public = {
        name
        for name, value in vars(arbiter.events).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert set(arbiter.events.__all__) == public
    assert len(arbiter.events.__all__) == len(public)


def test_empty_store_views_have_the_schema(store: EventStore) -> None:
    con = store.connect()
    assert [r[0] for r in con.sql("DESCRIBE predictions").fetchall()] == list(PREDICTION_COLUMNS)
    assert [r[0] for r in con.sql("DESCRIBE feedback").fetchall()] == list(FEEDBACK_COLUMNS)
    labeled = [r[0] for r in con.sql("DESCRIBE labeled").fetchall()]
    assert labeled == [*PREDICTION_COLUMNS, "label", "label_num", "label_ts"]
    for view in ("predictions", "feedback", "labeled"):
        assert con.sql(f"SELECT count(*) FROM {view}").fetchall() == [(0,)]
    types = dict(con.sql("SELECT column_name, column_type FROM (DESCRIBE predictions)").fetchall())
    assert types["ts"] == "TIMESTAMP WITH TIME ZONE"
    assert types["row_index"] == "INTEGER"
    assert count_events(store) == 0


def test_round_trip_preserves_values(store: EventStore) -> None:
    ts = datetime(2026, 11, 24, 12, 30, 1, 123456, tzinfo=UTC)
    with EventWriter(store) as writer:
        writer.append_prediction(
            request_id="r1", row_index=0, ts=ts, model="fraud", experiment="e", strategy="ab",
            unit_id="u1", unit_random=False, arm="challenger", role="served", alias="challenger",
            version="3", prediction="1", prediction_num=1.0, score=0.75, confidence=0.75,
            probabilities='{"0": 0.25, "1": 0.75}', latency_ms=1.5, features='{"x": 2}',
            protocol="arbiter", forced=True,
        )  # fmt: skip
        writer.append_predictions(
            {"request_id": "r2", "row_index": range(3), "model": "fraud", "score": [0.1, 0.2, 0.3]}
        )
    table = store.connect().sql("SELECT * FROM predictions ORDER BY request_id, row_index").arrow()
    table = table.read_all() if isinstance(table, pa.RecordBatchReader) else table
    rows = table.to_pylist()
    assert len(rows) == 4
    first = rows[0]
    assert first["ts"] == ts
    assert (first["model"], first["arm"], first["version"], first["forced"]) == (
        "fraud", "challenger", "3", True,
    )  # fmt: skip
    assert first["score"] == 0.75 and first["unit_random"] is False
    assert [r["score"] for r in rows[1:]] == [0.1, 0.2, 0.3]
    assert [r["row_index"] for r in rows[1:]] == [0, 1, 2]
    assert all(r["request_id"] == "r2" and r["error"] is None for r in rows[1:])
    assert count_events(store, model="fraud") == 4
    assert count_events(store, model="other") == 0


def test_latest_label_wins(store: EventStore) -> None:
    with EventWriter(store) as writer:
        writer.append_predictions({"request_id": "r", "row_index": [0, 1, 2], "model": "m"})
    early = datetime(2026, 1, 1, tzinfo=UTC)
    late = datetime(2026, 1, 2, tzinfo=UTC)
    # Posted out of order: the later ts wins, not the later write.
    store.write_feedback([{"request_id": "r", "row_index": 0, "label": 1, "ts": late}])
    store.write_feedback([{"request_id": "r", "row_index": 0, "label": 0, "ts": early}])
    # Same ts (one call): the later row wins.
    store.write_feedback(
        [
            {"request_id": "r", "row_index": 1, "label": "a"},
            {"request_id": "r", "row_index": 1, "label": 2.0},
        ]
    )
    con = store.connect()
    rows = con.sql("SELECT row_index, label, label_num FROM labeled ORDER BY row_index").fetchall()
    assert rows == [(0, "1", 1.0), (1, "2", 2.0), (2, None, None)]
    assert count_events(store, "feedback") == 4


@pytest.mark.parametrize(
    ("bad_row", "field"),
    [
        ({"row_index": 0, "label": 1}, "request_id"),
        ({"request_id": "", "row_index": 0, "label": 1}, "request_id"),
        ({"request_id": 7, "row_index": 0, "label": 1}, "request_id"),
        ({"request_id": "r", "label": 1}, "row_index"),
        ({"request_id": "r", "row_index": -1, "label": 1}, "row_index"),
        ({"request_id": "r", "row_index": True, "label": 1}, "row_index"),
        ({"request_id": "r", "row_index": 1.0, "label": 1}, "row_index"),
        ({"request_id": "r", "row_index": 0}, "label"),
        ({"request_id": "r", "row_index": 0, "label": None}, "label"),
        ({"request_id": "r", "row_index": 0, "label": 1, "ts": datetime(2026, 1, 1)}, "ts"),
        ({"request_id": "r", "row_index": 0, "label": 1, "colour": "red"}, "colour"),
    ],
)
def test_invalid_feedback_writes_nothing(store: EventStore, bad_row: dict, field: str) -> None:
    good = {"request_id": "ok", "row_index": 0, "label": 1}
    with pytest.raises(InvalidInputError) as info:
        store.write_feedback([good, good, bad_row])
    assert info.value.field == f"rows[2].{field}"
    assert field in str(info.value)
    assert store.segments("feedback") == []
    assert list(store.feedback_dir.iterdir()) == []


def test_feedback_group_commit(tmp_path) -> None:
    store = EventStore(tmp_path, feedback_linger_s=0.05)
    callers = 8
    barrier = threading.Barrier(callers)
    errors: list[BaseException] = []

    def post(i: int) -> None:
        barrier.wait()
        try:
            store.write_feedback([{"request_id": f"r{i}", "row_index": 0, "label": i}])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count_events(store, "feedback") == callers
    assert len(store.segments("feedback")) < callers


def test_feedback_write_failure_raises(store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(directory, table, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("arbiter.events.segments.write_segment", full_disk)
    with pytest.raises(EventStoreError, match="No space left"):
        store.write_feedback([{"request_id": "r", "row_index": 0, "label": 1}])
    monkeypatch.undo()
    assert store.write_feedback([{"request_id": "r", "row_index": 0, "label": 1}]) == 1


def test_awrite_feedback(store: EventStore) -> None:
    import asyncio

    rows = [{"request_id": "r", "row_index": i, "label": i % 2} for i in range(5)]
    assert asyncio.run(store.awrite_feedback(rows)) == 5
    assert count_events(store, "feedback") == 5


def test_count_events_rejects_bad_arguments(store: EventStore) -> None:
    with pytest.raises(InvalidInputError) as info:
        count_events(store, "labels")  # type: ignore[arg-type]
    assert info.value.field == "table"
    with pytest.raises(InvalidInputError):
        count_events(store, "feedback", model="m")
