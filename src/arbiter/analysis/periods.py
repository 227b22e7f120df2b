"""Split periods of an experiment whose shares changed while it ran, and SRM per period.

When an operator changes a running A/B test's split (``arbiter split``), the shares the
sample-ratio-mismatch check must expect change with it: pooling all units against one split
would flag a healthy experiment (a 10 % → 50 % ramp pools to about 30 %, neither split), and
pooling against the final split hides a broken one. So the experiment is cut into **periods**
at the recorded changes (:class:`~arbiter.registry.history.ExperimentChange`, registered on
the DuckDB connection as the table ``experiment_changes`` by
:func:`arbiter.experiments.attach_experiment_changes`), each with the shares in force.

Per period, the check counts the **units first exposed in it**, by the arm of their first
exposure. A unit seen earlier is not a new draw (sticky assignment: it keeps its arm, or
moves by the change, which is not a random draw either), so it counts only in the period of
its first exposure. Units first seen within the **grace window** after a change (``grace_s``,
two registry poll intervals and a second: workers apply a change at their next poll, so
for a moment some route with the old split) are left out, as the canary's SRM per stage does
(:mod:`arbiter.canary.measure`).

The units of different periods are disjoint, so under a healthy split the periods' Pearson
chi-squares are independent and their sum is chi-square with the sum of their degrees of
freedom: one test (:func:`srm_by_period`) with the configured threshold, whatever the number
of periods, and each period's own test reported beside it.

**Crossed units**: a unit served by more than one arm (it moved when a share changed: by the
monotonic split, from the champion into a growing challenger or back from a shrinking one) is
counted and reported (``crossed_units``) and left out of the quality metric comparison
(:func:`~arbiter.analysis.aggregate.aggregate_experiment` with ``exclude_crossed``), as the
outcome-metric engine leaves them out of outcome metrics.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import duckdb
from scipy import stats as sps

from arbiter.events.query import Scope
from arbiter.stats.results import SRMResult
from arbiter.stats.srm import srm_test
from arbiter.stats.verdict import Criterion, DecisionPolicy, Verdict

CHANGES_TABLE = "experiment_changes"
CHAMPION = "champion"
METHOD = "Pearson chi-square per split period (units first exposed in it), summed"


@dataclass(frozen=True, slots=True)
class SplitPeriod:
    """One period of constant shares: ``[start, end)`` in epoch seconds (``None``: open).

    ``weights`` maps every arm (champion included) to its expected share of new units;
    units first seen before ``start + grace_s`` are not counted.
    """

    index: int
    start: float | None
    end: float | None
    weights: dict[str, float]
    grace_s: float = 0.0
    opened_by: str | None = None  # the change that opened it (None: the experiment's start)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "weights": self.weights,
            "grace_s": self.grace_s,
            "opened_by": self.opened_by,
        }


@dataclass(frozen=True, slots=True)
class PeriodSRMResult(SRMResult):
    """The summed per-period SRM test (the fields of :class:`SRMResult` over all periods:
    ``observed`` new units per arm, ``expected`` what each period's shares imply), with
    each period's own test, the crossed units and the units left out in grace windows."""

    periods: tuple[dict[str, Any], ...] = ()
    crossed_units: int = 0
    grace_units: int = 0


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC).isoformat()


def _weights(shares: Mapping[str, float]) -> dict[str, float]:
    return {CHAMPION: max(0.0, 1.0 - sum(shares.values())), **shares}


def split_periods(
    changes: Sequence[Mapping[str, Any]],
    experiment: str,
    configured: Mapping[str, float] | None = None,
) -> list[SplitPeriod]:
    """The periods of ``experiment`` from its recorded changes (oldest first).

    Parameters
    ----------
    changes : sequence of mapping
        Rows with ``experiment``, ``previous_experiment``, ``ts`` (epoch seconds),
        ``action``, ``shares_before`` and ``shares_after`` (challenger arm -> share, or
        ``None`` while stopped) and ``grace_s``.
    experiment : str
        The experiment analysed.
    configured : mapping, optional
        Challenger arm -> share before the first change, when no change says so.

    Returns
    -------
    list of SplitPeriod
        Empty when no change concerns ``experiment`` (one split all along).
    """
    mine = sorted(
        (c for c in changes if experiment in (c["experiment"], c.get("previous_experiment"))),
        key=lambda c: c["ts"],
    )
    if not mine:
        return []
    first = mine[0]
    # Before the first change the experiment ran at its shares_before, unless that change
    # started it (a new name, or a restart: then it was not running before).
    started = first["action"] == "start" and first["experiment"] == experiment
    initial = None if started else (first.get("shares_before") or configured)
    periods: list[SplitPeriod] = []
    current = None if initial is None else SplitPeriod(0, None, None, _weights(initial))
    for c in mine:
        if current is not None:
            periods.append(replace(current, end=float(c["ts"])))
            current = None
        if c["experiment"] == experiment and c["shares_after"] is not None:
            current = SplitPeriod(
                len(periods),
                float(c["ts"]),
                None,
                _weights(c["shares_after"]),
                float(c.get("grace_s") or 0.0),
                c["action"],
            )
    if current is not None:
        periods.append(current)
    return [replace(p, index=i) for i, p in enumerate(periods)]


