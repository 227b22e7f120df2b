"""``arbiter analyze``: decide champion vs challenger from the event log, with the statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from arbiter.cli.options import EngineOption, HomeOption, JsonOption, ModelOption

WideOption = typer.Option(
    False, "--wide", help="Print every table column, however wide the terminal."
)


def analyze(
    model: str = ModelOption,
    home: Path = HomeOption,
    experiment: str = typer.Option(
        None,
        "--experiment",
        "-e",
        help="Only this experiment (default: every shadow, ab, interleave and bandit one).",
    ),
    html: Path = typer.Option(
        None, "--html", help="HTML report to write (default HOME/reports/MODEL-analysis.html)."
    ),
    no_html: bool = typer.Option(False, "--no-html", help="Do not write the HTML report."),
    json_output: bool = JsonOption,
    wide: bool = WideOption,
    engine: str = EngineOption,
) -> None:
    """Test challenger against champion (SRM, primary test, guardrails) and print the verdict.

    A/B/n experiments get the k-arm analysis (a winner only when significantly best),
    interleaving experiments the per-impression credit and clustered test, bandits their
    allocation over time and P(best). Canaries decide by themselves: `arbiter canary status`.

    Decision rules and the `decision:` keys of arbiter.yaml: docs/analysis.md. Also writes a
    self-contained HTML report with plots unless --no-html.
    """
    from rich.console import Console

    from arbiter.analysis import analyze_model
    from arbiter.cli.output import err_console, print_json
    from arbiter.events.engines import open_for_home
    from arbiter.events.feedback import unmatched_feedback
    from arbiter.experiments.split_store import attach_for_home
    from arbiter.home import Home
    from arbiter.registry.model_info import describe_analysis_models
    from arbiter.report.terminal import WIDE, print_analysis, print_path

    h = Home.at(home)
    config = h.config()
    # The spinner goes to stderr so that --json output on stdout stays parseable.
    with err_console.status("Analysing the event log…") as status:
        with open_for_home(h, engine) as con:
            _check_model(con, model)
            attach_for_home(con, h, model)  # split changes: SRM per period (analysis/periods.py)
            _check_engine(con, model, experiment, config.models.get(model))
            analyses = analyze_model(con, model, experiment, model_config=config.models.get(model))
            unmatched = unmatched_feedback(con)  # labels joined to nothing (issue 14)
            left_out = [] if experiment else _left_out(con, model, analyses, h.root)
        analyses = [describe_analysis_models(h, model, a) for a in analyses]
        path = None
        if not no_html:
            from arbiter.report.html import write_html

            status.update("Rendering the HTML report…")
            path = write_html(analyses, html or h.reports / f"{model}-analysis.html", model=model)
    result: dict[str, Any] = {
        "model": model,
        "experiments": [_json(a) for a in analyses],
        "left_out": left_out,
        "html_file": None if path is None else str(path),
        "unmatched_feedback": unmatched,
    }
    if json_output:
        print_json(result)
        return
    WIDE.set(wide)
    console = Console()
    for a in analyses:
        print_analysis(console, a)
    console.print()
    analysed = ", ".join(f"{a.experiment} ({a.strategy})" for a in analyses)
    console.print(f"analysed: {analysed}", highlight=False)
    for item in left_out:
        console.print(
            f"left out: {item['experiment']} ({item['strategy']}): {item['reason']}",
            highlight=False,
        )
    if unmatched:
        console.print(
            f"{unmatched:,} feedback row(s) match no logged prediction (unknown request id or "
            "row_index); they are in no analysis.",
            highlight=False,
        )
    if path is not None:
        print_path(console, "HTML report", path)


def _json(analysis: Any) -> dict[str, Any]:
    """``to_dict()``, plus a shadow analysis's recommendation line."""
    out = analysis.to_dict()
    if getattr(analysis, "shadow", None) is not None:
        from arbiter.report.shadow import analysis_recommendation

        out["recommendation"] = analysis_recommendation(analysis)
    return out


def _check_model(con: Any, model: str) -> None:
    """Fail with the models the event log knows when ``model`` logged nothing."""
    from arbiter.errors import NotFoundError

    known = [r[0] for r in con.execute("SELECT DISTINCT model FROM unforced ORDER BY 1").fetchall()]
    if model not in known:
        raise NotFoundError(
            f"no events logged for model {model!r}; models in the event log: "
            f"{', '.join(known) or 'none'}"
        )


def _check_engine(con: Any, model: str, experiment: str | None, config: Any) -> None:
    """On Spark or PostgreSQL, refuse the analyses whose SQL runs on DuckDB only.

    Shadow and two-arm A/B experiments run on every engine (tests/events/test_engines.py);
    configured metrics, k-arm A/B/n, interleaving, bandits and SRM per split period use
    DuckDB-only SQL
    (docs/design/query-engines.md). Refusing up front beats failing halfway.
    """
    from arbiter.analysis.aggregate import list_experiments
    from arbiter.analysis.kinds import has_challenger_list, logged_shape
    from arbiter.analysis.periods import split_changed
    from arbiter.errors import InvalidInputError

    dialect = getattr(con, "dialect", "duckdb")
    if dialect == "duckdb":
        return
    if config is not None and config.metrics:
        raise InvalidInputError(
            f"the metrics of model {model!r} (outcome and label metrics) use DuckDB-only SQL "
            f"and cannot be analysed on engine {dialect}; use --engine duckdb",
            field="engine",
        )
    for name in [experiment] if experiment else list_experiments(con, model):
        strategy, arms = logged_shape(con, model, name)
        if strategy in (None, "none", "canary"):
            continue  # not analysed by `arbiter analyze` anyway
        several = arms > 2 or has_challenger_list(config, model, name)
        reason = None
        if strategy not in ("shadow", "ab") or several:
            reason = f"its strategy ({strategy}{', k arms' if several else ''})"
        elif strategy == "ab" and split_changed(con, model, name):
            reason = "its split changed (SRM per period)"
        if reason is not None:
            raise InvalidInputError(
                f"experiment {name!r} cannot be analysed on engine {dialect}: {reason} uses "
                "DuckDB-only SQL; use --engine duckdb"
                + ("" if experiment else ", or --experiment for one shadow or A/B experiment"),
                field="engine",
            )


def _left_out(con: Any, model: str, analyses: list[Any], home: Path) -> list[dict[str, str]]:
    """The experiments of ``model`` that ``analyses`` does not cover, each with why and
    where its result is (a canary decides by itself, as it runs)."""
    from arbiter.report.summary import experiments

    done = {a.experiment for a in analyses}
    out = []
    for exp in experiments(con, model):
        if exp["experiment"] in done:
            continue
        strategy = exp["strategy"]
        if strategy == "canary":
            reason = (
                "a canary decides by itself, stage by stage; its decisions: "
                f"arbiter canary status --home {home} --model {model}"
            )
        else:
            reason = "no challenger to compare (one model answered every request)"
        out.append({"experiment": exp["experiment"], "strategy": strategy, "reason": reason})
    return out
