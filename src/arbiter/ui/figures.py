"""Chart specifications for the dashboard: Plotly figures as plain dicts (``data`` + ``layout``).

The browser draws them with Plotly (served by arbiter from the ``plotly`` package, no CDN);
this module only arranges numbers the analyses computed, the way :mod:`arbiter.report.plots`
does for the static report (same colours, same 95 % bands, same time axis), so a chart in the
dashboard and a plot in the HTML report agree. Pure: no I/O, JSON-able output.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from arbiter.analysis.aggregate import LATENCY_PERCENTILES, SIDES
from arbiter.analysis.analyze import ExperimentAnalysis
from arbiter.analysis.bandit import BanditAnalysis
from arbiter.analysis.interleave import InterleaveAnalysis
from arbiter.analysis.multiarm import MultiArmAnalysis
from arbiter.report.plots import PALETTE, SIDE_COLOURS, time_axis

_Z95 = 1.959963984540054  # two-sided 95 % normal quantile, as report.plots

Figure = dict[str, Any]


def _finite(values: Any) -> list[float | None]:
    """JSON has no NaN: missing points become ``null`` (Plotly leaves a gap)."""
    out: list[float | None] = []
    for v in values:
        f = None if v is None else float(v)
        out.append(f if f is not None and math.isfinite(f) else None)
    return out


def _layout(title: str, xlabel: str, ylabel: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 14}},
        "xaxis": {"title": {"text": xlabel}},
        "yaxis": {"title": {"text": ylabel}},
        "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        "height": 320,
        "legend": {"orientation": "h", "y": -0.3},
        **extra,
    }


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def band(x: list[float], low: Any, high: Any, colour: str, name: str) -> list[dict[str, Any]]:
    """A filled band between ``low`` and ``high`` (two traces: Plotly fills to the previous)."""
    return [
        {"x": x, "y": _finite(low), "mode": "lines", "line": {"width": 0}, "showlegend": False,
         "hoverinfo": "skip", "type": "scatter"},
        {"x": x, "y": _finite(high), "mode": "lines", "line": {"width": 0}, "fill": "tonexty",
         "fillcolor": _rgba(colour, 0.2), "name": name, "type": "scatter"},
    ]  # fmt: skip


def metric_over_time(a: Any, arms: Any, colours: list[str]) -> Figure:
    """Cumulative metric per arm with pointwise 95 % intervals (report.plots' first plot)."""
    ts = a.aggregates.timeseries
    t, xlabel = time_axis(ts.elapsed_s)
    x = [float(v) for v in t]
    kind = "proportion" if a.task == "classification" else "mean"
    data: list[dict[str, Any]] = []
    for arm, colour in zip(arms, colours, strict=True):
        stats = [ts.statistic(arm, i, kind) for i in range(len(x))]
        n = np.array([s.n for s in stats], dtype=float)
        mean = np.array([s.mean if s.n else np.nan for s in stats])
        var = np.array([s.variance for s in stats])
        with np.errstate(divide="ignore", invalid="ignore"):
            half = _Z95 * np.sqrt(var / n)
        data += band(x, mean - half, mean + half, colour, f"{arm} 95 % interval")
        data.append({"x": x, "y": _finite(mean), "mode": "lines+markers", "name": arm,
                     "line": {"color": colour}, "type": "scatter"})  # fmt: skip
    return {"data": data, "layout": _layout(f"{a.metric} over time", xlabel, a.metric)}


def effect_over_time(a: ExperimentAnalysis) -> Figure:
    e = a.effect_over_time
    t, xlabel = time_axis(e["elapsed_s"])
    x = [float(v) for v in t]
    level = f"always-valid {1 - a.policy.alpha:.0%} interval"
    data = [
        *band(x, e["ci_low"], e["ci_high"], "#8250df", level),
        {"x": x, "y": _finite(e["estimate"]), "mode": "lines+markers", "type": "scatter",
         "name": "challenger − champion", "line": {"color": "#1f2328"}},
    ]  # fmt: skip
    return {"data": data, "layout": _layout("cumulative effect", xlabel, f"Δ {a.metric}")}


def latency(a: ExperimentAnalysis) -> Figure:
    q = [p * 100 for p in LATENCY_PERCENTILES]
    data = []
    for side in SIDES:
        values = a.aggregates.traffic.get(side)
        if values is None or not values.latency_percentiles_ms:
            continue
        data.append({"x": _finite(values.latency_percentiles_ms), "y": q, "name": side,
                     "mode": "lines", "line": {"color": SIDE_COLOURS[side]},
                     "type": "scatter"})  # fmt: skip
    layout = _layout("latency percentiles", "latency (ms, log scale)", "percentile")
    layout["xaxis"]["type"] = "log"
    return {"data": data, "layout": layout}


def split(names: list[str], observed: Any, expected: Any, title: str) -> Figure:
    return {
        "data": [
            {"x": names, "y": _finite(observed), "name": "observed", "type": "bar",
             "marker": {"color": "#0969da"}},
            {"x": names, "y": _finite(expected), "name": "expected", "type": "bar",
             "marker": {"color": "#d0d7de"}},
        ],
        "layout": _layout(title, "arm", "units"),
    }  # fmt: skip


def shadow_figures(shadow: dict[str, Any]) -> dict[str, Figure]:
    labels = shadow["labels"]
    matrix = {
        "data": [{"z": shadow["matrix"], "x": labels, "y": labels, "type": "heatmap",
                  "colorscale": "Blues", "texttemplate": "%{z}", "showscale": False}],
        "layout": _layout("champion × challenger answers", "challenger predicted",
                          "champion predicted"),
    }  # fmt: skip
    dist = {
        "data": [
            {"x": labels, "y": shadow["distribution"][side], "name": side, "type": "bar",
             "marker": {"color": SIDE_COLOURS[side]}}
            for side in SIDES
        ],
        "layout": _layout("prediction distribution", "prediction", "rows"),
    }  # fmt: skip
    return {"disagreement": matrix, "predictions": dist}


def metric_differences(metrics: Any) -> dict[str, Figure]:
    """Each business metric's difference per unit over time with its band, per challenger
    (the analysis as it stood at each time: report.plots.metric_difference_plots)."""
    if metrics is None:
        return {}
    out: dict[str, Figure] = {}
    level = f"{1 - metrics.alpha:.0%}"
    name = f"always-valid {level} interval" if metrics.sequential else f"{level} interval"
    for r in metrics.results:
        series = r.over_time
        if not series or not series["elapsed_s"]:
            continue
        t, xlabel = time_axis(series["elapsed_s"])
        x = [float(v) for v in t]
        role = f" ({r.role})" if r.role != "secondary" else ""
        out[f"metric-{r.name}-{r.arm}"] = {
            "data": [
                *band(x, series["ci_low"], series["ci_high"], "#1a7f37", name),
                {"x": x, "y": _finite(series["estimate"]), "mode": "lines+markers",
                 "type": "scatter", "name": f"{r.arm} − {r.champion}",
                 "line": {"color": "#1f2328"}},
            ],
            "layout": _layout(f"{r.name}{role}: {r.arm} − {r.champion} over time", xlabel,
                              f"Δ {r.name} per unit"),
        }  # fmt: skip
    return out


def for_analysis(a: Any, shadow: dict[str, Any] | None = None) -> dict[str, Figure]:
    """Every chart of one analysis, by chart id."""
    out: dict[str, Figure] = {}
    if isinstance(a, ExperimentAnalysis):
        out["metric"] = metric_over_time(a, SIDES, [SIDE_COLOURS[s] for s in SIDES])
        out["effect"] = effect_over_time(a)
        out["latency"] = latency(a)
        if a.srm is not None:
            out["split"] = split(list(SIDES), a.srm.observed, a.srm.expected, "traffic split")
        if shadow is not None and shadow["labels"]:
            out.update(shadow_figures(shadow))
        out.update(metric_differences(a.metrics))
    elif isinstance(a, MultiArmAnalysis):
        colours = [PALETTE[i % len(PALETTE)] for i in range(len(a.arms))]
        out["metric"] = metric_over_time(a, a.arms, colours)
        units = [a.arm_rows[arm]["units"] for arm in a.arms]
        expected = [sum(units) * a.weights[arm] for arm in a.arms]
        out["split"] = split(list(a.arms), units, expected, "traffic split")
        out.update(metric_differences(a.metrics))
    elif isinstance(a, InterleaveAnalysis):
        names = ["champion", "challenger", "ties"]
        out["wins"] = {
            "data": [{"x": names, "y": [a.wins[k] for k in names], "type": "bar",
                      "marker": {"color": ["#0969da", "#bf3989", "#8c959f"]}}],
            "layout": _layout("impressions won", "ranker", "impressions"),
        }  # fmt: skip
        cum = a.cumulative
        if cum["delta"]:
            t, xlabel = time_axis(cum["elapsed_s"])
            out["preference"] = {
                "data": [{"x": [float(v) for v in t], "y": _finite(cum["delta"]),
                          "type": "scatter", "mode": "lines", "name": "cumulative Δ",
                          "line": {"color": "#1f2328"}}],
                "layout": _layout("preference for the challenger over time", xlabel,
                                  "(challenger − champion wins) / impressions"),
            }  # fmt: skip
    elif isinstance(a, BanditAnalysis):
        h = a.history
        if h.elapsed_s:
            t, xlabel = time_axis(h.elapsed_s)
            shares = h.shares()
            out["allocation"] = {
                "data": [{"x": [float(v) for v in t], "y": _finite(shares[arm]), "name": arm,
                          "type": "scatter", "mode": "lines", "stackgroup": "one"}
                         for arm in shares],
                "layout": _layout("allocation over time", xlabel, "share of requests"),
            }  # fmt: skip
        arms = list(a.p_best)
        out["p_best"] = {
            "data": [{"x": arms, "y": [a.p_best[arm] for arm in arms], "type": "bar",
                      "marker": {"color": [PALETTE[i % len(PALETTE)] for i in range(len(arms))]}}],
            "layout": _layout("P(best)", "arm", "probability"),
        }  # fmt: skip
    return out


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def for_canary(status: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Figure]:
    """Share over time (a step line through every decision record) and the stage timeline."""
    stages = status["plan"]["stages"]
    x, y, text = [], [], []
    for r in records:
        share = r.get("share")
        if share is None and r.get("action") == "start":
            share = stages[0]["share"] if stages else None
        if share is None or r.get("at") is None:
            continue
        x.append(_when(float(r["at"])))
        y.append(float(share))
        text.append(f"{r.get('action')} (v{r.get('challenger_version')})")
    out: dict[str, Figure] = {}
    if x:
        out["share"] = {
            "data": [{"x": x, "y": y, "text": text, "type": "scatter", "mode": "lines+markers",
                      "line": {"shape": "hv", "color": "#bf3989"}, "name": "challenger share",
                      "hovertemplate": "%{text}<br>share %{y:.0%}<extra></extra>"}],
            "layout": _layout("challenger share over time", "time (UTC)", "share",
                              yaxis={"range": [0, 1.05], "tickformat": ".0%",
                                     "title": {"text": "share"}}),
        }  # fmt: skip
    return out


def for_drift(series: dict[str, Any], latest: Any) -> dict[str, Figure]:
    """Drift statistic per feature over time, and reference vs current histograms."""
    out: dict[str, Figure] = {}
    if series["end"]:
        out["drift_over_time"] = {
            "data": [
                {"x": series["end"], "y": _finite(values), "name": column, "type": "scatter",
                 "mode": "lines+markers", "line": {"color": PALETTE[i % len(PALETTE)]}}
                for i, (column, values) in enumerate(series["statistic"].items())
            ],
            "layout": _layout("drift statistic per feature over time", "window end (UTC)",
                              "statistic"),
        }  # fmt: skip
    if latest is not None:
        for r in latest.features:
            h = r.histogram
            if h is None:
                continue
            out[f"hist-{r.column}"] = {
                "data": [
                    {"x": list(h.labels), "y": _finite(h.reference), "name": "reference",
                     "type": "bar", "marker": {"color": "#8c959f"}},
                    {"x": list(h.labels), "y": _finite(h.current), "name": "current",
                     "type": "bar", "marker": {"color": "#0969da"}},
                ],
                "layout": {**_layout(f"{r.column} ({r.method} {r.statistic:.3g})", "", "share"),
                           "height": 240, "showlegend": False},
            }  # fmt: skip
    return out


__all__ = [
    "band",
    "effect_over_time",
    "for_analysis",
    "for_canary",
    "for_drift",
    "latency",
    "metric_differences",
    "metric_over_time",
    "shadow_figures",
    "split",
]