def stored_changes(con: duckdb.DuckDBPyConnection, model: str) -> list[dict[str, Any]]:
    """The rows of ``experiment_changes`` for ``model`` (none when the table is absent)."""
    try:
        rows = con.execute(
            f"SELECT experiment, previous_experiment, ts, action, shares_before, shares_after, "
            f"grace_s FROM {CHANGES_TABLE} WHERE model = $model ORDER BY ts",
            {"model": model},
        ).fetchall()
    except duckdb.CatalogException:  # no changes registered on this connection
        return []
    return [
        {
            "experiment": r[0],
            "previous_experiment": r[1],
            "ts": float(r[2]),
            "action": r[3],
            "shares_before": None if r[4] is None else json.loads(r[4]),
            "shares_after": None if r[5] is None else json.loads(r[5]),
            "grace_s": float(r[6] or 0.0),
        }
        for r in rows
    ]


def new_units_by_period(
    con: duckdb.DuckDBPyConnection, scope: Scope, periods: Sequence[SplitPeriod]
) -> tuple[list[dict[str, int]], int]:
    """Units first exposed in each period (after its grace window), by arm of that first
    exposure; and how many units were first seen inside a grace window."""
    bounds = [
        (
            -(2**62) if p.start is None else round((p.start + p.grace_s) * 1e6),
            -(2**62) if p.start is None else round(p.start * 1e6),
            2**62 if p.end is None else round(p.end * 1e6),
        )
        for p in periods
    ]
    rows = con.execute(
        f"""
        WITH first AS (
            SELECT coalesce(unit_id, 'request:' || request_id) AS unit,
                   arg_min(arm, ts) AS arm, epoch_us(min(ts)) AS first_us
            FROM served WHERE {scope.where()} AND arm IS NOT NULL GROUP BY 1
        ), periods AS (
            SELECT i - 1 AS period, $counted[i] AS counted, $opened[i] AS opened,
                   $ended[i] AS ended
            FROM range(1, len($counted) + 1) AS t(i)
        )
        SELECT p.period, f.arm, f.first_us >= p.counted AS counted, count(*)
        FROM first f JOIN periods p ON f.first_us >= p.opened AND f.first_us < p.ended
        GROUP BY ALL
        """,
        {
            **scope.params,
            "counted": [b[0] for b in bounds],
            "opened": [b[1] for b in bounds],
            "ended": [b[2] for b in bounds],
        },
    ).fetchall()
    counts: list[dict[str, int]] = [{} for _ in periods]
    grace = 0
    for period, arm, counted, n in rows:
        if counted:
            counts[int(period)][str(arm)] = int(n)
        else:
            grace += int(n)
    return counts, grace


def crossed_units(con: duckdb.DuckDBPyConnection, scope: Scope) -> int:
    """Units served by more than one arm of the experiment (moved by a split change)."""
    row = con.execute(
        "SELECT count(*) FROM (SELECT unit_id FROM served WHERE "
        f"{scope.where()} AND unit_id IS NOT NULL AND arm IS NOT NULL "
        "GROUP BY unit_id HAVING count(DISTINCT arm) > 1)",
        scope.params,
    ).fetchone()
    return int(row[0]) if row else 0


