"""Every main command's output at 80 columns: nothing shortened, paths whole, one vocabulary.

Issue 17 item 7: at 80 columns Rich shortened cells with an ellipsis (``challen…``,
``estima…``, ``0.84…``), ``history`` wrapped its reason one word per line, and paths broke
across lines so that copy and paste failed. Each test runs the real command (CliRunner,
``COLUMNS=80``) on a real home and reads what a person would read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from arbiter import ABExperiment, ShadowExperiment
from arbiter.cli import app
from tests.canary.conftest import canary_model

WIDTH = 80
LONG_REASON = (
    "the challenger beat the champion on accuracy in the shadow test and on conversion in "
    "the A/B test, with no guardrail breached; promoted after review by the on-call team"
)
#: Scientific notation in a printed number (``7.28e-06``): the formatter never prints it.
SCIENTIFIC = re.compile(r"\d\.?\d*e[-+]\d")


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner whose consoles are 80 columns wide (fresh consoles read ``COLUMNS``; the
    shared one of arbiter.cli.output is set directly)."""
    from arbiter.cli import output

    monkeypatch.setattr(output.console, "width", WIDTH)
    monkeypatch.setattr(output.err_console, "width", WIDTH)
    return CliRunner(env={"COLUMNS": str(WIDTH)})


@pytest.fixture
def home(make_home: Any, tmp_path: Path) -> Any:
    """A home with a shadow and an A/B experiment of ``fraud`` in its event log (several
    rows per unit, labels on every row) and a canary of ``faulty`` in its registry."""
    from arbiter.demo.data import make_transactions
    from arbiter.demo.train import train_challenger, train_champion

    h = make_home({"fraud": {}, "faulty": canary_model("raising", on_rollback="flag")})
    data = make_transactions(2_000, seed=5)
    test = make_transactions(600, seed=6)
    champion = train_champion(data.features, data.labels)
    challenger = train_challenger(data.features, data.labels)
    for kind in (ShadowExperiment, ABExperiment):
        with kind(champion, challenger, home=h.root, model="fraud", seed=3) as exp:
            for i in range(0, 600, 6):
                answer = exp.predict(test.features.iloc[i : i + 6].to_numpy(), unit_id=f"u{i % 90}")
                exp.feedback(answer.request_id, test.labels[i : i + 6])
    return h


def _lines(text: str) -> list[str]:
    return text.splitlines()


def _assert_readable(text: str, *paths: Path) -> None:
    """Nothing shortened, no line wider than the terminal but a path's, paths whole."""
    assert "…" not in text, text
    assert not SCIENTIFIC.search(text), text
    for path in paths:
        assert any(str(path) in line for line in _lines(text)), f"{path} broken in:\n{text}"
    too_wide = [
        line
        for line in _lines(text)
        if len(line) > WIDTH and not any(str(p) in line for p in paths)
    ]
    assert not too_wide, "\n".join(too_wide)


