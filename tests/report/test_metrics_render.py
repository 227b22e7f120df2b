"""The metrics section renders in the terminal, HTML and Markdown from one view model."""

from __future__ import annotations

import math

from rich.console import Console

from arbiter.report.format import METRIC_COLUMNS, metric_rows
from arbiter.report.terminal import print_metrics

ROW = {
    "name": "conversion",
    "arm": "challenger",
    "champion": "champion",
    "role": "primary",
    "arms": {
        "champion": {"units": 2000, "mean": 0.2, "adjusted_mean": 0.201},
        "challenger": {"units": 2010, "mean": 0.23, "adjusted_mean": 0.229},
    },
    "estimate": 0.028,
    "ci_low": 0.004,
    "ci_high": 0.052,
    "p_value": 0.01,
    "relative_lift": 0.14,
    "relative_ci_low": 0.02,
    "relative_ci_high": 0.26,
    "adjusted_p_value": None,
    "cuped": {"theta": 0.4, "variance_reduction": 0.125, "unadjusted_estimate": 0.03},
    "status": "ok",
    "guardrail": None,
}


def test_metric_rows() -> None:
    (row,) = metric_rows([ROW])
    assert set(METRIC_COLUMNS) <= set(row)
    assert row["champion"] == 0.201 and row["challenger"] == 0.229  # CUPED-adjusted means
    assert row["units"] == "2,000 / 2,010"
    assert row["lift"] == "14 % [2, 26]"
    assert row["cuped"] == "12.5 %"
    rail = {**ROW, "role": "guardrail", "relative_lift": math.nan, "cuped": None,
            "guardrail": {"status": "breached"}}  # fmt: skip
    (row,) = metric_rows([rail])
    assert row["status"] == "guardrail breached" and row["lift"] == "—" and row["cuped"] is None


def test_print_metrics_escapes_markup_and_names_challengers() -> None:
    console = Console(width=200, record=True)
    other = {**ROW, "arm": "b", "role": "secondary", "name": "revenue"}
    print_metrics(console, [ROW, other])
    text = console.export_text()
    assert "conversion (challenger) [primary]" in text
    assert "revenue (b)" in text
    empty = Console(width=100, record=True)
    print_metrics(empty, [])
    assert empty.export_text() == ""
