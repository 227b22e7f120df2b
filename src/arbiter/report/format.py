"""How numbers and decisions look, for every renderer (terminal, HTML, Markdown).

One number formatter and one decision-colour map: a p-value reads the same in the terminal,
the HTML report and the Markdown file, and ``promote`` is green everywhere.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

MISSING = "—"
"""What a missing or undefined (None, NaN) number prints as."""

Style = Literal["general", "fixed", "percent"]


def format_number(
    value: Any,
    *,
    digits: int = 4,
    style: Style = "general",
    missing: str = MISSING,
) -> str:
    """A value as people read it in a table cell or a sentence.

    Integers get thousands separators, floats ``digits`` significant digits written out
    (``0.0061``, ``12,346``, never ``1.235e+04``), infinities a sign and ``∞``, None and NaN
    ``missing``; booleans read ``yes``/``no``, strings pass through, and a list or tuple is
    formatted item by item, comma-separated. Only magnitudes below 10⁻⁶ or from 10¹⁵ up use
    scientific notation (a row of zeros would hide them).

    Parameters
    ----------
    value : Any
        The value to show.
    digits : int, default 4
        Significant digits (``general``) or decimals (``fixed``, ``percent``).
    style : {"general", "fixed", "percent"}, default "general"
        ``general``: ``digits`` significant digits. ``fixed``: exactly ``digits`` decimals
        with separators, so that the cells of one column line up (tables choose the
        decimals of a column with :func:`column_decimals`). ``percent``: the fraction as a
        percentage with ``digits`` decimals.
    missing : str, default "—"
        Shown for None and NaN (``"n/a"`` where a dash would read as a minus).

    Returns
    -------
    str

    Examples
    --------
    >>> format_number(0.012345), format_number(12345), format_number(None)
    ('0.01235', '12,345', '—')
    >>> format_number(1234.5, style="fixed", digits=2)
    '1,234.50'
    >>> format_number(0.25, style="percent", digits=1)
    '25.0%'
    >>> format_number(12345.678), format_number(7.28e-06, digits=3)
    ('12,346', '0.00000728')
    """
    if value is None:
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isnan(v):
            return missing
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if style == "percent":
            return f"{v:.{digits}%}"
        if style == "fixed":
            return f"{v:,.{digits}f}"
        return _significant(v, digits)
    if isinstance(value, Sequence):
        return ", ".join(
            format_number(v, digits=digits, style=style, missing=missing) for v in value
        )
    return str(value)


def _significant(v: float, digits: int) -> str:
    """``v`` with ``digits`` significant digits in positional notation, separators, and no
    trailing zeros (``0.5``, not ``0.5000``)."""
    if v == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(v)))
    if magnitude < -6 or magnitude >= 15:
        return f"{v:.{max(digits - 1, 0)}e}"
    decimals = max(digits - 1 - magnitude, 0)
    text = f"{round(v, decimals):,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_p_value(value: Any, *, missing: str = MISSING) -> str:
    """A p-value: three significant digits written out, and ``< 0.0001`` below that.

    Every p-value of every renderer goes through here, so that ``7.28e-06`` never stands
    next to ``0.006099`` (and ``1.2e-12`` never reads as larger than ``4.1e-16``): below
    10⁻⁴ the exact value decides nothing (every alpha anyone uses is larger). Three digits,
    not two, so that 0.0496 does not print as 0.05 beside an alpha of 0.05.

    Examples
    --------
    >>> format_p_value(7.28e-06), format_p_value(0.006099), format_p_value(0.0496404)
    ('< 0.0001', '0.0061', '0.0496')
    """
    if not is_number(value) or math.isnan(float(value)):
        return missing
    v = float(value)
    if v < 1e-4:
        return "< 0.0001"
    return _significant(min(v, 1.0), 3)


def column_decimals(values: Iterable[Any], *, digits: int = 4, cap: int = 6) -> int:
    """The decimals one column of floats is printed with, the same for every cell.

    Enough for the largest magnitude to keep ``digits`` significant digits and the smallest
    non-zero one two, at most ``cap``: latencies of 0.53, 7.99 and 75.79 ms all print with
    2 decimals (p50 and p95 read alike), accuracies of 0.8698 and 0.8916 with 4, and
    7.28e-06 next to 0.006099 as 0.000007 and 0.006099 rather than in two notations.

    Examples
    --------
    >>> column_decimals([0.5301, 7.9925, 75.79]), column_decimals([1052.0, 2000.5])
    (2, 0)
    >>> column_decimals([0.8698, 0.8916]), column_decimals([7.28e-06, 0.006099])
    (4, 6)
    """
    finite = [abs(float(v)) for v in values if is_number(v) and math.isfinite(v) and v != 0]
    if not finite:
        return 0

    def need(v: float, significant: int) -> int:
        return significant - 1 - math.floor(math.log10(v))

    return min(max(need(max(finite), digits), need(min(finite), 2), 0), cap)


#: Columns whose numbers are p-values: two significant digits, ``< 0.0001`` below.
P_VALUE_COLUMNS = frozenset({"p_value", "adjusted_p_value", "adjusted_p", "p", "sign_test_p_value"})
#: Columns that share their decimals (one unit, read side by side).
SHARED_DECIMALS = (("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"),)


def format_cells(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], by_row: Sequence[str] = ()
) -> dict[str, list[str]]:
    """Every column's cells as text: one number format per column (shared decimals,
    thousands separators, p-values as :func:`~arbiter.report.format.format_p_value`).

    The ``by_row`` columns share their decimals within a row instead (a row per metric:
    a conversion rate and a revenue do not share a scale, its champion and challenger do).
    """
    out: dict[str, list[str]] = {}
    row_decimals = [
        column_decimals([v for c in by_row if is_number(v := row.get(c))]) for row in rows
    ]
    groups = {c: g for g in SHARED_DECIMALS for c in g}
    for column in columns:
        values = [row.get(column) for row in rows]
        if column in P_VALUE_COLUMNS:
            out[column] = [format_p_value(v) for v in values]
            continue
        if column in by_row:
            out[column] = [
                format_number(v, style="fixed", digits=row_decimals[i])
                if is_number(v) and not isinstance(v, numbers.Integral)
                else format_number(v)
                for i, v in enumerate(values)
            ]
            continue
        group = groups.get(column, (column,))
        shared = [row.get(c) for row in rows for c in group if c in columns]
        decimals = column_decimals(
            [v for v in shared if is_number(v) and not isinstance(v, numbers.Integral)]
        )
        out[column] = [
            format_number(v, style="fixed", digits=decimals)
            if is_number(v) and not isinstance(v, numbers.Integral)
            else format_number(v)
            for v in values
        ]
    return out


def format_timestamp(value: Any, *, missing: str = MISSING) -> str:
    """A point in time as people read it: ``2026-12-03 16:35:32 UTC``, to the second.

    Accepts a :class:`datetime.datetime` (naive ones are UTC, as the event log stores
    them), an ISO 8601 string, or microseconds since the epoch (the event log's ``ts_us``).
    """
    from datetime import UTC, datetime

    if value is None:
        return missing
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = datetime.fromtimestamp(float(value) / 1e6, tz=UTC)
    if not isinstance(value, datetime):
        return str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def is_number(value: Any) -> bool:
    """Whether a table cell holds a number (right-aligned) rather than text or a flag."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class DecisionColour:
    """A decision's colour: a Rich colour name for the terminal, a hex value for HTML."""

    terminal: str
    html: str


DECISION_COLOURS: dict[str, DecisionColour] = {
    "promote": DecisionColour("green", "#1a7f37"),
    "keep_champion": DecisionColour("blue", "#57606a"),
    "continue": DecisionColour("yellow", "#9a6700"),
    "rollback": DecisionColour("red", "#cf222e"),
    "confirm_with_ab": DecisionColour("cyan", "#0969da"),
}
"""Decision -> colour, shared by the terminal and the HTML report (its CSS classes)."""


def reason_text(reason: Any) -> str:
    """A reason as a sentence: a criterion's ``detail``, or the text itself.

    The bandit lists its reasons as sentences, the other analyses as criteria; a renderer
    shows either the same way.
    """
    detail = getattr(reason, "detail", None)
    return str(reason if detail is None else detail)


def detail_text(detail: Any) -> str:
    """A criterion's sentence as printed: ``p = < 0.0001`` reads ``p < 0.0001``.

    The core writes ``p = {number}``; a number below 10⁻⁴ is the bound ``< 0.0001``
    (:func:`arbiter.stats.verdict.types.reason_number`), which reads better without the ``=``.
    """
    return re.sub(r"\s?=\s?([<>] )", r" \1", str(detail))


def interleaving_methods(methods: dict[str, int]) -> str:
    """The interleaving methods of an experiment as a reader names them (``team-draft``)."""
    return ", ".join(m.replace("_", "-") for m in methods) or "no impressions"


def decision_colour(decision: str) -> DecisionColour:
    """The colour of a decision; an unknown one is the terminal default and grey."""
    return DECISION_COLOURS.get(decision, DecisionColour("default", "#57606a"))


def generic_view(result: Any) -> dict[str, Any]:
    """The view model of any result of the Analysis protocol (``arbiter.analysis.kinds``).

    The renderers fall back to it for a result type that has no layout of its own, such as a
    strategy added without a renderer: its decision, the criteria of its ``verdict`` (or its
    ``criteria``) and the scalar values of its ``to_dict()`` as name/value rows.
    """
    needed = ("model", "experiment", "strategy", "decision", "to_dict")
    if not all(hasattr(result, name) for name in needed):
        raise TypeError(
            f"cannot render a {type(result).__name__}: not an analysis result "
            f"(it needs {', '.join(needed)})"
        )
    verdict = getattr(result, "verdict", None)
    criteria = tuple(getattr(verdict, "reasons", None) or getattr(result, "criteria", ()) or ())
    scalar = (str, int, float, bool)
    values = [
        {"name": name, "value": value}
        for name, value in result.to_dict().items()
        if name not in ("model", "experiment", "strategy", "decision")
        and (value is None or isinstance(value, scalar))
    ]
    return {
        "model": result.model,
        "experiment": result.experiment,
        "strategy": result.strategy,
        "decision": result.decision,
        "criteria": criteria,
        "values": values,
    }


#: Columns of the metrics table (terminal, HTML, Markdown), in order.
METRIC_COLUMNS: tuple[str, ...] = (
    "metric",
    "arm",
    "role",
    "units",
    "champion",
    "challenger",
    "estimate",
    "ci_low",
    "ci_high",
    "lift",
    "p_value",
    "adjusted_p",
    "cuped",
    "status",
)


def metric_rows(metrics: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Display rows of the ``metrics`` list of an analysis (``MetricResult.to_dict()`` s).

    ``champion``/``challenger`` are the per-unit means (or ratios), CUPED-adjusted when on;
    ``units`` both arms' units; ``lift`` the relative lift with its interval, in percent;
    ``cuped`` the variance reduction CUPED achieved; a guardrail's status joins ``status``.
    ``ci`` and ``lift_pct`` are the short forms the terminal shows.
    """
    rows = []
    for m in metrics:
        champ = m["arms"].get(m["champion"], {})
        chall = m["arms"].get(m["arm"], {})
        lift = m.get("relative_lift")
        lift_short = (
            f"{format_number(100 * lift, digits=3)} %"
            if is_number(lift) and math.isfinite(lift)
            else MISSING
        )
        lift_text = lift_short
        lift_ci = (m.get("relative_ci_low"), m.get("relative_ci_high"))
        # Paired (shadow) results have a lift without an interval.
        if lift_short != MISSING and all(is_number(v) and math.isfinite(v) for v in lift_ci):
            lift_text = (
                f"{lift_short} [{format_number(100 * lift_ci[0], digits=3)}, "
                f"{format_number(100 * lift_ci[1], digits=3)}]"
            )
        cuped = m.get("cuped")
        status = m["status"]
        if m.get("guardrail"):
            status = f"guardrail {m['guardrail']['status']}"
        rows.append(
            {
                "metric": m["name"],
                "arm": m["arm"],
                "role": m["role"],
                "units": f"{format_number(champ.get('units'))} / "
                f"{format_number(chall.get('units'))}",
                "champion": champ.get("adjusted_mean", champ.get("mean")),
                "challenger": chall.get("adjusted_mean", chall.get("mean")),
                "estimate": m["estimate"],
                "ci_low": m["ci_low"],
                "ci_high": m["ci_high"],
                "lift": lift_text,
                "lift_pct": lift_short,
                "ci": f"[{format_number(m['ci_low'])}, {format_number(m['ci_high'])}]",
                "p_value": m["p_value"],
                "adjusted_p": m.get("adjusted_p_value"),
                "cuped": None
                if not cuped
                else format_number(100 * cuped["variance_reduction"], digits=3) + " %",
                "status": status,
            }
        )
    return rows


__all__ = [
    "DECISION_COLOURS",
    "METRIC_COLUMNS",
    "MISSING",
    "P_VALUE_COLUMNS",
    "SHARED_DECIMALS",
    "DecisionColour",
    "Style",
    "column_decimals",
    "decision_colour",
    "detail_text",
    "format_cells",
    "format_number",
    "format_p_value",
    "format_timestamp",
    "generic_view",
    "interleaving_methods",
    "is_number",
    "metric_rows",
    "reason_text",
]