def period_srm(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    periods: Sequence[SplitPeriod],
    arms: Sequence[str],
    *,
    threshold: float,
) -> PeriodSRMResult:
    """SRM per period, and their sum as one chi-square test (module docstring)."""
    counts, grace = new_units_by_period(con, scope, periods)
    total_obs = {a: 0 for a in arms}
    total_exp = {a: 0.0 for a in arms}
    chi2, dof, rows = 0.0, 0, []
    for period, observed in zip(periods, counts, strict=True):
        keep = [a for a in arms if period.weights.get(a, 0.0) > 0.0]
        n = sum(observed.get(a, 0) for a in arms)
        row: dict[str, Any] = {
            **period.to_dict(),
            "observed": {a: observed.get(a, 0) for a in arms},
        }
        unexpected = sum(observed.get(a, 0) for a in arms if a not in keep)
        if len(keep) >= 2 and n:
            r = srm_test([observed.get(a, 0) for a in keep], [period.weights[a] for a in keep],
                         threshold=threshold)  # fmt: skip
            chi2 += r.statistic
            dof += r.dof
            row.update(statistic=r.statistic, p_value=r.p_value, dof=r.dof)
            share_sum = sum(period.weights[a] for a in keep)
            for a in keep:
                total_exp[a] += (n - unexpected) * period.weights[a] / share_sum
        else:
            row.update(statistic=None, p_value=None, dof=0)
        if unexpected:  # units on an arm whose share was 0: assignment is broken
            row["unexpected_units"] = unexpected
            chi2, dof = math.inf, max(dof, 1)
        for a in arms:
            total_obs[a] += observed.get(a, 0)
        rows.append(row)
    p = float(sps.chi2.sf(chi2, dof)) if dof else math.nan
    total = sum(total_exp.values())
    return PeriodSRMResult(
        statistic=chi2,
        p_value=p,
        mismatch=bool(dof) and p < threshold,
        dof=dof,
        observed=tuple(total_obs[a] for a in arms),
        expected=tuple(total_exp[a] for a in arms),
        weights=tuple((total_exp[a] / total) if total else math.nan for a in arms),
        threshold=threshold,
        method=METHOD,
        status="ok" if dof else "no_data",
        periods=tuple(rows),
        crossed_units=crossed_units(con, scope),
        grace_units=grace,
    )


# --- hooks into the A/B and A/B/n analyses ---------------------------------------------------


def split_changed(con: duckdb.DuckDBPyConnection, model: str, experiment: str) -> bool:
    """Whether a recorded change cut ``experiment`` into periods (then its crossed units are
    left out of the quality metric: ``aggregate_experiment(exclude_crossed=True)``)."""
    return bool(split_periods(stored_changes(con, model), experiment))


def srm_with_periods(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    srm: SRMResult | None,
    arms: Sequence[str],
    threshold: float,
    notes: list[str],
) -> SRMResult | None:
    """``srm`` unchanged when the experiment's split never changed; else the per-period test.

    Adds a note with the periods, the crossed units and the units left out in grace windows.
    """
    periods = split_periods(stored_changes(con, model), experiment)
    if not periods:
        return srm
    result = period_srm(con, Scope(model, experiment), periods, arms, threshold=threshold)
    notes.append(
        f"the split changed while the experiment ran: SRM tested per period ({len(periods)} "
        f"periods, units counted in the period of their first exposure; {result.grace_units} "
        f"units first seen within a grace window after a change left out); "
        f"{result.crossed_units} units were served by more than one arm (crossed_units): "
        "left out of the metric comparison"
    )
    return result


def verdict_with_periods(
    verdict: Verdict, srm: SRMResult | None, policy: DecisionPolicy
) -> Verdict:
    """The two-arm verdict with the per-period SRM in place of the pooled one.

    The pooled check inside :func:`~arbiter.stats.verdict.decide` compares all units with one
    split, which a split change breaks; callers pass ``check_srm=False`` to it (see
    :func:`policy_without_pooled_srm`) and this puts the per-period criterion back, deciding
    ``on_srm`` on a mismatch (a guardrail rollback stays a rollback).
    """
    if not isinstance(srm, PeriodSRMResult):
        return verdict
    p = 1.0 if math.isnan(srm.p_value) else srm.p_value
    criterion = Criterion(
        "srm",
        not srm.mismatch,
        p,
        policy.srm_threshold,
        f"chi-square per split period p={p:.3g} ({len(srm.periods)} periods)"
        + ("" if not srm.mismatch else ": assignment is broken, results cannot be trusted"),
    )
    if srm.mismatch and verdict.decision != "rollback":
        return Verdict(policy.on_srm, (criterion,), srm_p_value=p)
    return replace(verdict, reasons=(criterion, *verdict.reasons), srm_p_value=p)


def policy_without_pooled_srm(srm: SRMResult | None, policy: DecisionPolicy) -> DecisionPolicy:
    """``policy`` without the pooled SRM check when ``srm`` is per period."""
    return replace(policy, check_srm=False) if isinstance(srm, PeriodSRMResult) else policy


__all__ = [
    "CHANGES_TABLE",
    "PeriodSRMResult",
    "SplitPeriod",
    "crossed_units",
    "new_units_by_period",
    "period_srm",
    "policy_without_pooled_srm",
    "split_changed",
    "split_periods",
    "srm_with_periods",
    "stored_changes",
    "verdict_with_periods",
]
