"""The query layer: named views (forced rows out, one label per row) and the bound Scope."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from arbiter.errors import InvalidInputError
from arbiter.events import (
    FEEDBACK_SCHEMA,
    PREDICTIONS_SCHEMA,
    EventStore,
    Scope,
    count_events,
    export,
)
from arbiter.events.query import VIEWS, latest_labels_sql, restrict_predictions
from arbiter.events.segments import write_segment
from arbiter.events.views import connect, connect_tables, snapshot_latest_labels

T0 = datetime(2026, 9, 21, 12, 0, tzinfo=UTC)
QUOTED = "o'brien; DROP TABLE x --"


def _predictions(rows: list[dict[str, Any]]) -> pa.Table:
    defaults = {"row_index": 0, "model": "m", "experiment": "m-ab", "role": "served"}
    defaults |= {"arm": "champion", "forced": False, "strategy": "ab"}
    full = [{**defaults, **r} for r in rows]
    for i, r in enumerate(full):
        r.setdefault("ts", T0 + timedelta(seconds=i))
    return pa.Table.from_pylist(full, schema=PREDICTIONS_SCHEMA)


def _feedback(rows: list[dict[str, Any]]) -> pa.Table:
    full = [{"row_index": 0, "ts": T0 + timedelta(hours=1), **r} for r in rows]
    for r in full:
        r.setdefault("label_num", float(r["label"]))
    return pa.Table.from_pylist(full, schema=FEEDBACK_SCHEMA)


def _ids(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[str]:
    return sorted(r[0] for r in con.execute(sql, params).fetchall())


@pytest.fixture
def mixed(store: EventStore) -> EventStore:
    """Served, shadow, interleaved and forced rows of two experiments, with labels."""
    write_segment(
        store.predictions_dir,
        _predictions(
            [
                {"request_id": "a"},
                {"request_id": "a", "role": "shadow", "version": "2"},
                {"request_id": "b", "arm": "challenger"},
                {"request_id": "f", "arm": "challenger", "forced": True},
                {"request_id": "n", "forced": None},  # older segments: null counts as unforced
                {"request_id": "i", "role": "interleaved"},
                {"request_id": "o", "experiment": "m-other"},
                {"request_id": "q", "model": QUOTED, "experiment": QUOTED},
            ]
        ),
    )
    write_segment(
        store.feedback_dir,
        _feedback([{"request_id": r, "label": "1"} for r in ("a", "b", "f", "q")]),
    )
    return store


def test_views_exist_and_leave_forced_rows_out(mixed: EventStore) -> None:
    with mixed.connect() as con:
        names = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        assert set(VIEWS) <= names
        assert _ids(con, "SELECT request_id FROM served") == ["a", "b", "n", "o", "q"]
        assert _ids(con, "SELECT request_id FROM shadowed") == ["a"]
        assert _ids(con, "SELECT request_id FROM unforced") == ["a", "a", "b", "i", "n", "o", "q"]
        assert _ids(con, "SELECT request_id FROM labeled") == ["a", "a", "b", "i", "n", "o", "q"]
        labelled = "SELECT request_id FROM labeled WHERE label IS NOT NULL"
        assert _ids(con, labelled) == ["a", "a", "b", "q"]
        # predictions and all_labeled keep everything (export, raw counts)
        assert len(_ids(con, "SELECT request_id FROM predictions")) == 8
        assert "f" in _ids(con, "SELECT request_id FROM all_labeled WHERE label IS NOT NULL")


def test_latest_label_wins_then_later_file_then_later_row(store: EventStore) -> None:
    write_segment(
        store.predictions_dir,
        _predictions([{"request_id": r} for r in ("late", "file", "row", "once")]),
    )
    t = T0 + timedelta(hours=1)
    write_segment(
        store.feedback_dir,
        _feedback(
            [
                {"request_id": "late", "label": "0", "ts": t + timedelta(seconds=5)},
                {"request_id": "file", "label": "0", "ts": t},
                {"request_id": "row", "label": "0", "ts": t},
                {"request_id": "row", "label": "1", "ts": t},  # same file, later row
                {"request_id": "once", "label": "1", "ts": t},
            ]
        ),
    )
    write_segment(
        store.feedback_dir,
        _feedback(
            [
                {"request_id": "late", "label": "1", "ts": t},  # later file, earlier ts
                {"request_id": "file", "label": "1", "ts": t},  # later file, same ts
            ]
        ),
    )
    expected = {"late": "0", "file": "1", "row": "1", "once": "1"}
    with store.connect() as con:
        labeled = dict(con.execute("SELECT request_id, label FROM labeled").fetchall())
        assert labeled == expected
        assert con.execute("SELECT count(*) FROM labeled").fetchone() == (4,)
        # the restricted form used by the bandit and canary queries applies the same rule
        sql = latest_labels_sql("WHERE request_id IN ('late', 'file')", fields=("label",))
        assert dict(con.execute(f"SELECT request_id, label FROM ({sql})").fetchall()) == {
            "late": "0",
            "file": "1",
        }


def test_label_tie_break_follows_file_names_not_the_order_files_are_passed(
    store: EventStore,
) -> None:
    # The rule orders files by name (through read_parquet's file index, which follows the
    # listing): a later-named file wins a ts tie even when listed first.
    predictions = write_segment(store.predictions_dir, _predictions([{"request_id": "tie"}]))
    t = T0 + timedelta(hours=1)
    first = write_segment(
        store.feedback_dir, _feedback([{"request_id": "tie", "label": "0", "ts": t}])
    )
    second = write_segment(
        store.feedback_dir, _feedback([{"request_id": "tie", "label": "1", "ts": t}])
    )
    assert str(first) < str(second)
    for files in ([first, second], [second, first]):
        con = connect([predictions], files)
        assert con.execute("SELECT label FROM labeled").fetchall() == [("1",)]
        snapshot_latest_labels(con)
        assert con.execute("SELECT label FROM labeled").fetchall() == [("1",)]
        con.close()


def test_latest_labels_sql_only_accepts_known_fields() -> None:
    with pytest.raises(ValueError, match="fields"):
        latest_labels_sql(fields=("label; DROP TABLE x",))


def test_scope_renders_bound_parameters_only() -> None:
    scope = Scope(QUOTED, "e", start=T0, end=T0 + timedelta(hours=1), last=5)
    where = scope.where()
    assert where == "model = $model AND experiment = $experiment AND ts >= $start AND ts <= $end"
    assert scope.newest() == "ORDER BY ts DESC, request_id DESC, row_index DESC LIMIT $last"
    assert scope.params == {
        "model": QUOTED,
        "experiment": "e",
        "start": T0,
        "end": T0 + timedelta(hours=1),
        "last": 5,
    }
    assert QUOTED not in where + scope.newest()
    assert Scope("m").where("p") == "p.model = $model" and Scope("m").newest() == ""
    assert set(Scope("m").params) == set(re.findall(r"\$(\w+)", Scope("m").where()))
    with pytest.raises(ValueError, match="identifier"):
        Scope("m").where("p; DROP")
    with pytest.raises(InvalidInputError) as info:
        Scope("m", last=0)
    assert info.value.field == "last"


def test_scope_with_a_quote_in_the_model_name(mixed: EventStore, tmp_path: Path) -> None:
    scope = Scope(QUOTED, QUOTED)
    with mixed.connect() as con:
        rows = con.execute(
            f"SELECT request_id, label FROM labeled WHERE {scope.where()}", scope.params
        ).fetchall()
    assert rows == [("q", "1")]
    assert count_events(mixed, model=QUOTED) == 1
    assert count_events(mixed, model="m") == 7  # forced rows included: a raw count
    assert export(mixed, QUOTED, tmp_path / "q.csv") == 1


def test_scope_time_and_row_windows(store: EventStore) -> None:
    # ten requests one second apart; "t5" is a batch of two rows sharing one ts
    rows = [{"request_id": f"t{i}", "ts": T0 + timedelta(seconds=i)} for i in range(10)]
    rows.append({"request_id": "t5", "row_index": 1, "ts": T0 + timedelta(seconds=5)})
    write_segment(store.predictions_dir, _predictions(rows))

    def read(scope: Scope) -> list[tuple[str, int]]:
        sql = f"SELECT request_id, row_index FROM served WHERE {scope.where()} {scope.newest()}"
        with store.connect() as con:
            return sorted(con.execute(sql, scope.params).fetchall())

    start, end = T0 + timedelta(seconds=3), T0 + timedelta(seconds=5)
    assert read(Scope("m", start=start, end=end)) == [
        ("t3", 0), ("t4", 0), ("t5", 0), ("t5", 1),
    ]  # fmt: skip
    assert read(Scope("m", end=end, last=2)) == [("t5", 0), ("t5", 1)]
    assert read(Scope("m", end=end, last=1)) == [("t5", 1)]  # ties broken the same every time
    assert read(Scope("m", start=start, last=100)) == read(Scope("m", start=start))
    assert read(Scope("m", "m-ab")) == read(Scope("m")) and read(Scope("m", "x")) == []


def test_a_time_bound_is_pushed_into_the_parquet_scan(store: EventStore) -> None:
    rows = [
        {"request_id": str(i), "model": "mx"[i % 2], "ts": T0 + timedelta(seconds=i - 5)}
        for i in range(10)
    ]
    write_segment(store.predictions_dir, _predictions(rows))
    scope = Scope("m", start=T0)
    with store.connect() as con:
        plan = con.execute(
            f"EXPLAIN SELECT request_id FROM served WHERE {scope.where()}", scope.params
        ).fetchall()
    text = "\n".join(r[1] for r in plan).replace(" ", "")
    scan = text[text.index("READ_PARQUET") :]  # the filters the Parquet reader applies
    assert "ts>=" in scan and "model='m'" in scan, text


def test_restrict_predictions_narrows_every_view(mixed: EventStore) -> None:
    with mixed.connect() as con:
        restrict_predictions(con, "model = $model AND request_id <> $drop", {
            "model": "m", "drop": "b",
        })  # fmt: skip
        assert _ids(con, "SELECT request_id FROM served") == ["a", "n", "o"]
        assert _ids(con, "SELECT request_id FROM labeled WHERE label IS NOT NULL") == ["a", "a"]
        assert len(_ids(con, "SELECT request_id FROM _all_predictions")) == 8
    with mixed.connect() as con:
        restrict_predictions(con, "model = $model", {"model": QUOTED})
        assert _ids(con, "SELECT request_id FROM served") == ["q"]
    with mixed.connect() as con, pytest.raises(ValueError, match="drop"):
        restrict_predictions(con, "request_id <> $drop", {})


def test_in_memory_tables_give_the_same_views(mixed: EventStore) -> None:
    with mixed.connect() as con:
        predictions = con.sql("SELECT * FROM predictions").to_arrow_table()
        feedback = con.sql("SELECT * FROM feedback").to_arrow_table()
        expected = {v: _ids(con, f"SELECT request_id FROM {v}") for v in VIEWS}
    with connect_tables(predictions, feedback) as con:
        assert {v: _ids(con, f"SELECT request_id FROM {v}") for v in VIEWS} == expected


# --- the filters live in the query layer only -------------------------------------------------

SRC = Path(__file__).resolve().parents[2] / "src" / "arbiter"
QUERY_LAYER = {SRC / "events" / "views.py", SRC / "events" / "query.py"}
# The unforced filter in any spelling: coalesce(forced, false), coalesce(p.forced, ...),
# forced IS NOT TRUE, forced = false, forced <> true.
_FORCED = re.compile(
    r"coalesce\(\s*(\w+\.)?forced|forced\s+IS\s+(NOT\s+TRUE|FALSE)|forced\s*(=\s*false|<>\s*true)",
    re.IGNORECASE,
)


def test_the_forced_filter_is_written_only_in_the_query_layer() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{i}"
        for path in sorted(SRC.rglob("*.py"))
        if path not in QUERY_LAYER
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _FORCED.search(line)
    ]
    assert not offenders, f"use the views of arbiter.events.query instead: {offenders}"


def test_the_guard_catches_each_spelling() -> None:
    for bad in (
        "WHERE NOT coalesce(forced, false)",
        "AND NOT coalesce(p.forced, false)",
        "forced IS NOT TRUE",
        "forced = false",
        "forced <> TRUE",
    ):
        assert _FORCED.search(bad), bad
    assert not _FORCED.search("forced=forced_arm is not None")
    assert not _FORCED.search("is logged with ``forced = true`` so reports leave it out")
