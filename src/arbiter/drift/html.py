"""A self-contained HTML drift report: one file, inline CSS, base64 PNG histograms (shell).

Reuses the plotting helpers of :mod:`arbiter.analysis.html` (matplotlib's object API on the
Agg canvas, no pyplot). Features are sorted by drift: drifted first, then by how far the
statistic is past its threshold.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from arbiter.drift.results import DatasetDriftResult, DriftResult

_TEMPLATE = "report.html.j2"


def drift_order(result: DriftResult) -> tuple[int, float]:
    """Sort key: drifted first, then by statistic / threshold (untested columns last)."""
    if result.status != "ok":
        return (2, 0.0)
    ratio = result.statistic / result.threshold if result.threshold > 0 else math.inf
    return (0 if result.drifted else 1, -ratio if math.isfinite(ratio) else -math.inf)


def _histogram_plot(r: DriftResult) -> Any:
    from arbiter.analysis.html import Plot, _figure, _png

    h = r.histogram
    assert h is not None
    fig = _figure(4.6, 2.8)
    ax = fig.add_subplot()
    x = np.arange(len(h.labels))
    ax.bar(x - 0.2, h.reference, width=0.4, color="#0969da", label="reference")
    ax.bar(x + 0.2, h.current, width=0.4, color="#bf3989", label="current")
    if h.edges is not None:
        step = max(1, len(h.labels) // 5)
        ticks = x[::step]
        ax.set_xticks(ticks, [f"{h.edges[i + 1]:.3g}" for i in ticks], fontsize=7)
        ax.set_xlabel("upper bin edge (outer bins open)", fontsize=8)
    else:
        ax.set_xticks(x, [label[:12] for label in h.labels], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of rows", fontsize=8)
    verdict = "DRIFT" if r.drifted else "no drift"
    ax.set_title(f"{r.column}: {r.method} = {r.statistic:.3g} ({verdict})", fontsize=9)
    ax.legend(fontsize=7)
    caption = f"{r.column} ({r.kind}): threshold {r.threshold:.3g}"
    if r.p_value_adjusted is not None:
        caption += f", adjusted p = {r.p_value_adjusted:.3g}"
    return Plot(r.column, caption, _png(fig))


def render_drift_html(
    result: DatasetDriftResult,
    *,
    title: str,
    subtitle: str = "",
    generated_at: datetime | None = None,
) -> str:
    """The report as one HTML string."""
    import jinja2

    from arbiter.analysis.html import _num

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["num"] = _num
    ordered = sorted(result.features, key=drift_order)
    shown = [*ordered, *([result.prediction] if result.prediction is not None else [])]
    plots = [_histogram_plot(r) for r in shown if r.histogram is not None and r.status == "ok"]
    d = result.to_dict()
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    source = resources.files("arbiter.drift").joinpath(_TEMPLATE).read_text(encoding="utf-8")
    return env.from_string(source).render(
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


__all__ = ["drift_order", "render_drift_html", "write_drift_html"]
