"""Every plot of the reports, as base64 PNGs ready to embed in one self-contained HTML file.

Plots are drawn with matplotlib's object API (``Figure`` rendered by the Agg canvas), never
``pyplot``: no global backend switch, no figure registry to leak, and matplotlib is imported
only when a report is rendered. :func:`plots` dispatches on the analysis type.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from functools import singledispatch
from typing import TYPE_CHECKING, Any

import numpy as np

from arbiter.analysis.aggregate import LATENCY_PERCENTILES, SIDES
from arbiter.analysis.analyze import ExperimentAnalysis
from arbiter.analysis.bandit import BanditAnalysis
from arbiter.analysis.interleave import InterleaveAnalysis
from arbiter.analysis.multiarm import MultiArmAnalysis
from arbiter.drift.results import DriftResult
from arbiter.report.format import format_number, format_p_value

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SIDE_COLOURS = {"champion": "#0969da", "challenger": "#bf3989"}
PALETTE = ("#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#57606a")
_Z95 = 1.959963984540054  # two-sided 95 % normal quantile


@dataclass(frozen=True, slots=True)
class Plot:
    """One embedded plot: base64 PNG bytes plus its title and caption."""

    title: str
    caption: str
    data: str


def figure(width: float = 5.2, height: float = 3.2) -> Figure:
    """A new figure on the Agg canvas (no pyplot state)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png(fig: Figure) -> str:
    """The figure as a base64-encoded PNG, cropped to everything drawn.

    ``bbox_inches="tight"`` grows the saved area to include titles, tick labels and a
    legend placed outside the axes, which a fixed figure size clipped (the confusion
    matrices' titles and axis labels).
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.08)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def time_axis(elapsed_s: tuple[float, ...] | list[float]) -> tuple[np.ndarray, str]:
    """Elapsed time in the unit that keeps tick labels short."""
    t = np.asarray(elapsed_s, dtype=float)
    span = float(t.max()) if t.size else 0.0
    for unit, seconds in (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0)):
        if span >= 2 * seconds:
            return t / seconds, f"{unit} since start"
    return t, "seconds since start"


@singledispatch
def plots(result: Any) -> list[Plot]:
    """Every plot of one result, in report order (one implementation per result type; a
    result type without one has no plots)."""
    return []


# --- champion vs challenger ------------------------------------------------------------------


def _cumulative_metric(ax: Any, a: Any, arms: Any, colours: list[str], alpha: float) -> None:
    """Cumulative metric per arm with pointwise 95 % intervals, on ``ax``."""
    ts = a.aggregates.timeseries
    t, xlabel = time_axis(ts.elapsed_s)
    kind = "proportion" if a.task == "classification" else "mean"
    for arm, colour in zip(arms, colours, strict=True):
        stats = [ts.statistic(arm, i, kind) for i in range(len(t))]  # one per bucket
        n = np.array([s.n for s in stats], dtype=float)
        mean = np.array([s.mean if s.n else np.nan for s in stats])
        var = np.array([s.variance for s in stats])
        with np.errstate(divide="ignore", invalid="ignore"):
            half = _Z95 * np.sqrt(var / n)
        ax.plot(t, mean, color=colour, label=arm)
        ax.fill_between(t, mean - half, mean + half, color=colour, alpha=alpha, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"cumulative {a.metric}")
    ax.legend(loc="best")


def _metric_plot(a: ExperimentAnalysis) -> Plot:
    fig = figure()
    _cumulative_metric(fig.add_subplot(), a, SIDES, [SIDE_COLOURS[s] for s in SIDES], 0.2)
    return Plot(
        f"{a.metric} over time",
        f"Cumulative {a.metric} per arm on labelled rows, with pointwise 95 % intervals.",
        png(fig),
    )


def _effect_plot(a: ExperimentAnalysis) -> Plot:
    e = a.effect_over_time
    t, xlabel = time_axis(e["elapsed_s"])
    est = np.asarray(e["estimate"], dtype=float)
    fig = figure()
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
        png(fig),
    )


def _latency_plot(a: ExperimentAnalysis) -> Plot:
    return Plot(
        "latency distribution",
        "Distribution of model latency per arm (1st to 99th percentile of successful "
        "requests), on a log scale so that a slow tail does not hide the medians.",
        png(latency_figure(a)),
    )


def latency_figure(a: ExperimentAnalysis) -> Figure:
    """Latency percentiles per arm, on a log axis."""
    from matplotlib.ticker import LogLocator, NullFormatter

    fig = figure()
    ax = fig.add_subplot()
    q = np.asarray(LATENCY_PERCENTILES) * 100
    drawn = False
    for side in SIDES:
        values = a.aggregates.traffic.get(side)
        if values is None or not values.latency_percentiles_ms:
            continue
        ax.plot(values.latency_percentiles_ms, q, color=SIDE_COLOURS[side], label=side)
        drawn = True
    # Log scale: latencies span orders of magnitude (0.5 ms medians, a 200 ms p99), and on
    # a linear axis one slow tail flattens every other curve against the left edge.
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(_plain_ticks())
    ax.xaxis.set_minor_formatter(NullFormatter())  # matplotlib labels minor ticks too
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("percentile of requests")
    if drawn:
        ax.legend(loc="lower right")
    return fig


def _plain_ticks() -> Any:
    """Tick labels of a log axis as plain numbers (``0.5``, ``10``, ``200``), not powers."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: format_number(v, digits=3))


