"""``arbiter.outcomes.post`` against a live gateway, ``record_outcomes`` in process, export."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from typer.testing import CliRunner

import arbiter.outcomes
from arbiter import ABExperiment
from arbiter.cli import app
from arbiter.errors import ArbiterError, InvalidInputError, NotFoundError
from arbiter.events import EventStore, count_events
from arbiter.events.export import export_outcomes
from arbiter.gateway.responses import UnauthorizedError


def test_post_single_and_many(running: Any) -> None:
    server, home = running({"fraud": {}})
    row = {"unit_id": "u-1", "event": "purchase", "value": np.float64(12.5)}
    assert arbiter.outcomes.post(server.url, row) == 1
    rows = [
        {"unit_id": "u-2", "event": "session", "ts": datetime(2026, 12, 1, 10, tzinfo=UTC)},
        {"unit_id": "u-3", "event": "session", "ts": pd.Timestamp("2026-12-01T11:00:00Z")},
    ]
    assert arbiter.outcomes.post(server.url + "/outcomes", rows) == 2
    with EventStore(home.root).connect() as con:
        got = con.sql("SELECT unit_id, value, ts FROM outcomes ORDER BY unit_id").fetchall()
    assert got[0][:2] == ("u-1", 12.5)
    assert got[2][2] == datetime(2026, 12, 1, 11, tzinfo=UTC)


def test_post_errors(running: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARBITER_API_TOKEN", "s3cret")
    server, home = running({"fraud": {}})
    row = {"unit_id": "u-1", "event": "purchase"}
    with pytest.raises(UnauthorizedError, match="401"):
        arbiter.outcomes.post(server.url, row, token="wrong")
    assert arbiter.outcomes.post(server.url, row) == 1  # token from ARBITER_API_TOKEN
    monkeypatch.delenv("ARBITER_API_TOKEN")
    with pytest.raises(UnauthorizedError):
        arbiter.outcomes.post(server.url, row)
    naive = {"unit_id": "u", "event": "buy", "ts": datetime(2026, 12, 1)}
    with pytest.raises(InvalidInputError, match="time zone") as info:
        arbiter.outcomes.post(server.url, [row, naive], token="s3cret")
    assert info.value.field == "outcomes[1].ts"
    with pytest.raises(InvalidInputError) as info:
        arbiter.outcomes.post(server.url, {**row, "value": "12"}, token="s3cret")
    assert info.value.field == "value"
    assert count_events(EventStore(home.root), "outcomes") == 1
    with pytest.raises(NotFoundError):
        arbiter.outcomes.post(server.url + "/models", row, token="s3cret")


def test_post_unreachable() -> None:
    with pytest.raises(ArbiterError, match="cannot post outcomes"):
        arbiter.outcomes.post("http://127.0.0.1:9", {"unit_id": "u", "event": "e"}, timeout=5)


def _experiment(home: Path) -> ABExperiment:
    x, y = np.zeros((20, 2)), np.array([0, 1] * 10)
    champion = DummyClassifier(strategy="most_frequent").fit(x, y)
    challenger = DummyClassifier(strategy="prior").fit(x, y)
    return ABExperiment(champion, challenger, home=home, model="fraud", seed=1)


def test_record_outcomes_in_process(tmp_path: Path) -> None:
    with _experiment(tmp_path) as exp:
        exp.predict(np.zeros((1, 2)), unit_id="user-1")
        assert exp.record_outcomes({"unit_id": "user-1", "event": "purchase", "value": 3}) == 1
        many = [{"unit_id": "user-1", "event": "session"}, {"unit_id": "user-2", "event": "x"}]
        assert exp.record_outcomes(many) == 2
        with pytest.raises(InvalidInputError) as info:
            exp.record_outcomes([many[0], {"unit_id": "user-3", "event": "buy", "value": None}])
        assert info.value.field == "rows[1].value"
    assert count_events(EventStore(tmp_path), "outcomes") == 3


def test_export_writes_the_outcomes_of_the_models_units(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with _experiment(home) as exp:
        for unit in ("a", "b", "c"):
            exp.predict(np.zeros((1, 2)), unit_id=unit)
        exp.record_outcomes(
            [
                {"unit_id": "a", "event": "purchase", "value": 5.0},
                {"unit_id": "a", "event": "session"},
                {"unit_id": "c", "event": "purchase", "value": 7.0},
                {"unit_id": "stranger", "event": "purchase"},  # never served by fraud
            ]
        )
    out = tmp_path / "fraud.csv"
    result = CliRunner().invoke(
        app, ["export", "--home", str(home), "-m", "fraud", "-o", str(out), "--json"]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.loads(result.stdout)
    assert report["outcomes"] == {"path": str(tmp_path / "fraud-outcomes.csv"), "rows": 3}
    frame = pd.read_csv(tmp_path / "fraud-outcomes.csv")
    assert sorted(frame.unit_id) == ["a", "a", "c"] and frame.value.sum() == 13.0
    assert len(pd.read_csv(out)) == 3  # the predictions file is unchanged
    parquet = tmp_path / "o.parquet"
    assert export_outcomes(EventStore(home), "fraud", parquet, format="parquet") == 3
    assert len(pd.read_parquet(parquet)) == 3
    assert export_outcomes(EventStore(home), "other", tmp_path / "none.csv") == 0
    assert not (tmp_path / "none.csv").exists()
    args = ["export", "--home", str(home), "-m", "fraud", "-o", str(tmp_path / "x.csv")]
    no = CliRunner().invoke(app, [*args, "--no-outcomes", "--json"])
    assert json.loads(no.stdout)["outcomes"] is None
    assert not (tmp_path / "x-outcomes.csv").exists()


def test_compaction_merges_outcome_segments(tmp_path: Path) -> None:
    store = EventStore(tmp_path)
    for i in range(6):
        store.write_outcomes([{"unit_id": f"u{i}", "event": "purchase", "value": i}])
    assert len(store.segments("outcomes")) == 6
    result = store.compact(min_age_s=0, grace_s=0)
    assert result.merged_segments == 6
    (merged,) = store.segments("outcomes")
    assert merged.name.startswith("cmp-")
    assert count_events(store, "outcomes") == 6
    with store.connect() as con:
        assert con.sql("SELECT sum(value) FROM outcomes").fetchall() == [(15.0,)]


def test_post_a_data_frame(running: Any) -> None:
    server, home = running({"fraud": {}})
    frame = pd.DataFrame(
        {
            "unit_id": ["a", "b"],
            "event": ["purchase", "purchase"],
            "value": [1.5, 2.5],
            "ts": pd.to_datetime(["2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z"]),
            "request_id": ["r1", None],
        }
    )
    assert arbiter.outcomes.post(server.url, frame) == 2
    with EventStore(home.root).connect() as con:
        got = con.sql("SELECT unit_id, value, request_id FROM outcomes ORDER BY 1").fetchall()
    assert got == [("a", 1.5, "r1"), ("b", 2.5, None)]
    with pytest.raises(InvalidInputError) as info:
        arbiter.outcomes.post(server.url, frame.assign(value=[1.0, np.nan]))
    assert info.value.field == "outcomes[1].value"