def test_analyze_fits_80_columns(narrow: CliRunner, home: Any) -> None:
    html = home.root / "a-rather-long-directory-name-for-reports" / "fraud-analysis.html"
    result = narrow.invoke(
        app, ["analyze", "--home", str(home.root), "-m", "fraud", "--html", str(html)]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    _assert_readable(out, html)
    assert "analysed: fraud-shadow (shadow), fraud-ab (ab)" in out
    # The columns the issue saw shortened are there in full, or named as left out.
    for word in ("challenger", "diff", "accuracy"):
        assert word in out
    # ``--wide`` keeps every column: the errors column is back.
    wide = narrow.invoke(
        app, ["analyze", "--home", str(home.root), "-m", "fraud", "--no-html", "--wide"]
    )
    assert wide.exit_code == 0 and "left out at this width" not in wide.stdout
    assert "errors" in wide.stdout


def test_report_fits_80_columns_and_names_the_shadow_model(narrow: CliRunner, home: Any) -> None:
    md = home.root / "a-rather-long-directory-name-for-reports" / "fraud-report.md"
    result = narrow.invoke(app, ["report", "--home", str(home.root), "-m", "fraud", "-o", str(md)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    _assert_readable(out, md)
    # The shadow row is the challenger's (it was ``role shadow | arm champion | v 2``).
    shadow_rows = [line for line in _lines(out) if line.startswith("│ shadow │")]
    assert shadow_rows and all("challenger" in line for line in shadow_rows), out
    assert "role: served = " in out  # the legend of role and model
    # p50, p95 and p99 of a row share their decimals.
    for line in _lines(out):
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) >= 8 and cells[0] in ("served", "shadow"):
            decimals = {len(c.partition(".")[2]) for c in cells[-3:]}
            assert len(decimals) == 1, line
    # One spelling: "labelled", never the JSON key "labeled_rows", in text for people.
    assert "labeled" not in out
    # Timestamps to the second, without microseconds.
    assert re.search(r"\d{2}:\d{2}:\d{2} UTC", out) and not re.search(r":\d{2}\.\d{3}", out)


def test_history_keeps_the_reason_readable(
    narrow: CliRunner, home: Any, template_home: Any
) -> None:
    version = template_home.versions["fraud"]["challenger"]
    promoted = narrow.invoke(
        app,
        ["promote", "--home", str(home.root), "-m", "fraud", "--version", version,
         "--reason", LONG_REASON],
    )  # fmt: skip
    assert promoted.exit_code == 0, promoted.output
    result = narrow.invoke(app, ["history", "--home", str(home.root), "-m", "fraud"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    _assert_readable(out)
    # The reason wraps at the terminal's width, not one word per line: its lines, joined,
    # are the reason, and each holds several words.
    reason_lines = [line.strip() for line in _lines(out) if line.startswith("    ")]
    assert " ".join(reason_lines).find(LONG_REASON) >= 0, out
    assert all(len(line.split()) >= 5 for line in reason_lines[:-1]), out


def test_canary_status_prints_the_record_path_whole(
    narrow: CliRunner, home: Any, template_home: Any
) -> None:
    from arbiter.canary import CanaryService
    from arbiter.registry import registry_for_home

    config = home.config().models["faulty"]
    service = CanaryService(registry_for_home(home.root), home.root, "faulty", config)
    service.ensure_started(service.snapshot())
    service.operate("abort", LONG_REASON)
    result = narrow.invoke(app, ["canary", "status", "--home", str(home.root), "-m", "faulty"])
    assert result.exit_code == 0, result.output
    records = sorted((home.root / "canary" / "faulty").glob("*.json"))
    assert records
    _assert_readable(result.stdout, records[-1])


# scipy's exact KS gives up on ties in the demo's integer columns (its own warning).
@pytest.mark.filterwarnings("ignore:ks_2samp:RuntimeWarning")
def test_drift_fits_80_columns(narrow: CliRunner, tmp_path: Path) -> None:
    from arbiter.demo.data import make_transactions

    ref, cur = make_transactions(1_000, seed=1).features, make_transactions(1_000, seed=2).features
    cur["amount"] = cur["amount"] * 1.5  # one feature drifts: a p-value far below 1e-6
    ref.to_csv(tmp_path / "reference.csv", index=False)
    cur.to_csv(tmp_path / "current.csv", index=False)
    result = narrow.invoke(
        app,
        ["drift", "--reference", str(tmp_path / "reference.csv"), "--current",
         str(tmp_path / "current.csv")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    _assert_readable(result.stdout)
    for column in ref.columns:
        assert column in result.stdout
    assert "< 0.0001" in result.stdout


def test_stats_proportions_explains_disagreeing_intervals(narrow: CliRunner) -> None:
    args = ["stats", "proportions", "--successes", "120", "150", "--trials", "1000", "1000"]
    result = narrow.invoke(app, args)
    assert result.exit_code == 0, result.output
    _assert_readable(result.stdout)
    # The absolute interval excludes 0, the relative one does not: the output says why.
    assert "disagree about 0" in result.stdout
    # And a clear result, where both agree, says nothing about it.
    agree = narrow.invoke(
        app, ["stats", "proportions", "--successes", "100", "200", "--trials", "1000", "1000"]
    )
    assert agree.exit_code == 0 and "disagree" not in agree.stdout
