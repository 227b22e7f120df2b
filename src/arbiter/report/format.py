"""How numbers and decisions look, for every renderer (terminal, HTML, Markdown).

One number formatter and one decision-colour map: a p-value reads the same in the terminal,
the HTML report and the Markdown file, and ``promote`` is green everywhere.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
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

    Integers get thousands separators, floats ``digits`` significant digits, infinities a
    sign and ``∞``, None and NaN ``missing``; booleans read ``yes``/``no``, strings pass
    through, and a list or tuple is formatted item by item, comma-separated.

    Parameters
    ----------
    value : Any
        The value to show.
    digits : int, default 4
        Significant digits (``general``) or decimals (``fixed``, ``percent``).
    style : {"general", "fixed", "percent"}, default "general"
        ``general``: ``f"{v:.{digits}g}"``. ``fixed``: ``digits`` decimals below 10 and two,
        with separators, above (latencies in ms, rates), for Markdown tables that line up.
        ``percent``: the fraction as a percentage with ``digits`` decimals.
    missing : str, default "—"
        Shown for None and NaN (``"n/a"`` where a dash would read as a minus).

    Returns
    -------
    str

    Examples
    --------
    >>> format_number(0.012345), format_number(12345), format_number(None)
    ('0.01235', '12,345', '—')
    >>> format_number(1234.5, style="fixed"), format_number(0.25, style="percent", digits=1)
    ('1,234.50', '25.0%')
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
            return f"{v:.{digits}f}" if abs(v) < 10 else f"{v:,.2f}"
        return f"{v:.{digits}g}"
    if isinstance(value, Sequence):
        return ", ".join(
            format_number(v, digits=digits, style=style, missing=missing) for v in value
        )
    return str(value)


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
    "DecisionColour",
    "Style",
    "decision_colour",
    "format_number",
    "generic_view",
    "interleaving_methods",
    "is_number",
    "metric_rows",
    "reason_text",
]
