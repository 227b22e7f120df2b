"""``arbiter outcomes import`` / ``summary``: CSV and Parquet, validation before any write."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from arbiter.cli import app, main, status_codes
from arbiter.events import EventStore, count_events
from arbiter.events.outcome_files import import_outcome_file

runner = CliRunner()
T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    root = tmp_path / "home"
    root.mkdir()
    return root


def frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "unit_id": [f"u{i % 97}" for i in range(n)],
            "event": rng.choice(["purchase", "session", "chargeback"], n),
            "value": rng.gamma(2.0, 10.0, n).round(2),
            "ts": [T0 + timedelta(minutes=i) for i in range(n)],
            "request_id": [f"r{i}" if i % 3 else None for i in range(n)],
        }
    )


def stored(home: Path) -> pd.DataFrame:
    with EventStore(home).connect() as con:
        return con.sql("SELECT * FROM outcomes ORDER BY ts").df()


def run(*args: str) -> dict:
    result = runner.invoke(app, ["outcomes", *args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def test_csv_and_parquet_round_trip(home: Path, tmp_path: Path) -> None:
    expected = frame(1_000)
    csv = tmp_path / "outcomes.csv"
    expected.assign(ts=expected.ts.map(lambda t: t.isoformat().replace("+00:00", "Z"))).to_csv(
        csv, index=False
    )
    parquet = tmp_path / "outcomes.parquet"
    expected.to_parquet(parquet)  # ts: timestamp with time zone
    assert run("import", str(csv), "--home", str(home)) == {
        "dry_run": False,
        "file": str(csv),
        "rows": 1_000,
        "stored": 1_000,
    }
    assert run("import", str(parquet), "--home", str(home))["stored"] == 1_000
    got = stored(home)
    assert len(got) == 2_000 == count_events(EventStore(home), "outcomes")
    for part in (got.iloc[0::2], got.iloc[1::2]):  # each file once, interleaved by ts
        part = part.reset_index(drop=True)
        pd.testing.assert_series_equal(part.unit_id, expected.unit_id, check_dtype=False)
        np.testing.assert_allclose(part.value, expected.value)
        assert (part.ts == expected.ts).all()
        assert part.request_id.isna().tolist() == expected.request_id.isna().tolist()


def test_defaults_offsets_and_integer_units(home: Path, tmp_path: Path) -> None:
    csv = tmp_path / "o.csv"
    csv.write_text("unit_id,event\n17,session\nu-2,purchase\n")
    before = datetime.now(UTC)
    assert run("import", str(csv), "--home", str(home))["stored"] == 2
    got = stored(home)
    assert got.unit_id.tolist() == ["17", "u-2"] and got.value.tolist() == [1.0, 1.0]
    assert (got.ts >= before - timedelta(seconds=1)).all()
    offsets = tmp_path / "offsets.csv"
    offsets.write_text("unit_id,event,value,ts\nu,buy,2,2026-12-01T12:00:00+02:00\n")
    run("import", str(offsets), "--home", str(home))
    assert stored(home).ts.min() == pd.Timestamp("2026-12-01T10:00:00Z")
    parquet = tmp_path / "ints.parquet"
    pq.write_table(
        pa.table({"unit_id": pa.array([5, 6]), "event": ["a", "b"], "value": pa.array([1, 2])}),
        parquet,
    )
    assert run("import", str(parquet), "--home", str(home))["stored"] == 2
    gz = tmp_path / "o.csv.gz"
    frame(5).assign(ts=lambda f: f.ts.map(pd.Timestamp.isoformat)).to_csv(gz, index=False)
    assert run("import", str(gz), "--home", str(home))["stored"] == 5


FUTURE = (datetime.now(UTC) + timedelta(days=30)).isoformat()
BAD_CSV = [
    ("unit_id,event\nu1,buy\n,buy\n", "line 3: unit_id", "rows[1].unit_id"),
    ("unit_id,event\nu1,buy\nu2,no space\n", "line 3: event", "rows[1].event"),
    ("unit_id,event,value\nu1,buy,1\nu2,buy,abc\n", "line 3: value", "rows[1].value"),
    ("unit_id,event,value\nu1,buy,1\nu2,buy,\n", "line 3: value", "rows[1].value"),
    ("unit_id,event,value\nu1,buy,inf\n", "line 2: value", "rows[0].value"),
    ("unit_id,event,ts\nu1,buy,2026-12-01T10:00:00\n", "line 2: ts", "rows[0].ts"),
    ("unit_id,event,ts\nu1,buy,tomorrow\n", "line 2: ts", "rows[0].ts"),
    (f"unit_id,event,ts\nu1,buy,{FUTURE}\n", "line 2: ts", "rows[0].ts"),
    ("unit_id,event,ts\nu1,buy,1999-12-31T00:00:00Z\n", "line 2: ts", "rows[0].ts"),
    ("unit_id,event,colour\nu1,buy,red\n", "unknown column 'colour'", "columns.colour"),
    ("user_id,event\nu1,buy\n", "no unit_id column", "columns.unit_id"),
]


@pytest.mark.parametrize(("text", "message", "field"), BAD_CSV)
def test_bad_csv_names_the_row_and_writes_nothing(
    home: Path, tmp_path: Path, text: str, message: str, field: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(Exception) as info:
        import_outcome_file(EventStore(home), path)
    assert message in str(info.value) and info.value.field == field  # type: ignore[attr-defined]
    assert count_events(EventStore(home), "outcomes") == 0


def test_bad_row_late_in_a_big_file_stores_nothing(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Validation of the whole file comes before the first segment is written."""
    rows = frame(25_000)
    rows.loc[24_321, "value"] = np.inf
    path = tmp_path / "big.parquet"
    rows.to_parquet(path)
    with pytest.raises(SystemExit) as info:
        main(["outcomes", "import", str(path), "--home", str(home)])
    assert info.value.code == status_codes.BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "row 24322: value must be a finite number" in err
    assert "Traceback" not in err
    assert count_events(EventStore(home), "outcomes") == 0
    assert not list(EventStore(home).outcomes_dir.glob("*.parquet"))