def _split_bars(ax: Any, names: list[str], observed: Any, expected: Any) -> None:
    x = np.arange(len(names))
    ax.bar(x - 0.2, observed, width=0.4, color="#0969da", label="observed")
    ax.bar(x + 0.2, expected, width=0.4, color="#d0d7de", label="expected")
    ax.set_xticks(x, names)
    # Outside the axes, to the right: inside, it covered the bars it explains.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)


def _srm_title(srm: Any) -> str:
    verdict = "mismatch" if srm.mismatch else "no mismatch"
    return f"SRM chi-square p = {format_p_value(srm.p_value)} ({verdict})"


def _traffic_plot(a: ExperimentAnalysis) -> Plot:
    fig = traffic_figure(a)
    if a.srm is not None:
        return Plot("traffic split", "Traffic per arm against the configured split.", png(fig))
    return Plot(
        "requests scored",
        "Shadow test: the champion answered every request and the challenger scored copies of "
        "those sent to it, so there is no split to check (no SRM test).",
        png(fig),
    )


def traffic_figure(a: ExperimentAnalysis) -> Figure:
    """Units per arm against the split (A/B), or requests each model scored (shadow)."""
    fig = figure()
    ax = fig.add_subplot()
    if a.srm is not None:
        _split_bars(ax, list(SIDES), a.srm.observed, a.srm.expected)
        ax.set_ylabel(a.srm_basis or "units")
        ax.set_title(_srm_title(a.srm), fontsize=9)
        return fig
    # A shadow has no split: every request goes to the champion, and the challenger scores
    # copies of those sent to it. Title and caption say the same thing.
    x = np.arange(len(SIDES))
    ax.bar(x, [a.arms[s]["requests"] for s in SIDES], width=0.5, color="#0969da")
    ax.set_xticks(x, ["champion (answered)", "challenger (shadow copies)"])
    ax.set_ylabel("requests")
    ax.set_title("requests scored by each model", fontsize=9)
    return fig


def _confusion_plot(a: ExperimentAnalysis) -> Plot | None:
    matrices = a.aggregates.confusion
    if not matrices or not matrices[0].labels:
        return None
    fig = figure(5.2, 3.2)
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
            ax.text(j, i, format_number(int(value)), ha="center", va="center", fontsize=8,
                    color=color)  # fmt: skip
    return Plot(
        "confusion matrices",
        "Confusion matrices on labelled rows (most frequent labels).",
        png(fig),
    )


def metric_difference_plots(metrics: Any) -> list[Plot]:
    """Each business metric's difference over time with its band, one plot per challenger.

    Every point is the analysis as it stood at that time (units exposed by then, outcomes
    until then: :func:`arbiter.analysis.metrics.metric_differences_over_time`), so the band
    is the always-valid interval a reader would have seen when the test is sequential.
    """
    if metrics is None:
        return []
    out = []
    level = f"{1 - metrics.alpha:.0%}"
    band = f"always-valid {level} interval" if metrics.sequential else f"{level} interval"
    for r in metrics.results:
        series = r.over_time
        if not series or not series["elapsed_s"]:
            continue
        t, xlabel = time_axis(series["elapsed_s"])
        fig = figure()
        ax = fig.add_subplot()
        ax.axhline(0.0, color="#57606a", lw=0.8)
        ax.plot(t, np.asarray(series["estimate"], dtype=float), "o-", color="#1f2328", ms=3,
                label=f"{r.arm} − {r.champion}")  # fmt: skip
        ax.fill_between(
            t,
            np.asarray(series["ci_low"], dtype=float),
            np.asarray(series["ci_high"], dtype=float),
            color="#1a7f37",
            alpha=0.25,
            lw=0,
            label=band,
        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"difference in {r.name} per unit")
        ax.legend(loc="best")
        role = f" ({r.role})" if r.role != "secondary" else ""
        out.append(
            Plot(
                f"{r.name}{role}: {r.arm} − {r.champion} over time",
                f"Business metric {r.name}{role}: difference per unit as the analysis stood at "
                "each time, with its band.",
                png(fig),
            )
        )
    return out


