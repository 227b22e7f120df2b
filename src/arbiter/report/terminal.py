"""Rich rendering for people at a terminal (``--json`` skips this).

:func:`print_analysis` dispatches on the analysis type; :func:`print_summary` prints what
``arbiter report`` found; :func:`rich_table` is the one table every command uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from functools import singledispatch
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.table import Table
from rich.text import Text as RichText

from arbiter.analysis.analyze import ExperimentAnalysis
from arbiter.analysis.bandit import ADJUSTED_INFERENCE_WARNING, BanditAnalysis
from arbiter.analysis.interleave import InterleaveAnalysis
from arbiter.analysis.multiarm import MultiArmAnalysis
from arbiter.report.format import (
    decision_colour,
    detail_text,
    format_cells,
    format_number,
    format_p_value,
    format_timestamp,
    generic_view,
    interleaving_methods,
    is_number,
    metric_rows,
    reason_text,
)
from arbiter.report.shadow import (
    analysis_recommendation,
    analysis_shadow_view,
    summary_shadow_view,
)

HEADERS = {
    "latency_mean_ms": "mean ms",
    "latency_p50_ms": "p50 ms",
    "latency_p95_ms": "p95 ms",
    "latency_p99_ms": "p99 ms",
    "error_rate": "err rate",
    "version": "v",
    "labeled_rows": "labelled",
    "p_value": "p",
    "adjusted_p_value": "adj. p",
    "estimate": "diff",
    "ci_low": "ci low",
    "ci_high": "ci high",
}
# The terminal table leaves out what the Markdown file has room for (alias, rows, rate).
ARM_TABLE = (
    "role",
    "model",
    "version",
    "requests",
    "errors",
    "latency_mean_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
)
LEFT = frozenset(
    {"role", "arm", "alias", "model", "name", "metric", "threshold", "detail", "ci", "side",
     "when", "experiment", "action", "actor", "reason", "status"}
)  # fmt: skip
#: Low-value columns, dropped first (in this order) when a table does not fit the terminal.
DROP_FIRST = ("errors", "units", "labelled_units", "ci_low", "ci_high", "latency_p95_ms",
              "latency_p50_ms", "status", "adjusted_p")  # fmt: skip
# The terminal's metrics table: the HTML report also has units, lift interval and CUPED.
METRIC_TABLE = ("metric", "champion", "challenger", "estimate", "ci", "lift_pct", "p_value",
                "adjusted_p")  # fmt: skip
_METRIC_HEADERS = {
    "champion": "champ.",
    "challenger": "chall.",
    "estimate": "diff",
    "ci": "interval",
    "lift_pct": "lift",
    "p_value": "p",
    "adjusted_p": "adj. p",
}
CRITERIA_COLUMNS = ("name", "met", "observed", "threshold", "detail")

#: Text cells up to this many characters are never wrapped (``-4.05 %`` stays one piece).
SHORT_CELL = 12

#: ``--wide``: print every column of every table, however wide (the terminal wraps lines).
WIDE: ContextVar[bool] = ContextVar("arbiter_wide_tables", default=False)

#: What the role and arm columns mean, printed under a table that has them.
ROLE_LEGEND = (
    "role: served = answered the caller; shadow = ran on a copy of the request, its answer "
    "only logged. model: the alias that made the predictions (a shadow's requests were "
    "routed to the champion's arm)."
)


class FittedTable:
    """A table that fits the terminal: it leaves out low-value columns rather than truncate.

    Rich shortens a cell that does not fit with an ellipsis (``challen…``, ``0.84…``), which
    turns numbers into wrong numbers. At render time, when the table's narrowest layout is
    wider than the console, this drops the ``optional`` columns one by one (in order) and
    says which it left out; text columns wrap at spaces, numbers never wrap or shorten.
    ``--wide`` (:data:`WIDE`) keeps every column.
    """

    def __init__(
        self,
        title: str,
        rows: Sequence[dict[str, Any]],
        columns: Sequence[str],
        *,
        optional: Sequence[str] = DROP_FIRST,
        headers: dict[str, str] | None = None,
        caption: str | None = None,
        by_row: Sequence[str] = (),
    ) -> None:
        self.title = title
        self.rows = list(rows)
        self.columns = list(columns)
        self.optional = [c for c in optional if c in self.columns]
        self.headers = {**HEADERS, **(headers or {})}
        self.caption = caption
        self.texts = format_cells(self.rows, self.columns, by_row)

    def is_text(self, column: str) -> bool:
        """Whether ``column`` holds text (left-aligned, may wrap) rather than numbers
        (a threshold column of numbers is numbers; one of ``< 0.3`` is text)."""
        values = [r.get(column) for r in self.rows]
        return any(isinstance(v, str) for v in values) or not any(map(is_number, values))

    def header(self, column: str) -> str:
        return self.headers.get(column, column.replace("_", " "))

    def extent(self, column: str) -> tuple[int, int]:
        """The narrowest and the widest ``column`` can be: a text column wraps at spaces
        (its longest word), a number never shortens (its longest cell)."""
        header = self.header(column)
        widest = max(cell_len(c) for c in [*self.texts[column], header])
        header_word = max((cell_len(w) for w in header.split()), default=0)
        if not self.is_text(column):
            numbers_width = max((cell_len(c) for c in self.texts[column]), default=0)
            return max(numbers_width, header_word), widest
        # A short cell ("-4.05 %", "guardrail met") stays on one line; a long one wraps.
        units = [
            piece
            for c in self.texts[column]
            for piece in (c.split() if cell_len(c) > SHORT_CELL else [c])
        ]
        return max([header_word, *(cell_len(u) for u in units)]), widest

    def layout(self, columns: Sequence[str], width: int) -> list[int] | None:
        """Column widths that fit ``width`` without shortening a word or a number, None when
        the narrowest layout is still too wide. Text columns share the room left, the one
        that needs least first (Rich's own layout would squeeze a column to nothing)."""
        available = width - (3 * len(columns) + 1)  # borders and one space of padding a side
        extents = [self.extent(c) for c in columns]
        if sum(hi for _, hi in extents) <= available:
            return [hi for _, hi in extents]
        if sum(lo for lo, _ in extents) > available:
            return None
        widths = [lo for lo, _ in extents]
        spare = available - sum(widths)
        order = sorted(range(len(columns)), key=lambda i: extents[i][1] - extents[i][0])
        for rank, i in enumerate(order):
            share = spare // (len(order) - rank)
            grow = min(extents[i][1] - widths[i], share)
            widths[i] += grow
            spare -= grow
        return widths

    def build(
        self,
        columns: Sequence[str],
        dropped: Sequence[str] = (),
        widths: Sequence[int] | None = None,
    ) -> Table:
        """The Rich table with ``columns`` (of ``widths``), naming the ``dropped`` ones in
        its caption."""
        notes = [self.caption] if self.caption else []
        if dropped:
            names = ", ".join(self.header(c) for c in dropped)
            notes.append(f"left out at this width: {names} (--wide shows them)")
        table = Table(
            title=self.title,
            title_justify="left",
            caption="\n".join(notes) or None,
            caption_justify="left",
        )
        for i, column in enumerate(columns):
            text = self.is_text(column)
            table.add_column(
                # A header may wrap even above numbers that may not ("labelled / units").
                RichText(self.header(column), no_wrap=False, overflow="fold"),
                justify="left" if text else "right",
                no_wrap=not text,
                overflow="fold",
                width=None if widths is None else widths[i],
            )
        for i in range(len(self.rows)):
            table.add_row(*(escape(self.texts[c][i]) for c in columns))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        columns = list(self.columns)
        if WIDE.get():
            yield self.build(columns)
            return
        dropped: list[str] = []
        widths = self.layout(columns, options.max_width)
        for candidate in self.optional:
            if widths is not None:
                break
            columns.remove(candidate)
            dropped.append(candidate)
            widths = self.layout(columns, options.max_width)
        yield self.build(columns, dropped, widths)


def rich_table(
    title: str,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    optional: Sequence[str] = DROP_FIRST,
    caption: str | None = None,
    headers: dict[str, str] | None = None,
) -> FittedTable:
    """A table of ``rows`` (dicts) with the named columns, numbers right-aligned, that fits
    the terminal (:class:`FittedTable`)."""
    return FittedTable(title, rows, columns, optional=optional, caption=caption, headers=headers)


def print_path(console: Console, label: str, path: Any) -> None:
    """``label: path`` on one line, never wrapped: a path broken across lines cannot be
    copied and pasted."""
    console.print(f"{label}: {path}", soft_wrap=True, highlight=False, markup=False)


def decision_markup(decision: str) -> str:
    """The decision in bold, in its colour (Rich markup)."""
    colour = decision_colour(decision).terminal
    return f"[bold {colour}]{decision}[/bold {colour}]"


def criteria_table(criteria: Sequence[Any]) -> Table:
    """Every criterion of a verdict: met in green, unmet in red, with its detail."""
    table = Table(title="criteria", title_justify="left")
    table.add_column("criterion", no_wrap=True)
    table.add_column("met", justify="center")
    table.add_column("detail", overflow="fold")
    for c in criteria:
        met = "[green]yes[/green]" if c.met else "[red]no[/red]"
        table.add_row(escape(c.name), met, escape(detail_text(c.detail)))
    return table


def print_metrics(console: Console, metrics: Sequence[dict[str, Any]]) -> None:
    """The business and label metrics of an analysis, one row per metric and challenger."""
    if metrics:
        rows = metric_rows(metrics)
        if len({r["arm"] for r in rows}) > 1:  # A/B/n: name the challenger
            rows = [{**r, "metric": f"{r['metric']} ({r['arm']})"} for r in rows]
        shown = []
        for r in rows:
            label = r["metric"] if r["role"] == "secondary" else f"{r['metric']} [{r['role']}]"
            if r["status"] != "ok":
                label += f" ({r['status']})"
            shown.append({**r, "metric": label})
        console.print(
            FittedTable(
                "metrics per unit (challenger − champion)",
                shown,
                METRIC_TABLE,
                optional=("adjusted_p", "lift_pct", "ci"),
                headers=_METRIC_HEADERS,
                by_row=("champion", "challenger", "estimate"),
            )
        )


def print_notes(console: Console, notes: Sequence[str]) -> None:
    for note in notes:
        console.print(f"[dim]note: {escape(note)}[/dim]")


def _with_model(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with a ``model`` column: the alias of the model that made the predictions.

    A shadow row's ``arm`` is the arm its requests were routed to (the champion's), which
    reads as if the champion made them; the alias names the challenger that did.
    """
    return [{**r, "model": r.get("alias") or r.get("arm")} for r in rows]


_SHADOW_HEADERS = {
    "champion_right": "champ. right",
    "challenger_right": "chall. right",
    "neither_right": "neither right",
    "kind": "flavor · class",
    "direction": "champion → challenger",
}


def print_shadow_view(console: Console, view: dict[str, Any], *, latency: bool = True) -> None:
    """The shadow view model (:func:`arbiter.report.shadow.shadow_view`): the models
    compared, each one's prediction distribution, the directions of disagreement and, with
    ``latency``, mean and percentile latency per model."""
    console.print(
        rich_table("models compared", view["models"], ["model", "version", "kind"],
                   headers=_SHADOW_HEADERS)
    )  # fmt: skip
    if latency:
        cols = ["model", "mean", "p50", "p95", "p99"]
        console.print(rich_table("latency per model (ms)", view["latency_rows"], cols))
    if view["distribution_rows"]:
        console.print(
            rich_table(
                "predictions per model",
                view["distribution_rows"],
                ["model", "prediction", "count", "share"],
            )
        )
    if view["value_rows"]:
        cols = ["model", "rows", "mean", "p05", "p25", "p50", "p75", "p95"]
        console.print(rich_table(f"{view['values']} per model", view["value_rows"], cols))
    if view["paired_rows"]:
        caption = (
            f"{format_number(view['disagreeing_rows'])} of {format_number(view['paired_rows'])} "
            "paired rows disagree; rate = share of paired rows; right = matched the label. "
            f"{view['direction_note']}"
        )
        console.print(
            FittedTable(
                "disagreements by direction",
                view["direction_rows"],
                ["direction", "count", "rate", "labelled", "champion_right",
                 "challenger_right", "neither_right"],
                optional=("neither_right", "labelled"),
                headers=_SHADOW_HEADERS,
                caption=caption,
            )
        )  # fmt: skip


def print_recommendation(console: Console, recommendation: dict[str, Any]) -> None:
    """The recommendation line, its action in the decision's colour."""
    colour = decision_colour(recommendation["decision"]).terminal
    console.print(
        f"[bold]Recommendation:[/bold] [{colour}]{escape(recommendation['action'])}[/{colour}]: "
        f"{escape(recommendation['reason'])}."
    )


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    """What ``arbiter report`` found: traffic, quality, shadow comparison and verdict."""
    console.rule(f"model [bold]{summary['model']}[/bold]")
    for section in summary["experiments"]:
        span = ""
        if section.get("first_event"):
            span = (
                f", {format_timestamp(section['first_event'])} to "
                f"{format_timestamp(section['last_event'])}"
            )
        console.print(
            f"\n[bold]{section['experiment']}[/bold] ({section['strategy']}, {section['task']}): "
            f"{format_number(section['requests'])} requests{span}"
        )
        arms = _with_model(section["arms"])
        roles = {r.get("role") for r in arms}
        legend = ROLE_LEGEND if "shadow" in roles else None
        console.print(rich_table("traffic, errors, latency", arms, ARM_TABLE, caption=legend))
        if section["quality"]:
            cols = ["role", "model", "version", "labeled_rows"]
            cols += ["accuracy"] if section["task"] == "classification" else ["mae", "rmse"]
            console.print(
                rich_table("quality on labelled rows", _with_model(section["quality"]), cols)
            )
        if "shadow" in section:
            shadow = [
                {"metric": k.replace("_", " ").replace("labeled", "labelled"), "value": v}
                for k, v in section["shadow"].items()
            ]
            console.print(rich_table("shadow comparison", shadow, ["metric", "value"]))
            console.print(
                rich_table(
                    "classic shadow criteria",
                    section["shadow_criteria"],
                    ["name", "observed", "threshold", "met"],
                )
            )
            # The traffic table above has every latency column already.
            print_shadow_view(console, summary_shadow_view(section), latency=False)
        if "verdict" in section:
            verdict = section["verdict"]
            console.print(f"verdict: {decision_markup(verdict['decision'])}")
            # A shadow verdict's criteria are the classic criteria printed just above.
            if verdict["criteria"] is not section.get("shadow_criteria") and verdict[
                "criteria"
            ] != section.get("shadow_criteria"):
                console.print(rich_table("criteria", verdict["criteria"], CRITERIA_COLUMNS))
        if "recommendation" in section:
            print_recommendation(console, section["recommendation"])


def print_analysis(console: Console, analysis: Any) -> None:
    """Print one experiment's analysis (arms, tests, criteria, verdict) to a Rich console.

    Dispatches on the analysis type (:func:`functools.singledispatch`): every result type
    registers its own layout below.
    """
    _print(analysis, console)


@singledispatch
def _print(analysis: Any, console: Console) -> None:
    # Any other result of the Analysis protocol (a strategy added without a renderer of its
    # own): its decision, its criteria and the scalar values of its to_dict().
    d = generic_view(analysis)
    console.rule(f"[bold]{d['experiment']}[/bold] ({d['strategy']})")
    console.print(f"decision: {decision_markup(d['decision'])}")
    if d["criteria"]:
        console.print(criteria_table(d["criteria"]))
    console.print(rich_table("values", d["values"], ["name", "value"]))


@_print.register(ExperimentAnalysis)
def _(a: ExperimentAnalysis, console: Console) -> None:
    d = a.to_dict()
    decided = "" if d["decided_on"] == d["metric"] else f", decided on {escape(d['decided_on'])}"
    console.rule(
        f"[bold]{d['experiment']}[/bold] ({d['strategy']}, {d['task']}, {d['metric']}{decided})"
    )
    arms = [{"side": side, **values} for side, values in d["arms"].items()]
    cols = ["side", "requests", "units", "errors", "latency_p99_ms", "labelled", d["metric"]]
    if d.get("sample_unit") == "units":  # tests count labelled units: show them
        cols.insert(6, "labelled_units")
    console.print(rich_table("arms", arms, cols))
    tests = [{**d["primary"], "name": f"primary: {d['primary']['name']}"}]
    tests += [{**t, "name": f"secondary: {t['name']}"} for t in d["secondary"].values()]
    cols = ["name", "estimate", "ci_low", "ci_high", "p_value"]
    caption = None
    # "ok" only says the test could run; show the column when one could not, and say so.
    if any(t.get("status") not in (None, "ok") for t in tests):
        cols.append("status")
        caption = "status: ok = the test ran; anything else says why it could not"
    console.print(rich_table("tests (challenger − champion)", tests, cols, caption=caption))
    print_metrics(console, d["metrics"])
    if d["bayesian"]:
        b = d["bayesian"]
        chance = format_number(b["chance_to_beat_control"], style="percent", digits=1)
        console.print(
            f"Bayesian: P(challenger better) = {chance}, "
            f"expected loss if promoted {format_number(b['expected_loss_treatment'])}"
        )
    if a.shadow is not None:
        print_shadow_view(console, analysis_shadow_view(a))
    console.print(criteria_table(a.criteria))
    line = f"verdict: {decision_markup(d['decision'])}"
    if d["estimated_remaining_sample"]:
        line += (
            f" (about {format_number(d['estimated_remaining_sample'])} more labelled "
            f"{d.get('sample_unit', 'rows')} per arm)"
        )
    console.print(line)
    if a.shadow is not None:
        print_recommendation(console, analysis_recommendation(a))
    print_notes(console, d["notes"])


@_print.register(MultiArmAnalysis)
def _(a: MultiArmAnalysis, console: Console) -> None:
    d = a.to_dict()
    console.rule(f"[bold]{a.experiment}[/bold] (A/B/n, {len(a.arms)} arms, {a.task}, {a.metric})")
    arms = [{"arm": arm, "alias": a.aliases.get(arm), **a.arm_rows[arm]} for arm in a.arms]
    cols = ["arm", "alias", "requests", "units", "errors", "latency_p99_ms", "labelled"]
    console.print(rich_table("arms", arms, [*cols, a.metric]))
    if a.srm is not None:
        shares = ", ".join(f"{arm} {format_number(a.weights[arm], digits=3)}" for arm in a.arms)
        console.print(
            f"SRM ({a.srm_basis}): "
            + detail_text(f"chi-square p = {format_p_value(a.srm.p_value)}")
            + " "
            f"({'MISMATCH' if a.srm.mismatch else 'ok'}) for expected shares {shares}"
        )
    om = a.omnibus
    console.print(
        f"omnibus: {om['method']}: statistic = {format_number(om['statistic'])}, "
        + detail_text(f"p = {format_p_value(om['p_value'])}")
    )
    rows = [
        {**r, "name": f"{r['b']} − {r['a']}", "marascuilo": r.get("marascuilo_significant")}
        for r in d["pairwise"]
    ]
    cols = ["name", "estimate", "ci_low", "ci_high", "p_value", "adjusted_p_value"]
    cols += ["significant"] + (["marascuilo"] if a.task == "classification" else [])
    console.print(rich_table(f"pairwise ({a.multiplicity})", rows, cols))
    rails = [{"arm": arm, **g} for arm, rs in d["guardrails"].items() for g in rs]
    console.print(rich_table("guardrails", rails, ["arm", "name", "challenger", "limit", "status"]))
    print_metrics(console, d["metrics"])
    console.print(criteria_table(a.criteria))
    line = f"verdict: {decision_markup(a.decision)}"
    if a.winner:
        line += f" arm [bold]{a.winner}[/bold]"
    if a.rollback_arms:
        line += f" arm(s) [bold]{', '.join(a.rollback_arms)}[/bold]"
    if a.remaining_per_arm:
        more = ", ".join(f"{arm} {format_number(n)}" for arm, n in a.remaining_per_arm.items())
        line += f" (more labelled rows per arm: {more})"
    console.print(line)
    print_notes(console, a.notes)


@_print.register(InterleaveAnalysis)
def _(a: InterleaveAnalysis, console: Console) -> None:
    console.rule(f"[bold]{a.experiment}[/bold] (interleaving: {interleaving_methods(a.methods)})")
    c = {k: format_number(v) for k, v in a.counts.items()}
    console.print(
        f"{c['impressions']} interleaved impressions from {c['users']} users; "
        f"{c['with_clicks']} with clicks ({c['clicks']} clicks); "
        f"{c['fallbacks']} answered by the champion alone"
    )
    wins = Table(title="impressions won", title_justify="left")
    for col in ("champion", "challenger", "ties"):
        wins.add_column(col, justify="right")
    wins.add_row(*(format_number(a.wins[k]) for k in ("champion", "challenger", "ties")))
    console.print(wins)
    p = {k: format_number(v) for k, v in a.preference.items()}
    level = format_number(1 - a.policy.alpha, style="percent", digits=0)
    console.print(
        f"preference for the challenger Δ = {p['delta']} [{p['ci_low']}, {p['ci_high']}] "
        f"({level} CI, clustered by user); "
        + detail_text(
            f"p = {format_p_value(a.preference.get('p_value'))}, per-user sign test "
            f"p = {format_p_value(a.preference.get('sign_test_p_value'))}"
        )
    )
    if a.sequential is not None:
        s = {k: format_number(v) for k, v in a.sequential.items()}
        console.print(
            f"always-valid {level} confidence sequence [{s['ci_low']}, {s['ci_high']}], "
            + detail_text(f"p = {format_p_value(a.sequential.get('p_value'))}")
            + " (the decision uses it: it "
            "stays valid however often you look, so its interval is wider and its p never "
            "below the fixed-horizon p)"
        )
    console.print(criteria_table(a.criteria))
    line = f"verdict: {decision_markup(a.decision)}"
    if a.winner:
        line += f" (users prefer the [bold]{a.winner}[/bold])"
    console.print(line)
    print_notes(console, a.notes)


@_print.register(BanditAnalysis)
def _(a: BanditAnalysis, console: Console) -> None:
    console.rule(f"[bold]{a.experiment}[/bold] (bandit, {a.reward} reward)")
    table = Table(title="arms", title_justify="left")
    cols = ("arm", "served", "rewarded", "invalid", "mean (naive)", "posterior mean", "P(best)",
            "allocation now")  # fmt: skip
    for col in cols:
        table.add_column(col, justify="left" if col == "arm" else "right")
    for row in a.arm_rows():
        table.add_row(
            row["arm"],
            format_number(row["served"]),
            format_number(row["rewarded"]),
            format_number(row["invalid_rewards"]),
            format_number(row["mean_reward_naive"]),
            format_number(row["posterior_mean"]),
            format_number(row["p_best"], style="percent", digits=1),
            format_number(row["current_allocation"], style="percent", digits=1),
        )
    console.print(table)
    console.print(f"[yellow]warning: {ADJUSTED_INFERENCE_WARNING}[/yellow]")
    console.print(f"decision: {decision_markup(a.decision)}")
    for reason in a.reasons:
        console.print(f"  - {reason_text(reason)}")
    print_notes(console, a.notes)


__all__ = [
    "ARM_TABLE",
    "CRITERIA_COLUMNS",
    "HEADERS",
    "LEFT",
    "METRIC_TABLE",
    "criteria_table",
    "decision_markup",
    "print_analysis",
    "print_summary",
    "rich_table",
]