def test_segments_bound_memory(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "o.parquet"
    frame(2_500).to_parquet(path)
    result = import_outcome_file(EventStore(home), path, segment_rows=1_000)
    assert (result.stored, result.segments) == (2_500, 3)
    assert len(EventStore(home).segments("outcomes")) == 3


def test_dry_run_and_ignore_extra(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    frame(10).assign(ts=lambda f: f.ts.map(pd.Timestamp.isoformat), note="x").to_csv(
        path, index=False
    )
    with pytest.raises(Exception, match="unknown column 'note'"):
        import_outcome_file(EventStore(home), path)
    out = run("import", str(path), "--home", str(home), "--dry-run", "--ignore-extra")
    assert (out["rows"], out["stored"], out["dry_run"]) == (10, 0, True)
    assert count_events(EventStore(home), "outcomes") == 0
    assert run("import", str(path), "--home", str(home), "--ignore-extra")["stored"] == 10


def test_naive_parquet_timestamps_are_refused(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "naive.parquet"
    frame(5).assign(ts=lambda f: f.ts.dt.tz_localize(None)).to_parquet(path)
    with pytest.raises(Exception, match="without a time zone"):
        import_outcome_file(EventStore(home), path)
    assert count_events(EventStore(home), "outcomes") == 0


def test_missing_file_and_unknown_type(home: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["outcomes", "import", str(tmp_path / "nope.csv"), "--home", str(home)])
    assert info.value.code == status_codes.NOT_FOUND
    other = tmp_path / "o.json"
    other.write_text("{}")
    with pytest.raises(SystemExit) as info:
        main(["outcomes", "import", str(other), "--home", str(home)])
    assert info.value.code == status_codes.BAD_INPUT


def test_summary(home: Path, tmp_path: Path) -> None:
    assert run("summary", "--home", str(home)) == {"events": [], "rows": 0}
    rows = frame(300)
    rows.to_parquet(tmp_path / "o.parquet")
    run("import", str(tmp_path / "o.parquet"), "--home", str(home))
    out = run("summary", "--home", str(home))
    assert out["rows"] == 300
    expected = rows.groupby("event").agg(
        rows=("value", "size"), units=("unit_id", "nunique"), value_sum=("value", "sum")
    )
    for e in out["events"]:
        ref = expected.loc[e["event"]]
        assert (e["rows"], e["units"]) == (ref.rows, ref.units)
        assert e["value_sum"] == pytest.approx(ref.value_sum, rel=1e-12)
        first = rows[rows.event == e["event"]].ts.min()
        assert pd.Timestamp(e["first_ts"]) == first
    text = runner.invoke(app, ["outcomes", "summary", "--home", str(home)])
    assert text.exit_code == 0 and "purchase" in text.output


def test_progress_bar_path(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from arbiter.cli.commands import outcomes

    monkeypatch.setattr(outcomes, "PROGRESS_ROWS", 1)
    monkeypatch.setattr(outcomes, "PROGRESS_BYTES", 1)
    frame(50).to_parquet(tmp_path / "o.parquet")
    frame(50).assign(ts=lambda f: f.ts.map(pd.Timestamp.isoformat)).to_csv(
        tmp_path / "o.csv", index=False
    )
    for name in ("o.parquet", "o.csv"):
        result = runner.invoke(
            app, ["outcomes", "import", str(tmp_path / name), "--home", str(home)]
        )
        assert result.exit_code == 0, (result.output, result.exception)
        assert "stored 50 outcome events" in result.output
    assert count_events(EventStore(home), "outcomes") == 100


def test_unreadable_csv_is_one_line(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("unit_id,event\nu1,buy\nu2,buy,extra\n")
    with pytest.raises(SystemExit) as info:
        main(["outcomes", "import", str(path), "--home", str(home)])
    assert info.value.code == status_codes.BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot read ragged.csv") and "\n" not in err
    assert "Line: 3; Expected Number of Columns: 2 Found: 3" in err
    assert count_events(EventStore(home), "outcomes") == 0


def test_header_only_and_categorical_files(home: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("unit_id,colour\n")
    with pytest.raises(Exception, match="no event column"):
        import_outcome_file(EventStore(home), empty)
    (tmp_path / "header.csv").write_text("unit_id,event\n")
    assert import_outcome_file(EventStore(home), tmp_path / "header.csv").stored == 0
    rows = frame(40).astype({"event": "category", "unit_id": "category"})
    rows.to_parquet(tmp_path / "cat.parquet")
    assert import_outcome_file(EventStore(home), tmp_path / "cat.parquet").stored == 40
    assert sorted(stored(home).event.unique()) == sorted(rows.event.unique())


TS_TEXT = [
    "2026-12-01T10:00:00Z",
    "2026-12-01T10:00:00z",
    "2026-12-01T10:00:00+05:30",
    "2026-12-01T10:00:00+0530",
    "2026-12-01T10:00:00-05",
    "2026-12-01 10:00:00Z",
    "2026-12-01T10:00Z",
    "2026-12-01T10:00:00.5+01:00",
    "2026-12-01T10:00:00.123456Z",
    "2026-12-01T10:00:00 +01:00",
    "2000-01-01T00:00:00Z",
    "1999-12-31T23:59:59Z",
    "2026-12-01T10:00:00",
    "2026-12-01",
    "2026-12-01T25:00:00Z",
    "2026-02-30T10:00:00Z",
    "yesterday",
]


def test_ts_text_agrees_with_the_api_validator(home: Path, tmp_path: Path) -> None:
    """The column-wise ts parser accepts and converts exactly as ``parse_ts`` (POST /outcomes)."""
    import time

    from arbiter.errors import InvalidInputError
    from arbiter.events.outcomes import parse_ts

    now = datetime.now(UTC)
    cases = [
        *TS_TEXT,
        (now + timedelta(hours=23)).isoformat(),
        (now + timedelta(hours=25)).isoformat(),
    ]
    for i, text in enumerate(cases):
        try:
            expected: int | None = parse_ts(text, "ts", time.time_ns() // 1000)
        except InvalidInputError:
            expected = None
        path = tmp_path / f"{i}.csv"
        path.write_text(f"unit_id,event,ts\nu{i},e,{text}\n")
        try:
            import_outcome_file(EventStore(home), path)
        except InvalidInputError as exc:
            assert expected is None, (text, exc)
            assert exc.field == "rows[0].ts"
            continue
        with EventStore(home).connect() as con:
            ((got,),) = con.sql(
                "SELECT epoch_us(ts) FROM outcomes WHERE unit_id = $u", params={"u": f"u{i}"}
            ).fetchall()
        assert got == expected, text


def test_missing_home_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text("unit_id,event\nu,e\n")
    with pytest.raises(SystemExit) as info:
        main(["outcomes", "import", str(path), "--home", str(tmp_path / "nowhere")])
    assert info.value.code == status_codes.NOT_FOUND
    assert not (tmp_path / "nowhere").exists()
