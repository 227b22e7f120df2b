"""Export of one model's labelled log."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from arbiter.errors import InvalidInputError, NotFoundError
from arbiter.events import PREDICTION_COLUMNS, EventStore, EventWriter, export


@pytest.fixture
def filled(store: EventStore) -> EventStore:
    with EventWriter(store) as writer:
        writer.append_predictions(
            {"request_id": "a", "row_index": range(3), "model": "fraud", "prediction": "1",
             "features": ['{"x": 1}', '{"x": "a,b"}', '{"x": 3}']}
        )  # fmt: skip
        writer.append_predictions({"request_id": "b", "row_index": [0], "model": "churn"})
    store.write_feedback(
        [
            {"request_id": "a", "row_index": 1, "label": 0},
            {"request_id": "a", "row_index": 1, "label": 1},
        ]
    )
    return store


def test_export_csv(filled: EventStore, tmp_path: Path) -> None:
    out = tmp_path / "fraud.csv"
    assert export(filled, "fraud", out) == 3
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [*PREDICTION_COLUMNS, "label", "label_num", "label_ts"]
    assert [r["row_index"] for r in rows] == ["0", "1", "2"]
    assert [r["label"] for r in rows] == ["", "1", ""]
    assert rows[1]["features"] == '{"x": "a,b"}'
    assert rows[0]["ts"].endswith("+00")  # UTC whatever the host's zone
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_export_parquet_overwrites_atomically(filled: EventStore, tmp_path: Path) -> None:
    out = tmp_path / "fraud.parquet"
    out.write_text("old")
    assert export(filled, "fraud", out, format="parquet") == 3
    table = pq.read_table(out)
    assert table.num_rows == 3
    assert table.column("label").to_pylist() == [None, "1", None]
    assert set(table.column("model").to_pylist()) == {"fraud"}


def test_export_unknown_model_names_the_known_ones(filled: EventStore, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    with pytest.raises(NotFoundError, match="'churn', 'fraud'"):
        export(filled, "frad", out)
    assert not out.exists()


def test_export_empty_store_and_bad_arguments(store: EventStore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="none"):
        export(store, "fraud", tmp_path / "x.csv")
    with pytest.raises(InvalidInputError) as info:
        export(store, "fraud", tmp_path / "x.json", format="json")  # type: ignore[arg-type]
    assert info.value.field == "format"
    with pytest.raises(NotFoundError, match="does not exist"):
        export(store, "fraud", tmp_path / "missing" / "x.csv")
