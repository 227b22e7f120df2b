"""``arbiter events prune`` on the Parquet store: whole segments older than the cutoff go."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from arbiter.cli import app
from arbiter.events import EventStore, EventWriter, count_events
from arbiter.events.retention import prune_segments


def _write(store: EventStore, when: datetime, n: int, tag: str) -> None:
    writer = EventWriter(store).start()
    writer.append_predictions(
        {"request_id": tag, "row_index": range(n), "ts": int(when.timestamp() * 1e6)}
    )
    writer.close()


def test_prune_deletes_only_segments_wholly_older_than_the_cutoff(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "home")
    now = datetime.now(UTC)
    _write(store, now - timedelta(days=200), 5, "old")
    _write(store, now - timedelta(days=100), 7, "older")
    _write(store, now, 11, "new")
    store.write_feedback([{"request_id": "old", "row_index": 0, "label": 1,
                           "ts": now - timedelta(days=150)}])  # fmt: skip
    assert count_events(store) == 23  # predictions

    dry = prune_segments(store, now - timedelta(days=90), dry_run=True)
    assert sorted(p.rows for p in dry) == [1, 5, 7]
    assert count_events(store) == 23  # a dry run deletes nothing

    runner = CliRunner()
    home = str(store.home)
    bad = runner.invoke(app, ["events", "prune", "--home", home, "--older-than", "soon"])
    assert bad.exit_code != 0
    result = runner.invoke(
        app, ["events", "prune", "--home", home, "--older-than", "150d", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    # The label dated 150 days ago is older than a cutoff taken a moment later.
    assert report["store"] == "parquet"
    assert {(d["table"], d["rows"]) for d in report["deleted"]} == {
        ("predictions", 5),
        ("feedback", 1),
    }
    assert count_events(store) == 18
    # A merged file holding old and new rows straddles the cutoff and is kept whole.
    store.compact(min_age_s=0, grace_s=0)
    assert prune_segments(store, now - timedelta(days=90)) == []
    assert count_events(store) == 18
