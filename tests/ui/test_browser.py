"""The dashboard in Chromium: what an operator sees and does, against real servers.

Every wait is for evidence on the page (a status text, a chart's points, a changed number)
with a generous bound; nothing sleeps a fixed time.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.docs.conftest import DemoHome
from tests.ui.conftest import ADMIN_TOKEN, Stack, screenshot, wait_for

# A bound, not a budget: the module's first test may build the demo's home (when tests/docs
# did not run first in this session), which took 3-5 minutes beside eight other test runs.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


def _canary_cli_status(stack: Stack) -> str:
    from typer.testing import CliRunner

    from arbiter.cli import app

    out = CliRunner().invoke(
        app, ["canary", "status", "--home", str(stack.home), "-m", "fraud", "--json"]
    )
    assert out.exit_code == 0, out.output
    return str(json.loads(out.stdout)["status"])


def _points(page: Any, chart: str) -> int:
    """Data points Plotly drew in one chart (markers, bars or heatmap cells)."""
    return int(
        page.locator(f"#chart-{chart}").evaluate(
            "el => el.querySelectorAll('.scatterlayer .point, .barlayer .point, "
            ".heatmaplayer image, .scatterlayer path.js-line').length"
        )
    )


def test_the_overview_lists_the_demo_models(stack: Stack, page: Any) -> None:
    page.goto(stack.ui + "/")
    cards = page.locator(".model-card")
    expect(cards).to_have_count(2)
    expect(page.locator('.model-card[data-model="fraud"] h2')).to_have_text("fraud")
    expect(page.locator('.model-card[data-model="ranker"] h2')).to_have_text("ranker")
    fraud = page.locator('.model-card[data-model="fraud"]')
    expect(fraud.locator(".strategy")).to_have_text("canary")
    expect(fraud.locator(".alias").first).to_contain_text("v")
    # Live traffic reached the overview: a request rate for the canary's arms.
    expect(fraud.locator("td.rate").first).to_be_visible()
    expect(page.locator('.model-card[data-model="ranker"] .badge')).to_have_text("promote")
    screenshot(page, "overview")


def test_an_experiment_page_draws_its_charts(stack: Stack, page: Any) -> None:
    page.goto(stack.ui + "/models/fraud/experiments/fraud-ab")
    expect(page.locator(".verdict .badge")).to_be_visible()
    expect(page.locator("table.criteria tbody tr").first).to_be_visible()
    expect(page.locator(".srm")).to_contain_text("no mismatch")
    for chart in ("metric", "effect", "latency", "split"):
        page.locator(f"#chart-{chart} .main-svg").first.wait_for()
        wait_for(lambda chart=chart: _points(page, chart) > 0, timeout_s=30)
    screenshot(page, "experiment")

    page.goto(stack.ui + "/models/fraud/experiments/fraud-shadow")
    expect(page.locator(".agreement")).to_contain_text("%")
    page.locator("#chart-disagreement .main-svg").first.wait_for()
    wait_for(lambda: _points(page, "predictions") > 0, timeout_s=30)
    # The shadow report's rows (tests/ui/test_shadow_page.py checks their values).
    expect(page.locator("p.recommendation")).to_contain_text("Recommendation: ")
    expect(page.locator("table.directions tbody tr").first).to_be_visible()
    expect(page.locator("table.models")).to_contain_text("sklearn")
    screenshot(page, "shadow")


def test_a_wrong_token_is_refused_clearly(stack: Stack, page: Any) -> None:
    page.goto(stack.ui + "/models/fraud/canary")
    expect(page.locator("#canary-status")).to_have_text("running")
    page.fill("#admin-token", "not-the-admin-token")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#admin-token")).to_have_value("")  # never left in the page
    page.click("#canary-actions button[data-action=pause]")
    result = page.locator("#action-result")
    expect(result).to_contain_text("pause refused (401)")
    expect(result).to_contain_text("admin token")
    expect(page.locator("#canary-status")).to_have_text("running")
    assert ADMIN_TOKEN not in page.content()
    assert _canary_cli_status(stack) == "running"


def test_pausing_the_canary_with_the_admin_token(stack: Stack, page: Any) -> None:
    page.goto(stack.ui + "/models/fraud/canary")
    expect(page.locator("#canary-status")).to_have_text("running")
    page.fill("#admin-token", ADMIN_TOKEN)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#token-state")).to_have_text("token set for this session")
    assert ADMIN_TOKEN not in page.content() and ADMIN_TOKEN not in page.url
    page.fill("#action-reason", "looking at the dashboard")
    page.click("#canary-actions button[data-action=pause]")
    expect(page.locator("#action-result")).to_have_text("pause: done")
    expect(page.locator("#canary-status")).to_have_text("paused")
    assert _canary_cli_status(stack) == "paused"
    expect(page.locator("details.record").first).to_contain_text("looking at the dashboard")
    page.locator("#chart-share .main-svg").first.wait_for()
    screenshot(page, "canary")
    # Pausing again changes nothing, and the gateway says so.
    page.click("#canary-actions button[data-action=pause]")
    expect(page.locator("#action-result")).to_contain_text("already paused")
    page.click("#canary-actions button[data-action=resume]")
    expect(page.locator("#action-result")).to_have_text("resume: done")
    expect(page.locator("#canary-status")).to_have_text("running")
    assert _canary_cli_status(stack) == "running"


def test_the_page_keeps_updating_while_traffic_flows(stack: Stack, page: Any) -> None:
    page.goto(stack.ui + "/")
    stamp = page.locator(".updated time")
    first = stamp.inner_text()
    page.evaluate("window.__notReloaded = true")
    sent = stack.traffic.sent
    # Evidence of live updates: the fragment's time stamp moves while requests keep arriving,
    # and the page itself was never reloaded (the marker survives).
    expect(stamp).not_to_have_text(first, timeout=60_000)
    wait_for(lambda: stack.traffic.sent > sent)
    assert page.evaluate("window.__notReloaded") is True
    rate = page.locator('.model-card[data-model="fraud"] td.rate').first
    expect(rate).not_to_have_text("–")


def test_the_drift_and_history_pages(stack: Stack, page: Any) -> None:
    page.goto(stack.ui + "/models/fraud/drift")
    expect(page.locator("table.drift tbody tr").first).to_be_visible()
    page.locator("#chart-drift_over_time .main-svg").first.wait_for()
    wait_for(lambda: _points(page, "drift_over_time") > 0, timeout_s=30)
    expect(page.locator(".card").last).to_contain_text("no loop cycles yet")
    screenshot(page, "drift")

    page.goto(stack.ui + "/models/fraud/history")
    moves = page.locator("table.moves tbody tr")
    expect(moves.first).to_be_visible()
    expect(page.locator("table.moves")).to_contain_text("canary promote")
    screenshot(page, "history")


def test_a_refused_action_shows_the_gateways_reason(stack: Stack, page: Any) -> None:
    """Last in this module: it ends the canary."""
    page.goto(stack.ui + "/models/fraud/canary")
    page.fill("#admin-token", ADMIN_TOKEN)
    page.click("#token-form button[type=submit]")
    page.once("dialog", lambda dialog: dialog.accept())  # "Abort the canary ...?"
    page.click("#canary-actions button[data-action=abort]")
    expect(page.locator("#action-result")).to_have_text("abort: done")
    expect(page.locator("#canary-status")).to_have_text("rolled_back")
    page.click("#canary-actions button[data-action=resume]")
    result = page.locator("#action-result")
    expect(result).to_contain_text("resume refused (409)")
    expect(result).to_contain_text("rolled_back")


def test_the_demo_ends_by_printing_the_ui_command(ui_demo_home: DemoHome) -> None:
    if ui_demo_home.output is None:
        pytest.skip("a prebuilt demo home (ARBITER_DOCS_DEMO_HOME): its output was not seen")
    last = [line for line in ui_demo_home.output.splitlines() if line.strip()][-2:]
    assert "in a browser" in last[0], last
    assert last[1].strip().endswith(f"ui --home {ui_demo_home.root}"), last
