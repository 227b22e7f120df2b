"""Every result type renders to the terminal, HTML and Markdown, through one dispatch each."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from arbiter.analysis import analyze_model
from arbiter.analysis.bandit import BanditAnalysis, analyze_bandit
from arbiter.analysis.interleave import InterleaveAnalysis, analyze_interleave
from arbiter.analysis.multiarm import MultiArmAnalysis
from arbiter.config import ModelConfig
from arbiter.drift import build_profile, check_drift
from arbiter.events import EventStore
from arbiter.report import (
    DECISION_COLOURS,
    analysis_markdown,
    drift_markdown,
    format_number,
    html_section,
    print_analysis,
    print_drift,
    render_drift_html,
    render_html,
)
from tests.analysis.test_analyze import _shadow_log
from tests.bandit.test_analysis import write_predictions
from tests.interleave.synthetic import EXPERIMENT, ITEMS, MODEL, by_taste, fixed, simulate

SRC = Path(__file__).resolve().parents[2] / "src" / "arbiter"


def _bandit(store: EventStore) -> BanditAnalysis:
    rng = np.random.default_rng(0)
    rows = [{"request_id": f"r{i}", "arm": ("champion", "challenger")[i % 2],
             "experiment": "m-bandit"} for i in range(400)]  # fmt: skip
    write_predictions(store, rows)
    p = {"champion": 0.3, "challenger": 0.6}
    store.write_feedback(
        [{"request_id": r["request_id"], "row_index": 0, "label": int(rng.random() < p[r["arm"]])}
         for r in rows]
    )  # fmt: skip
    with store.connect() as con:
        return analyze_bandit(con, "m", "m-bandit", model_config=ModelConfig())


def _interleave() -> InterleaveAnalysis:
    rng = np.random.default_rng(15)
    log = simulate(30, 4, rng, ranker_a=fixed(ITEMS), ranker_b=by_taste(0.05, rng))
    with log.connect() as con:
        return analyze_interleave(con, MODEL, EXPERIMENT)


@pytest.fixture
def results(
    ab_log: Callable[..., EventStore],
    rng: np.random.Generator,
    multiarm: Callable[..., MultiArmAnalysis],
    tmp_path: Path,
) -> list[Any]:
    """One result of every type: A/B and shadow comparisons, A/B/n, interleaving, bandit."""
    store = ab_log(1500, 1500, 0.80, 0.88)
    _shadow_log(store, rng, 800, 0.80, 0.86)
    with store.connect() as con:
        two_arm = analyze_model(con, "m")
    abn = multiarm({"champion": (600, 0.80), "b": (600, 0.80), "c": (600, 0.88)})
    bandit = _bandit(EventStore(tmp_path / "bandit-home"))
    return [*two_arm, abn, _interleave(), bandit]


def test_every_result_type_renders_in_every_form(results: list[Any]) -> None:
    kinds = {type(r).__name__ for r in results}
    assert kinds == {"ExperimentAnalysis", "MultiArmAnalysis", "InterleaveAnalysis",
                     "BanditAnalysis"}  # fmt: skip
    for r in results:
        console = Console(record=True, width=160)
        print_analysis(console, r)
        text = console.export_text()
        assert r.experiment in text and r.decision in text
        section = html_section(r)
        assert section.startswith("<h2>") and f'class="decision {r.decision}"' in section
        assert "data:image/png;base64," in section
        markdown = analysis_markdown(r)
        assert f"`{r.experiment}`" in markdown and f"**{r.decision}**" in markdown
    page = render_html(results, model="m", generated_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert page.count("<h2>") == len(results)
    for decision, colour in DECISION_COLOURS.items():  # one colour map for the CSS
        assert f".{decision} {{ background: {colour.html}; }}" in page


def test_an_unknown_result_type_is_a_clear_error() -> None:
    for render in (html_section, analysis_markdown, lambda r: print_analysis(Console(), r)):
        with pytest.raises(TypeError, match="object"):
            render(object())


def test_drift_report_renders_in_every_form() -> None:
    rng = np.random.default_rng(3)
    import pandas as pd

    ref = pd.DataFrame({"x": rng.normal(size=800), "c": rng.choice(["a", "b"], 800)})
    cur = pd.DataFrame({"x": rng.normal(1.0, size=800), "c": rng.choice(["a", "b"], 800)})
    result = check_drift(build_profile(ref), cur)
    console = Console(record=True, width=160)
    print_drift(console, result, "drift <b>")
    assert "dataset drift: yes" in console.export_text()
    page = render_drift_html(result, title="m <b>")
    assert "m &lt;b&gt;" in page and "<b>" not in page.replace("<b>Dataset", "")
    assert page.count("data:image/png;base64,") == 2
    assert "| x |" in drift_markdown(result, title="m")


def test_public_names_resolve_lazily() -> None:
    import arbiter.report as report

    assert report.__all__ == sorted(report.__all__, key=lambda n: (not n.isupper(), n))
    assert all(hasattr(report, name) for name in report.__all__)
    with pytest.raises(AttributeError, match="no_such_name"):
        report.no_such_name  # noqa: B018


def test_one_number_formatter() -> None:
    assert format_number(None) == "—" and format_number(float("nan"), missing="n/a") == "n/a"
    assert format_number(True) == "yes" and format_number(12345) == "12,345"
    assert format_number(np.int64(7)) == "7" and format_number(np.float64(0.123456)) == "0.1235"
    assert format_number(float("inf")) == "∞" and format_number(-float("inf")) == "−∞"
    assert format_number(1234.5678, style="fixed", digits=2) == "1,234.57"
    assert format_number(0.5, style="fixed") == "0.5000"
    assert format_number(0.25, style="percent", digits=1) == "25.0%"
    assert format_number([1, 0.5]) == "1, 0.5"
    assert format_number("text") == "text"


def test_no_formatter_is_written_twice() -> None:
    """The number formatters that were written 11 times are report.format's one.

    (``_num`` helpers returning ``float | None`` are "finite or None", not formatters.)
    """
    formatter = re.compile(r"def (_?fmt|_num\w*|_format\w*)\([^)]*\)\s*->\s*str")
    found = [
        f"{path.relative_to(SRC)}: def {m.group(1)}("
        for path in SRC.rglob("*.py")
        for m in formatter.finditer(path.read_text(encoding="utf-8"))
    ]
    # The core's reason sentences use arbiter.stats.verdict.types.reason_number (the core
    # cannot import the presentation layer); nothing else formats numbers on its own.
    assert found == [], found


def test_no_f_string_html_in_src() -> None:
    """Markup lives in report/templates (autoescaped), never in Python strings."""
    tag = re.compile(r"""\bf(["']{1,3})[^"'\n]*<\s*/?\s*[a-zA-Z][a-zA-Z0-9]*[\s>/]""")
    offenders = [
        f"{path.relative_to(SRC)}:{i}"
        for path in SRC.rglob("*.py")
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if tag.search(line)
    ]
    assert not offenders, offenders


def test_analysis_imports_no_presentation() -> None:
    """analysis aggregates: no Rich, Jinja2, matplotlib, markupsafe, html, nor cli/report."""
    bad = re.compile(
        r"^\s*(from|import)\s+(rich|jinja2|matplotlib|markupsafe|html|arbiter\.cli|"
        r"arbiter\.report)\b",
        re.MULTILINE,
    )
    offenders = [
        f"{path.name}: {m.group(0).strip()}"
        for path in (SRC / "analysis").rglob("*.py")
        for m in bad.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, offenders