def prediction_distribution_plot(a: ExperimentAnalysis) -> Plot | None:
    """A shadow experiment's predictions per model: class shares side by side and, when the
    models log a score (regressors: a number), its histogram per model on shared bins."""
    if a.shadow is None:
        return None
    dists = a.shadow.distributions
    classes = [c.value for c in dists["champion"].classes]
    classes += [c.value for c in dists["challenger"].classes if c.value not in classes]
    edges = dists["champion"].histogram_edges
    panels = int(bool(classes)) + int(bool(edges))
    if not panels:
        return None
    fig = figure(5.2 if panels == 1 else 7.6, 3.2)
    k = 0
    if classes:
        k += 1
        ax = fig.add_subplot(1, panels, k)
        x = np.arange(len(classes))
        for offset, side in ((-0.2, "champion"), (0.2, "challenger")):
            share = {c.value: c.share for c in dists[side].classes}
            ax.bar(x + offset, [share.get(c, 0.0) for c in classes], width=0.4,
                   color=SIDE_COLOURS[side], label=side)  # fmt: skip
        ax.set_xticks(x, classes)
        ax.set_xlabel("prediction")
        ax.set_ylabel("share of the model's rows")
        ax.legend(loc="best")
    if edges:
        k += 1
        ax = fig.add_subplot(1, panels, k)
        for side in SIDES:
            d = dists[side]
            total = max(sum(d.histogram_counts), 1)
            ax.stairs(np.asarray(d.histogram_counts) / total, np.asarray(edges),
                      color=SIDE_COLOURS[side], lw=1.6, label=side)  # fmt: skip
        values = dists["champion"].values or dists["challenger"].values or "value"
        ax.set_xlabel(values)
        ax.set_ylabel("share of the model's rows")
        ax.legend(loc="best")
    return Plot(
        "predictions per model",
        "Each model's predictions on its own successful rows: class shares"
        + (" and the histogram of its score" if edges else "")
        + " (tables above: counts, quantiles, disagreements by direction).",
        png(fig),
    )


@plots.register(ExperimentAnalysis)
def _(a: ExperimentAnalysis) -> list[Plot]:
    out = [_metric_plot(a), _effect_plot(a), _latency_plot(a), _traffic_plot(a)]
    confusion = _confusion_plot(a)
    if confusion is not None:
        out.append(confusion)
    distribution = prediction_distribution_plot(a)
    if distribution is not None:
        out.append(distribution)
    return out + metric_difference_plots(a.metrics)


# --- A/B/n -----------------------------------------------------------------------------------


@plots.register(MultiArmAnalysis)
def _(a: MultiArmAnalysis) -> list[Plot]:
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(a.arms))]
    fig = figure()
    _cumulative_metric(fig.add_subplot(), a, a.arms, colours, 0.15)
    out = [
        Plot(
            f"{a.metric} over time",
            f"Cumulative {a.metric} per arm on labelled rows, pointwise 95 % intervals.",
            png(fig),
        )
    ]

    fig = figure()
    ax = fig.add_subplot()
    rows = list(a.pairwise)
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows, strict=True):
        lo, hi = r["ci_low"], r["ci_high"]
        colour = "#cf222e" if r["significant"] else "#57606a"
        if math.isfinite(lo) and math.isfinite(hi):
            ax.plot([lo, hi], [yi, yi], color=colour, lw=2)
        ax.plot([r["estimate"]], [yi], "o", color=colour)
    ax.axvline(0.0, color="#57606a", lw=0.8)
    ax.set_yticks(y, [f"{r['b']} − {r['a']}" for r in rows])
    ax.set_xlabel(f"difference in {a.metric}")
    out.append(
        Plot(
            "pairwise differences",
            f"Every pair with its family-wise interval ({a.multiplicity}); red: significant.",
            png(fig),
        )
    )

    fig = figure()
    ax = fig.add_subplot()
    units = [a.arm_rows[arm]["units"] for arm in a.arms]
    total = sum(units)
    _split_bars(ax, list(a.arms), units, [total * a.weights[arm] for arm in a.arms])
    ax.set_ylabel(a.srm_basis or "units")
    if a.srm is not None:
        ax.set_title(_srm_title(a.srm), fontsize=9)
    out.append(Plot("traffic split", "Units per arm against the configured shares.", png(fig)))
    return out + metric_difference_plots(a.metrics)


# --- interleaving ----------------------------------------------------------------------------


