"""The shadow experiment page shows the shadow report's rows (arbiter.report.shadow): the models
compared, latency with its mean, each direction of disagreement with who was right, and the
recommendation line, equal to what ``arbiter analyze --json`` says of the same event log.

The log is the shadow report tests' session fixture (tests/shadow_home.py: the demo's models
served by a real gateway in shadow mode, labels posted); the dashboard runs on a real uvicorn
server and is read over HTTP, page and JSON API.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from arbiter.cli import app as cli
from arbiter.gateway.server import ServerThread
from arbiter.ui import create_ui_app
from arbiter.ui.views import Dashboard, experiment_names


@pytest.fixture(scope="module")
def analyzed(shadow_home: Any) -> dict[str, Any]:
    """``arbiter analyze --json`` of the shadow experiment: what the page must agree with."""
    root = str(shadow_home.home.root)
    result = CliRunner().invoke(cli, ["analyze", "--home", root, "-m", "fraud", "--json",
                                      "--no-html"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (experiment,) = json.loads(result.stdout)["experiments"]
    return experiment


@pytest.fixture(scope="module")
def ui(shadow_home: Any) -> Any:
    app = create_ui_app(shadow_home.home)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


def _cells(row: str) -> list[str]:
    return [html.unescape(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]


def test_the_shadow_page_shows_directions_models_latency_and_the_recommendation(
    shadow_home: Any, analyzed: dict[str, Any], ui: httpx.Client
) -> None:
    (name,) = [e["experiment"] for e in experiment_names(Dashboard(shadow_home.home), "fraud")]
    page = ui.get(f"/models/fraud/experiments/{name}")
    assert page.status_code == 200, page.text[:500]

    line = re.search(r'<p class="recommendation"[^>]*>(.*?)</p>', page.text, re.S)
    assert line, "no recommendation line on the page"
    assert html.unescape(line.group(1)) == analyzed["recommendation"]["line"]

    disagreements = analyzed["shadow_detail"]["disagreements"]
    assert disagreements, "the fixture's models disagree somewhere"
    rows = re.findall(r'<tr data-direction="[^"]*">(.*?)</tr>', page.text, re.S)
    assert len(rows) == len(disagreements)
    for row, d in zip(rows, disagreements, strict=True):
        direction, count, _rate, labelled, champion, challenger, neither = _cells(row)
        assert direction == f"{d['champion']} → {d['challenger']}"
        assert [count, labelled, champion, challenger, neither] == [
            f"{d[k]:,}"
            for k in ("count", "labelled", "champion_right", "challenger_right", "neither_right")
        ]
    assert {"0 → 1", "1 → 0"} <= {_cells(r)[0] for r in rows}  # both ways

    assert "sklearn · HistGradientBoostingClassifier" in html.unescape(page.text)
    assert "sklearn · Pipeline(StandardScaler → LogisticRegression)" in html.unescape(page.text)
    latency = re.search(r'<table class="latency">.*?</table>', page.text, re.S)
    assert latency and "mean" in latency.group(0)

    # The live fragment htmx polls carries the same rows.
    fragment = ui.get(f"/models/fraud/experiments/{name}", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and line.group(0) in fragment.text

    # The JSON API answers the same view models.
    api = ui.get(f"/api/models/fraud/experiments/{name}").json()
    assert api["recommendation"] == analyzed["recommendation"]
    directions = api["shadow_view"]["direction_rows"]
    assert [(r["champion"], r["challenger"], r["count"]) for r in directions] == [
        (d["champion"], d["challenger"], d["count"]) for d in disagreements
    ]
    for side in ("champion", "challenger"):
        (latency_row,) = [r for r in api["shadow_view"]["latency_rows"] if r["model"] == side]
        assert latency_row["mean"] == pytest.approx(analyzed["arms"][side]["latency_mean_ms"])
    kinds = {m["model"]: m["kind"] for m in api["shadow_view"]["models"]}
    assert kinds["challenger"] == "sklearn · HistGradientBoostingClassifier"
