"""Every reading command on a home whose events.url is PostgreSQL (issue 11).

A real gateway writes into a fresh schema of the real server at 127.0.0.1:5432; then each
CLI command that reads the event log runs on that home. Each must answer from PostgreSQL
with the right counts, or say plainly why the operation has no meaning there (no traceback).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from arbiter.cli import app

# The schema fixture (fresh schema, dropped after) and pg_url come from the store's tests.
from tests.events.test_postgres_store import count, pg_url, schema, wait_for  # noqa: F401

SHADOW = {"fraud": {"experiment": {"strategy": "shadow", "unit_field": "user_id"}}}
REQUESTS = 8
ROWS_PER_REQUEST = 3
LABELLED = 5


def cli(home: Path, *args: str) -> Any:
    """Run ``arbiter ARGS --home HOME``; assert exit 0 and no traceback."""
    result = CliRunner().invoke(app, [*args, "--home", str(home)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def pg_home(
    running: Any,
    fraud_rows: list[dict[str, float]],
    pg_url: str,  # noqa: F811
    schema: str,  # noqa: F811
) -> Path:
    """A home with events.url = PostgreSQL, after real shadow traffic and some labels."""
    server, home = running(SHADOW, events={"url": pg_url})
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        ids = []
        for i in range(REQUESTS):
            rows = fraud_rows[i * ROWS_PER_REQUEST : (i + 1) * ROWS_PER_REQUEST]
            body = {"features": rows, "user_id": f"u{i}"}
            r = client.post("/models/fraud/predict", json=body)
            assert r.status_code == 200, r.text
            ids.append(r.json()["request_id"])
        for request_id in ids[:LABELLED]:
            labels = [
                {"request_id": request_id, "row_index": row, "label": row % 2}
                for row in range(ROWS_PER_REQUEST)
            ]
            r = client.post("/feedback", json=labels)
            assert r.status_code == 200, r.text
    # Champion and challenger rows: the shadow worker writes the challenger's a little later.
    expected = 2 * REQUESTS * ROWS_PER_REQUEST
    wait_for(lambda: count(schema, "predictions") == expected, "every prediction in PostgreSQL")
    server.stop()
    assert not (home.root / "events").exists()  # nothing local: every reader must use PG
    return home.root


def test_every_reading_command_reads_postgres(
    pg_home: Path, tmp_path: Path, template_home: Any
) -> None:
    home = pg_home
    report = json.loads(
        cli(home, "report", "-m", "fraud", "--json", "-o", str(tmp_path / "r.md")).stdout
    )
    (section,) = report["experiments"]
    assert section["requests"] == REQUESTS
    assert section["shadow"]["labeled_rows"] == LABELLED * ROWS_PER_REQUEST

    analysis = json.loads(cli(home, "analyze", "-m", "fraud", "--json", "--no-html").stdout)
    assert analysis

    long_path = tmp_path / "long.csv"
    cli(home, "export", "-m", "fraud", "-o", str(long_path))
    long = pd.read_csv(long_path)
    assert len(long) == 2 * REQUESTS * ROWS_PER_REQUEST
    assert long["label"].notna().sum() == 2 * LABELLED * ROWS_PER_REQUEST

    wide_path = tmp_path / "wide.csv"
    cli(home, "export", "-m", "fraud", "--layout", "wide", "-o", str(wide_path))
    wide = pd.read_csv(wide_path)
    assert len(wide) == REQUESTS * ROWS_PER_REQUEST
    assert wide["label"].notna().sum() == LABELLED * ROWS_PER_REQUEST

    # Drift compares the served window with the champion's reference profile (as
    # tests/reliability does, it is stored on the template's champion run).
    train = tmp_path / "train.parquet"
    pd.DataFrame(template_home.rows[:500]).to_parquet(train)
    champion = template_home.versions["fraud"]["champion"]
    profile = ["drift", "profile", "--data", str(train), "-m", "fraud", "--version", champion]
    cli(home, *profile)
    drift = json.loads(cli(home, "drift", "-m", "fraud", "--json").stdout)
    assert drift["source"]["rows"] == REQUESTS * ROWS_PER_REQUEST

    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text("unit_id,event,value\nu0,buy,2.5\nu1,buy,1\nu1,visit,1\n")
    imported = json.loads(cli(home, "outcomes", "import", str(outcomes), "--json").stdout)
    assert imported["stored"] == 3
    summary = json.loads(cli(home, "outcomes", "summary", "--json").stdout)
    assert summary["rows"] == 3
    assert {e["event"]: e["units"] for e in summary["events"]} == {"buy": 2, "visit": 1}

    compact = cli(home, "compact")
    assert "PostgreSQL" in compact.output and "nothing to compact" in compact.output
    assert json.loads(cli(home, "compact", "--json").stdout)["merged_segments"] == 0

    pruned = json.loads(
        cli(home, "events", "prune", "--older-than", "30d", "--dry-run", "--json").stdout
    )
    assert pruned["store"] == "postgresql" and pruned["deleted"] == [] and pruned["dry_run"]


def test_export_of_a_model_without_events_says_so(pg_home: Path, tmp_path: Path) -> None:
    from arbiter.errors import NotFoundError

    out = tmp_path / "none.csv"
    args = ["export", "-m", "nobody", "-o", str(out), "--home", str(pg_home)]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, NotFoundError)
    assert "models with events: 'fraud'" in str(result.exception)
    assert "127.0.0.1" not in str(result.exception)


def test_dashboard_reads_postgres(pg_home: Path) -> None:
    from arbiter.home import Home
    from arbiter.ui import views

    dashboard = views.Dashboard(Home.at(pg_home))
    overview = views.overview(dashboard)
    assert overview["has_events"] and overview["models"][0]["model"] == "fraud"
    (logged,) = views.experiment_names(dashboard, "fraud")
    assert logged["requests"] == REQUESTS
