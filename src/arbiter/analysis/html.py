"""A self-contained HTML report of analysed experiments: one file that opens offline.

CSS is inline and every plot is a PNG embedded as base64, so the file can be mailed or
attached to a ticket. Plots are drawn with matplotlib's object API (``Figure`` rendered by the
Agg canvas), never ``pyplot``: no global backend switch, no figure registry to leak, and
matplotlib is imported only when a report is rendered.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arbiter.analysis.aggregate import LATENCY_PERCENTILES, SIDES
from arbiter.analysis.analyze import ExperimentAnalysis

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_COLORS = {"champion": "#0969da", "challenger": "#bf3989"}
_TEMPLATE = "report.html.j2"


@dataclass(frozen=True, slots=True)
class Plot:
    """One embedded plot: base64 PNG bytes plus its title and caption."""

    title: str
    caption: str
    data: str


def _num(value: Any) -> str:
    """Format numbers for tables: 4 significant digits, integers as is, missing as a dash."""
    if value is None or isinstance(value, str):
        return "—" if value is None else value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    v = float(value)
    if not math.isfinite(v):
        return "—" if math.isnan(v) else ("∞" if v > 0 else "−∞")
    return f"{v:.4g}"


def html_table(header: list[str], rows: list[list[Any]]) -> str:
    """An escaped ``<table>``: numbers right-aligned and formatted by :func:`_num`, text left."""
    import html

    def cell(v: Any) -> str:
        cls = "" if isinstance(v, int | float) and not isinstance(v, bool) else ' class="l"'
        return f"<td{cls}>{html.escape(_num(v))}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(width: float = 5.2, height: float = 3.2) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _time_axis(elapsed_s: tuple[float, ...] | list[float]) -> tuple[np.ndarray, str]:
    """Elapsed time in the unit that keeps tick labels short."""
    t = np.asarray(elapsed_s, dtype=float)
    span = float(t.max()) if t.size else 0.0
    for unit, seconds in (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0)):
        if span >= 2 * seconds:
            return t / seconds, f"{unit} since start"
    return t, "seconds since start"


def _metric_plot(a: ExperimentAnalysis) -> Plot:
    ts = a.aggregates.timeseries
    z = 1.959963984540054  # two-sided 95 % normal quantile
    fig = _figure()
    ax = fig.add_subplot()
    t, xlabel = _time_axis(ts.elapsed_s)
    kind = "proportion" if a.task == "classification" else "mean"
    for side in SIDES:
        stats = [ts.statistic(side, i, kind) for i in range(len(t))]  # one per bucket
        n = np.array([s.n for s in stats], dtype=float)
        mean = np.array([s.mean if s.n else np.nan for s in stats])
        var = np.array([s.variance for s in stats])
        with np.errstate(divide="ignore", invalid="ignore"):
            half = z * np.sqrt(var / n)
        ax.plot(t, mean, color=_COLORS[side], label=side)
        ax.fill_between(t, mean - half, mean + half, color=_COLORS[side], alpha=0.2, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"cumulative {a.metric}")
    ax.legend(loc="best")
    return Plot(
        f"{a.metric} over time",
        f"Cumulative {a.metric} per arm on labelled rows, with pointwise 95 % intervals.",
        _png(fig),
    )


def _effect_plot(a: ExperimentAnalysis) -> Plot:
    e = a.effect_over_time
    t, xlabel = _time_axis(e["elapsed_s"])
    est = np.asarray(e["estimate"], dtype=float)
    fig = _figure()
    ax = fig.add_subplot()
    ax.axhline(0.0, color="#57606a", lw=0.8)
    ax.plot(t, est, color="#1f2328", label="challenger − champion")
    ax.fill_between(
        t,
        np.asarray(e["ci_low"], dtype=float),
        np.asarray(e["ci_high"], dtype=float),
        color="#8250df",
        alpha=0.25,
        lw=0,
        label=f"always-valid {1 - a.policy.alpha:.0%} interval",
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"difference in {a.metric}")
    ax.legend(loc="best")
    paired = " (paired, per row)" if a.mode == "shadow" else ""
    return Plot(
        "cumulative effect",
        f"Cumulative effect{paired} with its confidence sequence: valid at every look, so "
        "the band may be read at any time.",
        _png(fig),
    )


def _latency_plot(a: ExperimentAnalysis) -> Plot:
    fig = _figure()
    ax = fig.add_subplot()
    q = np.asarray(LATENCY_PERCENTILES) * 100
    drawn = False
    for side in SIDES:
        values = a.aggregates.traffic.get(side)
        if values is None or not values.latency_percentiles_ms:
            continue
        ax.plot(values.latency_percentiles_ms, q, color=_COLORS[side], label=side)
        drawn = True
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("percentile of requests")
    if drawn:
        ax.legend(loc="lower right")
    return Plot(
        "latency distribution",
        "Distribution of model latency per arm (1st to 99th percentile of successful requests).",
        _png(fig),
    )


def _traffic_plot(a: ExperimentAnalysis) -> Plot:
    fig = _figure()
    ax = fig.add_subplot()
    x = np.arange(len(SIDES))
    if a.srm is not None:
        observed, expected = a.srm.observed, a.srm.expected
        ax.bar(x - 0.2, observed, width=0.4, color="#0969da", label="observed")
        ax.bar(x + 0.2, expected, width=0.4, color="#d0d7de", label="expected")
        verdict = "mismatch" if a.srm.mismatch else "no mismatch"
        title = f"SRM chi-square p = {_num(a.srm.p_value)} ({verdict})"
        ax.legend(loc="lower right")
        ylabel = a.srm_basis or "units"
    else:
        counts = [a.arms[s]["requests"] for s in SIDES]
        ax.bar(x, counts, width=0.5, color="#0969da")
        title = "shadow: the challenger scores copies of requests (no split, no SRM)"
        ylabel = "requests"
    ax.set_xticks(x, list(SIDES))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    return Plot("traffic split", "Traffic per arm against the configured split.", _png(fig))


def _confusion_plot(a: ExperimentAnalysis) -> Plot | None:
    matrices = a.aggregates.confusion
    if not matrices or not matrices[0].labels:
        return None
    fig = _figure(5.2, 2.8)
    for k, m in enumerate(matrices):
        ax = fig.add_subplot(1, len(matrices), k + 1)
        counts = np.asarray(m.counts)
        ax.imshow(counts, cmap="Blues")
        ticks = np.arange(len(m.labels))
        ax.set_xticks(ticks, list(m.labels))
        ax.set_yticks(ticks, list(m.labels))
        ax.set_xlabel("predicted")
        if k == 0:
            ax.set_ylabel("true")
        ax.set_title(m.side, fontsize=9)
        threshold = counts.max() / 2 if counts.size else 0
        for (i, j), value in np.ndenumerate(counts):
            color = "white" if value > threshold else "black"
            ax.text(j, i, f"{value:,}", ha="center", va="center", fontsize=8, color=color)
    return Plot(
        "confusion matrices",
        "Confusion matrices on labelled rows (most frequent labels).",
        _png(fig),
    )


def plots(analysis: ExperimentAnalysis) -> list[Plot]:
    """Every plot of one experiment, in report order."""
    out = [
        _metric_plot(analysis),
        _effect_plot(analysis),
        _latency_plot(analysis),
        _traffic_plot(analysis),
    ]
    confusion = _confusion_plot(analysis)
    if confusion is not None:
        out.append(confusion)
    return out


def _tests(d: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"role": "primary", **d["primary"]}]
    rows += [{"role": "secondary", **t} for t in d["secondary"].values()]
    return rows


def render_html(
    analyses: Sequence[Any], *, model: str, generated_at: datetime | None = None
) -> str:
    """Render the report as one HTML string (inline CSS, base64 PNG plots, no external links).

    Parameters
    ----------
    analyses : list of ExperimentAnalysis
        The experiments to show, in order.
    model : str
        Model name for the title.
    generated_at : datetime, optional
        Timestamp printed in the header (default: now, UTC).

    Returns
    -------
    str
    """
    import jinja2
    import markupsafe

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["num"] = _num
    source = resources.files("arbiter.analysis").joinpath(_TEMPLATE).read_text(encoding="utf-8")
    template = env.from_string(source)
    items = []
    for a in analyses:
        if not isinstance(a, ExperimentAnalysis):  # A/B/n, interleaving, bandit: own section
            items.append({"custom_html": markupsafe.Markup(a.html_section())})
            continue
        d = a.to_dict()
        items.append(
            {
                **d,
                "remaining": d["estimated_remaining_sample"],
                "tests": _tests(d),
                "plots": plots(a),
            }
        )
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return template.render(model=model, analyses=items, generated_at=when)


def write_html(analyses: Sequence[Any], path: str | Path, *, model: str) -> Path:
    """Render :func:`render_html` into ``path`` (parent folders created); return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(analyses, model=model), encoding="utf-8")
    return out


__all__ = ["Plot", "html_table", "plots", "render_html", "write_html"]
