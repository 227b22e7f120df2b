"""Drift reports: a terminal table, one self-contained HTML file, and Markdown.

Features are sorted by drift (:func:`drift_order`): drifted first, then by how far the
statistic is past its threshold. The HTML embeds reference-vs-current histograms as base64
PNGs (:func:`arbiter.report.plots.histogram_plot`) and comes from ``templates/drift.html.j2``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arbiter.drift.results import DatasetDriftResult, DriftResult
from arbiter.report.format import format_number


def drift_order(result: DriftResult) -> tuple[int, float]:
    """Sort key: drifted first, then by statistic / threshold (untested columns last)."""
    if result.status != "ok":
        return (2, 0.0)
    ratio = result.statistic / result.threshold if result.threshold > 0 else math.inf
    return (0 if result.drifted else 1, -ratio if math.isfinite(ratio) else -math.inf)


def _shown(result: DatasetDriftResult) -> list[DriftResult]:
    """Features most drifted first, then the prediction column."""
    rows = sorted(result.features, key=drift_order)
    return [*rows, *([result.prediction] if result.prediction is not None else [])]


def print_drift(console: Any, result: DatasetDriftResult, header: str) -> None:
    """The features table and the dataset and prediction verdicts, on a Rich console."""
    from arbiter.report.terminal import rich_table

    console.rule(header)
    rows = [
        {
            "column": r.column,
            "kind": r.kind,
            "method": r.method,
            "statistic": r.statistic,
            "threshold": r.threshold,
            "p_value": r.p_value_adjusted if r.p_value_adjusted is not None else r.p_value,
            "n_current": r.n_current,
            "drifted": ("yes" if r.drifted else "no") if r.status == "ok" else r.status,
        }
        for r in _shown(result)
    ]
    table = rich_table(
        "features (most drifted first)",
        rows,
        ["column", "kind", "method", "statistic", "threshold", "p_value", "n_current", "drifted"],
        optional=("kind", "n_current", "threshold"),
        headers={"p_value": "p (adj.)", "n_current": "n cur"},
    )
    console.print(table)
    signals = [
        {
            "column": r.column,
            "signal": sig.name,
            "method": sig.method,
            "statistic": sig.statistic,
            "threshold": sig.threshold,
            "p_value": sig.p_value_adjusted if sig.p_value_adjusted is not None else sig.p_value,
            "reference": sig.reference,
            "current": sig.current,
            "drifted": "yes" if sig.drifted else "no",
        }
        for r in _shown(result)
        for sig in r.signals
    ]
    if signals:
        console.print(
            rich_table(
                "column signals (missing rate; text length and out-of-vocabulary rate)",
                signals,
                [
                    "column",
                    "signal",
                    "method",
                    "statistic",
                    "threshold",
                    "p_value",
                    "reference",
                    "current",
                    "drifted",
                ],
                optional=("method", "threshold"),
                headers={"p_value": "p (adj.)", "reference": "ref", "current": "cur"},
            )
        )
    for r in _shown(result):
        if r.unseen:
            names = ", ".join(
                f"{name} ({format_number(100 * share, digits=2, style='fixed')} %)"
                for name, share in r.unseen
            )
            console.print(
                f"unseen categories in {r.column}: {names} — "
                f"{format_number(100 * r.unseen_share, digits=2, style='fixed')} % of its "
                "current values"
            )
    colour = "red" if result.drifted else "green"
    console.print(
        f"dataset drift: [bold {colour}]{'yes' if result.drifted else 'no'}[/bold {colour}] "
        f"({result.n_drifted}/{result.n_tested} features, share "
        f"{format_number(result.share, digits=2, style='fixed')}, threshold "
        f"{format_number(result.share_threshold, digits=2, style='fixed')})"
    )
    if result.prediction is not None:
        p = result.prediction
        console.print(
            f"prediction drift: {'yes' if p.drifted else 'no'} "
            f"({p.method} {format_number(p.statistic)})"
        )


def render_drift_html(
    result: DatasetDriftResult,
    *,
    title: str,
    subtitle: str = "",
    generated_at: datetime | None = None,
) -> str:
    """The report as one HTML string (inline CSS, base64 PNG histograms)."""
    from arbiter.report.html import render_template
    from arbiter.report.plots import histogram_plot

    ordered = sorted(result.features, key=drift_order)
    plots = [histogram_plot(r) for r in _shown(result)
             if r.histogram is not None and r.status == "ok"]  # fmt: skip
    d = result.to_dict()
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return render_template(
        "drift.html.j2",
        title=title,
        subtitle=subtitle,
        generated_at=when,
        dataset=d["dataset"],
        prediction=d["prediction"],
        rows=[r.to_dict() for r in ordered],
        plots=plots,
    )


def write_drift_html(
    result: DatasetDriftResult, path: str | Path, *, title: str, subtitle: str = ""
) -> Path:
    """Write :func:`render_drift_html` to ``path`` (parents created); return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_drift_html(result, title=title, subtitle=subtitle), encoding="utf-8")
    return out


def drift_markdown(result: DatasetDriftResult, *, title: str) -> str:
    """The drift report as Markdown: the verdicts and the features table (no plots)."""
    from arbiter.report.markdown import table

    lines = [
        f"# Drift report: {title}\n",
        f"Dataset drift: **{format_number(result.drifted)}** ({result.n_drifted} of "
        f"{result.n_tested} features, share {format_number(result.share)}, threshold "
        f"{format_number(result.share_threshold)}).\n",
    ]
    if result.prediction is not None:
        p = result.prediction
        lines.append(
            f"Prediction drift: **{format_number(p.drifted)}** ({p.method} = "
            f"{format_number(p.statistic)}, threshold {format_number(p.threshold)}).\n"
        )
    columns = ["column", "kind", "method", "statistic", "threshold", "p_value",
               "p_value_adjusted", "n_reference", "n_current", "drifted", "status"]  # fmt: skip
    lines.append(table([r.to_dict() for r in _shown(result)], columns))
    return "\n".join(lines)


__all__ = ["drift_markdown", "drift_order", "print_drift", "render_drift_html",
           "write_drift_html"]  # fmt: skip
