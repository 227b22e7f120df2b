"""Summaries, targets and Markdown tables of ``benchmarks/gateway.py``'s runs.

A measure taken in several rotated rounds is summarised by its median and its range (the
smallest and largest round): on a shared VM one server's throughput moved by ±25 % between
runs, so a single number says little and a best-of-N flatters whoever got the quiet moment.
"""

from __future__ import annotations

import statistics
from typing import Any

FIELDS = ("rps", "achieved_rps", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max over rounds of every numeric field the rounds share."""
    out: dict[str, Any] = {"rounds": len(rounds)}
    for name in FIELDS:
        values = [r[name] for r in rounds if name in r]
        if values:
            out[name] = {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
            }
    for name in ("errors", "requests"):
        out[name] = sum(r.get(name, 0) for r in rounds)
    out["background_cpu_max"] = max((r.get("background_cpu", 0.0) for r in rounds), default=0.0)
    return out


def med(summary: dict[str, Any] | None, name: str) -> float | None:
    if not summary or name not in summary:
        return None
    return float(summary[name]["median"])


def span(summary: dict[str, Any] | None, name: str, digits: int = 0, unit: str = "") -> str:
    """``median (min–max)`` of one field, e.g. ``1,234 (1,180–1,300) req/s``."""
    if not summary or name not in summary:
        return "—"
    v = summary[name]
    f = f"{{:,.{digits}f}}"
    rng = "" if summary.get("rounds", 1) < 2 else f" ({f.format(v['min'])}–{f.format(v['max'])})"
    return f"{f.format(v['median'])}{rng}{unit}"


def targets(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 13's targets for one model's run: measure | target | arbiter | peer | met?.

    Ratios are of medians. A row whose servers are missing (``--only``, a server that did not
    start) is left out.
    """
    s = run["servers"]
    ol = run.get("open_loop", {})
    rows: list[dict[str, Any]] = []

    def sat(key: str) -> dict[str, Any] | None:
        r = s.get(key)
        return r.get("wrk") if r and "error" not in r else None

    def add(measure: str, target: str, arbiter: str, peer: str, met: bool | None, **num: Any):
        rows.append(
            {"measure": measure, "target": target, "arbiter": arbiter, "peer": peer, "met": met}
            | num
        )

    b = sat("arbiter-ab")
    for peer_key, peer_name, limit in (
        ("bare", "bare app", 1.5),
        ("mlserver-batch", "MLServer, adaptive batching", 1.8),
        ("mlserver", "MLServer, no batching", None),
        ("mlflow", "`mlflow models serve`", None),
    ):
        p = sat(peer_key)
        if b is None or p is None:
            continue
        ratio = med(b, "rps") / med(p, "rps")  # type: ignore[operator]
        add(
            f"saturation req/s, A/B + logging, 1 worker, wrk -c16 vs {peer_name}",
            f"≥ {limit}× {peer_name}" if limit else "(reference)",
            span(b, "rps"),
            f"{span(p, 'rps')} → {ratio:.2f}×",
            None if limit is None else ratio >= limit,
            ratio=ratio,
        )
    half_a = ol.get("half_a")
    if half_a and half_a.get("bare") and half_a.get("arbiter-ab"):
        a_r, b_r = half_a["bare"]["summary"], half_a["arbiter-ab"]["summary"]
        for pct, slack in (("p50_ms", 0.5), ("p99_ms", 2.0)):
            delta = med(b_r, pct) - med(a_r, pct)  # type: ignore[operator]
            add(
                f"{pct[:3]} at {half_a['rate']:,.0f} req/s (half of the bare app's saturation), "
                "open loop",
                f"≤ bare + {slack:g} ms",
                span(b_r, pct, 2, " ms"),
                f"bare {span(a_r, pct, 2, ' ms')} → +{delta:.2f} ms",
                delta <= slack,
                delta_ms=delta,
            )
    half_b = ol.get("half_b")
    if half_b and half_b.get("arbiter-ab") and half_b.get("arbiter-shadow"):
        b_r, c_r = half_b["arbiter-ab"]["summary"], half_b["arbiter-shadow"]["summary"]
        ratio = med(c_r, "p99_ms") / med(b_r, "p99_ms")  # type: ignore[operator]
        add(
            f"champion p99 with a 10× slower shadow challenger, at {half_b['rate']:,.0f} req/s "
            "(half of arbiter's saturation)",
            "≤ 1.25× without shadow",
            span(c_r, "p99_ms", 2, " ms"),
            f"without shadow {span(b_r, 'p99_ms', 2, ' ms')} → {ratio:.2f}×",
            ratio <= 1.25,
            ratio=ratio,
        )
        done = [r["shadow_completed_pct"] for r in half_b["arbiter-shadow"]["rounds"]]
        lo, mid, hi = min(done), sorted(done)[len(done) // 2], max(done)
        add(
            "shadow requests completed at that rate",
            "≥ 90 %",
            f"{mid:.1f} %" + (f" ({lo:.1f}–{hi:.1f})" if len(done) > 1 else ""),
            "—",
            mid >= 90.0,
            pct=mid,
        )
    for one, many, who, limit in (
        ("arbiter-ab", "arbiter-ab-w2", "arbiter A/B", 1.7),
        ("mlserver-batch", "mlserver-w2", "MLServer batching", None),
    ):
        r1, rn = sat(one), sat(many)
        if r1 is None:
            continue
        if rn is None:
            err = s.get(many, {}).get("error")
            if err and limit is not None:
                add(f"--workers N vs 1, {who}", f"≥ {limit}×", f"did not start: {err}", "—", False)
            elif err:
                add(f"parallel workers vs 0, {who}", "(reference)", "—", f"did not start: {err}",
                    None)  # fmt: skip
            continue
        ratio = med(rn, "rps") / med(r1, "rps")  # type: ignore[operator]
        cell = f"{span(rn, 'rps')} vs {span(r1, 'rps')} → {ratio:.2f}×"
        if limit is not None:
            add(f"--workers {s[many].get('workers', 2)} on 2 cores vs 1 worker, {who}",
                f"≥ {limit}×", cell, "—", ratio >= limit, ratio=ratio)  # fmt: skip
        else:
            add(f"parallel_workers {s[many].get('workers', 2)} vs 0, {who}", "(reference)", "—",
                cell, None, ratio=ratio)  # fmt: skip
    return rows


def targets_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| measure | target | arbiter | peer | met? |", "|---|---|---:|---:|---|"]
    for r in rows:
        met = "—" if r["met"] is None else "met" if r["met"] else "**missed**"
        lines.append(f"| {r['measure']} | {r['target']} | {r['arbiter']} | {r['peer']} | {met} |")
    return "\n".join(lines)


def startup_rows(startup: dict[str, Any]) -> list[dict[str, Any]]:
    s = startup["ready_s"]
    rng = f" ({s['min']:.2f}–{s['max']:.2f})" if startup["runs"] > 1 else ""
    return [
        {
            "measure": "gateway start-up to first ready answer, two small models "
            f"({startup['models']})",
            "target": "≤ 3 s",
            "arbiter": f"{s['median']:.2f} s{rng}",
            "peer": "—",
            "met": s["median"] <= 3.0,
        }
    ]


def servers_markdown(run: dict[str, Any]) -> str:
    """Every server of one model: saturation (wrk, rounds) and open-loop latency."""
    s = run["servers"]
    ol = run.get("open_loop", {})
    lines = [
        "| server | saturation req/s | p50 ms | p99 ms | open loop at | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "bare": "(a) bare Starlette + predict",
        "arbiter-ab": "(b) arbiter A/B + logging",
        "arbiter-shadow": "(c) arbiter shadow, challenger 10× slower",
        "mlflow": "(d) mlflow models serve",
        "mlserver": "(e) MLServer, no batching",
        "mlserver-batch": "(f) MLServer, adaptive batching",
        "arbiter-ab-w2": "(b) arbiter A/B, N workers",
        "mlserver-w2": "(f) MLServer batching, N parallel workers",
    }
    for key, label in labels.items():
        r = s.get(key)
        if r is None:
            continue
        if "error" in r:
            lines.append(f"| {label} | did not start: {r['error']} | | | | | |")
            continue
        rates = [
            (name, ph[key]["summary"], ph[key].get("rate", ph.get("rate", 0.0)))
            for name, ph in ol.items()
            if isinstance(ph, dict) and key in ph and "summary" in ph[key]
        ]
        w = r.get("wrk")
        first = [span(w, "rps"), span(w, "p50_ms", 2), span(w, "p99_ms", 2)] if w else ["—"] * 3
        if not rates:
            lines.append(f"| {label} | " + " | ".join(first) + " | — | — | — |")
        for i, (_name, summ, rate) in enumerate(rates):
            over = ""
            if med(summ, "achieved_rps") is not None and med(summ, "achieved_rps") < 0.95 * rate:
                over = " (over capacity)"
            cells = first if i == 0 else ["", "", ""]
            cells = [*cells, f"{rate:,.0f} req/s{over}", span(summ, "p50_ms", 2),
                     span(summ, "p99_ms", 2)]  # fmt: skip
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