@plots.register(InterleaveAnalysis)
def _(a: InterleaveAnalysis) -> list[Plot]:
    fig = figure()
    ax = fig.add_subplot()
    names = ["champion", "challenger", "ties"]
    ax.bar(names, [a.wins[k] for k in names], color=["#0969da", "#bf3989", "#8c959f"])
    ax.set_ylabel("impressions won")
    out = [
        Plot(
            "impressions won",
            "Impressions with clicks won by each ranker (more credited clicks) or tied.",
            png(fig),
        )
    ]
    cum = a.cumulative
    if cum["delta"]:
        t, xlabel = time_axis(cum["elapsed_s"])
        fig = figure()
        ax = fig.add_subplot()
        ax.axhline(0.0, color="#57606a", lw=0.8)
        ax.plot(t, cum["delta"], color="#1f2328", label="cumulative Δ")
        p = a.preference
        if math.isfinite(p["ci_low"]):
            ax.axhspan(
                p["ci_low"], p["ci_high"], color="#8250df", alpha=0.2, lw=0,
                label=f"final {1 - a.policy.alpha:.0%} CI (clustered)",
            )  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel("preference for the challenger")
        ax.legend(loc="best")
        out.append(
            Plot(
                "cumulative preference",
                "(challenger wins − champion wins) / impressions with clicks, as impressions "
                "arrived; the band is the final interval.",
                png(fig),
            )
        )
    return out


# --- bandit ----------------------------------------------------------------------------------


@plots.register(BanditAnalysis)
def _(a: BanditAnalysis) -> list[Plot]:
    from scipy import stats

    out = []
    h = a.history
    if h.elapsed_s:
        fig = figure()
        ax = fig.add_subplot()
        t, xlabel = time_axis(h.elapsed_s)
        shares = h.shares()
        ax.stackplot(
            t,
            *[np.nan_to_num(np.asarray(shares[arm]), nan=0.0) for arm in shares],
            labels=list(shares),
            alpha=0.85,
        )
        ax.set_ylim(0, 1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("share of requests")
        ax.legend(loc="upper left", framealpha=0.9)
        out.append(
            Plot(
                "allocation over time",
                f"Share of requests each arm served per {format_number(h.bucket_s, digits=3)} s "
                "bucket, as logged (what the gateway did, across every worker).",
                png(fig),
            )
        )
    fig = figure()
    ax = fig.add_subplot()
    params = a.state.posterior_params
    # Show where the posteriors have mass, not all of [0, 1].
    lo = float(stats.beta.ppf(0.0005, params[:, 0], params[:, 1]).min())
    hi = float(stats.beta.ppf(0.9995, params[:, 0], params[:, 1]).max())
    x = np.linspace(lo, hi, 501)
    for i, arm in enumerate(a.state.arms):
        ax.plot(x, stats.beta.pdf(x, params[i, 0], params[i, 1]), label=arm)
    ax.set_xlabel("mean reward")
    ax.set_ylabel("posterior density")
    ax.legend(loc="best")
    out.append(
        Plot("posteriors", "Beta posterior of each arm's mean reward (uniform prior).", png(fig))
    )
    return out


# --- drift -----------------------------------------------------------------------------------


def histogram_plot(r: DriftResult) -> Plot:
    """Reference against current histogram of one drift-tested column."""
    h = r.histogram
    assert h is not None
    fig = figure(4.6, 2.8)
    ax = fig.add_subplot()
    x = np.arange(len(h.labels))
    ax.bar(x - 0.2, h.reference, width=0.4, color="#0969da", label="reference")
    ax.bar(x + 0.2, h.current, width=0.4, color="#bf3989", label="current")
    if h.edges is not None:
        step = max(1, len(h.labels) // 5)
        ticks = x[::step]
        ax.set_xticks(ticks, [format_number(h.edges[i + 1], digits=3) for i in ticks], fontsize=7)
        ax.set_xlabel("upper bin edge (outer bins open)", fontsize=8)
    else:
        ax.set_xticks(x, [label[:12] for label in h.labels], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of rows", fontsize=8)
    verdict = "DRIFT" if r.drifted else "no drift"
    statistic = format_number(r.statistic, digits=3)
    ax.set_title(f"{r.column}: {r.method} = {statistic} ({verdict})", fontsize=9)
    ax.legend(fontsize=7)
    caption = f"{r.column} ({r.kind}): threshold {format_number(r.threshold, digits=3)}"
    if r.p_value_adjusted is not None:
        caption += f", adjusted p = {format_p_value(r.p_value_adjusted)}"
    return Plot(r.column, caption, png(fig))


__all__ = ["PALETTE", "SIDE_COLOURS", "Plot", "figure", "histogram_plot", "latency_figure",
           "metric_difference_plots", "plots", "png", "time_axis", "traffic_figure"]  # fmt: skip
