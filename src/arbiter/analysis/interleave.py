"""Analysis of an interleaving experiment: which ranker do users prefer, and is it significant?

Input, from the event log (see :mod:`arbiter.gateway.ranking`):

* one impression per ``/rank`` request whose lists were merged: the ``impression`` column of
  its champion's ``role = 'interleaved'`` row (merged list, teams, method, coin flip, and the
  rankings cut to what credit reads);
* clicks, posted to ``/feedback`` as ``{"request_id", "clicks": [...]}`` and stored as labels
  ``{"clicks": [...]}``. Clicks accumulate: every click row of a request counts (a set, so
  repeats do not matter), unlike class labels where the latest wins.

Credit rules (:func:`arbiter.routing.interleaving.credit`): team-draft credits each click to
the team that contributed the item; balanced compares clicks within the top ``cutoff`` of
each ranking. The ranker with more credited clicks wins the impression; equal credit is a
tie; impressions without clicks carry no preference and are left out (reported).
Clicked ids that were not shown in the impression cannot be credited: they are dropped and
counted (``unshown_clicks``), since ``/feedback`` accepts clicks before the impression is
flushed to the log and so cannot check them itself. Item ids compare as text (``3`` and
``"3"`` are one item).

Cost. Only impressions with at least one click carry a preference, so only those are
decoded in Python, streamed from DuckDB in batches (``fetchmany``); impressions, feedback,
users and methods are counted in SQL. On 1M impressions of 10-item lists (half with a
clicks row) the analysis takes seconds; numbers in ``docs/interleaving-and-bandits.md``.

The test (:func:`arbiter.stats.interleaving.clustered_interleaving_test`) clusters by user
(``unit_id``; an impression without one is its own cluster), because one user's impressions
are correlated: the CR2 variance with Bell–McCaffrey degrees of freedom, which stays at its
level when a few users carry most impressions. The result reports the users, their
effective number and the df, and a note warns when the df fall below
:data:`~arbiter.stats.interleaving.FEW_CLUSTERS`. Results are reported challenger-oriented:
``delta`` is ``(wins_challenger − wins_champion) / (impressions with clicks)``, positive when
users prefer the challenger.

Decision (``decision`` block of the model's config), by
:func:`arbiter.stats.verdict.decide_interleaving`:

* ``promote``: the challenger wins significantly, at least ``min_sample_per_arm``
  impressions with clicks, and the challenger's failure rate is shown to be within
  ``guardrails.max_error_rate`` (time-uniform upper bound, :mod:`arbiter.stats.guardrails`;
  about 450 clean ranking calls for the default 1 %);
* ``rollback``: the champion wins significantly with that sample; or the challenger's failure
  rate is breached (time-uniform lower bound at
  :data:`~arbiter.stats.guardrails.BREACH_ALPHA` above the limit); or
  ``max_sample_per_arm`` impressions were reached without a significant challenger win;
* ``keep_champion``: at ``max_sample_per_arm`` the challenger wins significantly but its
  failure rate is neither shown within the limit nor breached (it can no longer be
  promoted, and more data would not end the experiment);
* ``continue`` otherwise, with the reasons.

"Significantly" depends on ``decision.sequential``. With ``sequential: true`` (the default)
it means the always-valid confidence sequence of Δ excludes 0
(:func:`arbiter.stats.interleaving.interleaving_confidence_sequence`, one observation per
user, tightest at ``min_sample_per_arm`` users): the experiment may be analysed after every
batch and stopped at the first decisive look with a false-positive rate of at most
``alpha``. With ``sequential: false`` it is the clustered t-test at ``p < alpha``, narrower
but valid only when decided once, at a planned sample size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import orjson

from arbiter.config import DecisionConfig, ModelConfig
from arbiter.events.feedback import CLICKS_PREFIX
from arbiter.events.query import Scope
from arbiter.routing.interleaving import (
    TEAM_A,
    TEAM_B,
    Interleaving,
    credit,
)
from arbiter.stats.interleaving import (
    FEW_CLUSTERS,
    clustered_interleaving_test,
    interleaving_confidence_sequence,
    interleaving_test,
)
from arbiter.stats.results import InterleavingResult, finite_or_none
from arbiter.stats.sequential import sequential_rho
from arbiter.stats.verdict import (
    Criterion,
    Verdict,
    decide_interleaving,
    interleaving_decision_p_value,
)

CHAMPION = "champion"
CHALLENGER = "challenger"
NO_CLICKS = orjson.dumps({"clicks": []}).decode()  # an empty clicks label, as stored
BATCH = 10_000  # impressions with clicks fetched from DuckDB at a time


@dataclass(frozen=True, slots=True)
class Impression:
    """One logged interleaved impression that received at least one click."""

    request_id: str
    unit: str  # the user, or the request id when the request had no unit id
    ts: datetime
    interleaving: Interleaving
    clicks: frozenset[str]  # clicked ids that were shown
    unshown_clicks: int  # clicked ids that were not in the merged list
    has_feedback: bool  # at least one clicks row arrived (possibly empty)


@dataclass(frozen=True)
class InterleaveAnalysis:
    """Everything ``arbiter analyze`` found about one interleaving experiment.

    Attributes
    ----------
    model, experiment, strategy : str
        What was analysed (``strategy`` is ``"interleave"``).
    methods : dict of str to int
        Impressions per interleaving method (``team_draft``, ``balanced``).
    counts : dict of str to int
        ``impressions``, ``with_feedback``, ``with_clicks``, ``clicks``, ``unshown_clicks``,
        ``users``, ``fallbacks`` (requests answered by the champion alone),
        ``challenger_failures`` and ``challenger_attempts``.
    wins : dict of str to int
        ``champion``, ``challenger``, ``ties`` over impressions with clicks.
    test : InterleavingResult
        The clustered test, champion-oriented as the core returns it (``delta > 0``: the
        champion is preferred); see :attr:`preference` for the challenger's view.
    unclustered : InterleavingResult
        The same data treated as independent impressions (for reference; the decision uses
        :attr:`test`).
    verdict : Verdict
        The decision of :func:`arbiter.stats.verdict.decide_interleaving`.
    decision : str
        ``promote``, ``rollback``, ``keep_champion`` or ``continue`` (from ``verdict``).
    criteria : tuple of Criterion
        Every check behind the decision (from ``verdict``).
    cumulative : dict of str to list
        ``elapsed_s`` and ``delta`` (challenger-oriented) after each impression with clicks.
    sequential : dict of str to float, optional
        With ``policy.sequential``: the always-valid ``ci_low``, ``ci_high`` (challenger
        preference) and ``p_value``, and the mixing parameter ``rho``; the decision uses them.
    """

    model: str
    experiment: str
    strategy: str
    first_event: datetime | None
    last_event: datetime | None
    methods: dict[str, int]
    counts: dict[str, int]
    wins: dict[str, int]
    test: InterleavingResult
    unclustered: InterleavingResult
    verdict: Verdict
    policy: DecisionConfig
    cumulative: dict[str, list[float]] = field(repr=False)
    notes: tuple[str, ...] = ()
    sequential: dict[str, float] | None = None

    @property
    def decision(self) -> str:
        return self.verdict.decision

    @property
    def criteria(self) -> tuple[Criterion, ...]:
        return self.verdict.reasons

    @property
    def decision_p_value(self) -> float:
        """The p-value the decision compares with ``alpha`` (always-valid when sequential)."""
        return interleaving_decision_p_value(self.test, self.sequential)

    @property
    def preference(self) -> dict[str, float]:
        """The challenger's preference Δ with its interval (positive: challenger preferred)."""
        t = self.test
        return {
            "delta": -t.delta,
            "ci_low": -t.ci_high,
            "ci_high": -t.ci_low,
            "standard_error": t.standard_error,
            "p_value": t.p_value,
            "sign_test_p_value": t.sign_test_p_value,
        }

    @property
    def winner(self) -> str | None:
        """The ranker users prefer significantly (as the decision judges it), else None."""
        return self.verdict.winner

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready values (NaN stays NaN; the CLI turns it into null)."""
        return {
            "model": self.model,
            "experiment": self.experiment,
            "strategy": self.strategy,
            "kind": "interleave",
            "first_event": None if self.first_event is None else self.first_event.isoformat(),
            "last_event": None if self.last_event is None else self.last_event.isoformat(),
            "decision": self.decision,
            "winner": self.winner,
            "criteria": [c.to_dict() for c in self.criteria],
            "methods": dict(self.methods),
            "counts": dict(self.counts),
            "wins": dict(self.wins),
            "preference": self.preference,
            "n_users": self.test.n_clusters,
            "effective_users": finite_or_none(self.test.effective_clusters),
            "test": _oriented(self.test),
            "unclustered": _oriented(self.unclustered),
            "policy": {
                "alpha": self.policy.alpha,
                "min_sample_per_arm": self.policy.min_sample_per_arm,
                "max_sample_per_arm": self.policy.max_sample_per_arm,
                "max_error_rate": self.policy.guardrails.max_error_rate,
                "sequential": self.policy.sequential,
            },
            "sequential": None if self.sequential is None else dict(self.sequential),
            "notes": list(self.notes),
        }


def decode_impression(text: str) -> Interleaving:
    """Rebuild the :class:`Interleaving` of an ``impression`` column.

    The writer is :func:`arbiter.gateway.ranking.encode_impression` (keep the two in step).
    Item ids become text, so clicks match whatever JSON type the ranker used. Rankings absent
    from the column (team-draft credit does not read them) come back empty.
    """
    data = orjson.loads(text)
    return Interleaving(
        tuple(str(i) for i in data["items"]),
        tuple(TEAM_A if t == CHAMPION else TEAM_B for t in data["teams"]),
        data["method"],
        tuple(str(i) for i in data.get("ranking_a", ())),
        tuple(str(i) for i in data.get("ranking_b", ())),
        bool(data["a_first"]),
    )


# The impressions of one experiment: the champion's row of each merged request carries it
# (older logs also repeat it on the challenger's row, which this ignores).
def _impressions(scope: Scope) -> str:
    return f"""
    imp AS (
        SELECT request_id, coalesce(unit_id, 'request:' || request_id) AS unit, ts, impression
        FROM unforced
        WHERE {scope.where()} AND role = 'interleaved'
          AND arm = 'champion' AND impression IS NOT NULL
    ), clk AS (
        SELECT request_id, list(label) AS labels, bool_or(label <> $empty) AS clicked
        FROM feedback
        WHERE row_index = 0 AND starts_with(label, $prefix)
          AND request_id IN (SELECT request_id FROM imp)
        GROUP BY request_id
    )
"""


def _impression_counts(
    con: duckdb.DuckDBPyConnection, model: str, experiment: str
) -> tuple[int, int, int, datetime | None, dict[str, int]]:
    """``(impressions, with feedback, users, first ts, methods)``, all counted in SQL."""
    row = con.execute(
        f"""
        WITH {_impressions(Scope(model, experiment))}
        SELECT count(*), count(clk.request_id), count(DISTINCT imp.unit), min(imp.ts),
               count(*) FILTER (WHERE starts_with(imp.impression, '{{"method":"team_draft"')),
               count(*) FILTER (WHERE starts_with(imp.impression, '{{"method":"balanced"'))
        FROM imp LEFT JOIN clk USING (request_id)
        """,
        _params(model, experiment),
    ).fetchone()
    assert row is not None
    methods = {m: int(c) for m, c in (("team_draft", row[4]), ("balanced", row[5])) if c}
    return int(row[0]), int(row[1]), int(row[2]), row[3], methods


def iter_clicked_impressions(
    con: duckdb.DuckDBPyConnection, model: str, experiment: str, *, batch: int = BATCH
) -> Iterator[Impression]:
    """Interleaved impressions with at least one clicked id, oldest first, streamed.

    Clicks are joined in SQL first, so impressions nobody clicked are never fetched or
    decoded (:func:`analyze_interleave` counts them in SQL). Rows arrive ``batch`` at a time,
    so memory does not grow with the log. Forced requests (a tester's ``X-Arbiter-Arm``) are
    never interleaved, so none appear.
    """
    columns = {r[0] for r in con.execute("DESCRIBE predictions").fetchall()}
    if "impression" not in columns:  # only segments written before interleaving existed
        return
    cur = con.execute(
        f"""
        WITH {_impressions(Scope(model, experiment))}
        SELECT imp.request_id, imp.unit, imp.ts, imp.impression, clk.labels
        FROM imp JOIN clk USING (request_id)
        WHERE clk.clicked
        ORDER BY imp.ts, imp.request_id
        """,
        _params(model, experiment),
    )
    while rows := cur.fetchmany(batch):
        for request_id, unit, ts, text, labels in rows:
            il = decode_impression(text)
            clicked = {str(c) for label in labels for c in orjson.loads(label)["clicks"]}
            shown = clicked.intersection(il.items)
            yield Impression(
                request_id, unit, ts, il, frozenset(shown), len(clicked) - len(shown), True
            )


def _params(model: str, experiment: str) -> dict[str, Any]:
    return {**Scope(model, experiment).params, "prefix": CLICKS_PREFIX, "empty": NO_CLICKS}


def analyze_interleave(
    con: duckdb.DuckDBPyConnection,
    model: str,
    experiment: str,
    *,
    model_config: ModelConfig | None = None,
    policy: DecisionConfig | None = None,
) -> InterleaveAnalysis:
    """Analyse an interleaving experiment: credit, clustered test, guardrail, decision.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        From :meth:`arbiter.events.EventStore.connect`.
    model, experiment : str
        What to analyse.
    model_config : ModelConfig, optional
        Its ``decision`` block sets alpha, ``sequential``, the sample sizes and the
        error-rate guardrail.
    policy : DecisionConfig, optional
        Overrides ``model_config.decision``.

    Returns
    -------
    InterleaveAnalysis
        Degenerate data (no impressions, no clicks, one user) gives ``continue`` with the
        test's status saying why, not an error.
    """
    decision = policy or (model_config.decision if model_config else DecisionConfig())
    alpha = decision.alpha
    columns = {r[0] for r in con.execute("DESCRIBE predictions").fetchall()}
    if "impression" in columns:
        n_imp, n_feedback, n_users, t0, methods = _impression_counts(con, model, experiment)
    else:  # only segments written before interleaving existed
        n_imp, n_feedback, n_users, t0, methods = 0, 0, 0, None, {}
    per_user: dict[str, list[int]] = {}
    with_clicks = n_clicks = unshown = diff = 0
    elapsed: list[float] = []
    delta: list[float] = []
    for imp in iter_clicked_impressions(con, model, experiment):
        unshown += imp.unshown_clicks
        c = credit(imp.interleaving, imp.clicks)
        if c.n_clicks == 0:  # only unshown ids were clicked: no preference
            continue
        with_clicks += 1
        n_clicks += c.n_clicks
        o = c.outcome
        per_user.setdefault(imp.unit, [0, 0, 0])[0 if o > 0 else 1 if o < 0 else 2] += 1
        diff -= o  # challenger-oriented: outcome is +1 when A (the champion) wins
        elapsed.append((imp.ts - t0).total_seconds() if t0 is not None else 0.0)
        delta.append(diff / with_clicks)
    counts_arr = np.array(list(per_user.values()), dtype=np.int64).reshape(-1, 3)
    wa, wb, ties = counts_arr[:, 0], counts_arr[:, 1], counts_arr[:, 2]
    test = clustered_interleaving_test(wa, wb, ties, alpha=alpha)
    unclustered = interleaving_test(int(wa.sum()), int(wb.sum()), int(ties.sum()), alpha=alpha)
    seq: dict[str, float] | None = None
    if decision.sequential:
        rho = sequential_rho(alpha, max(decision.min_sample_per_arm, 2))
        lo, hi, p_seq = interleaving_confidence_sequence(test, rho=rho)
        seq = {"ci_low": -hi, "ci_high": -lo, "p_value": p_seq, "rho": rho}
    attempts, failures, fallbacks, first, last = _challenger_health(con, model, experiment)
    counts = {
        "impressions": n_imp,
        "with_feedback": n_feedback,
        "with_clicks": with_clicks,
        "clicks": n_clicks,
        "unshown_clicks": unshown,
        "users": n_users,
        "fallbacks": fallbacks,
        "challenger_attempts": attempts,
        "challenger_failures": failures,
    }
    verdict = decide_interleaving(
        test,
        with_clicks,
        alpha=alpha,
        min_sample=decision.min_sample_per_arm,
        max_sample=decision.max_sample_per_arm,
        sequential=seq,
        failures=failures,
        attempts=attempts,
        max_error_rate=decision.guardrails.max_error_rate,
    )
    notes = []
    if counts["unshown_clicks"]:
        notes.append(
            f"{counts['unshown_clicks']} clicked item ids were not in their impression's "
            "merged list and were not credited (clicks posted for the wrong request_id?)"
        )
    if counts["impressions"] > counts["with_feedback"]:
        notes.append(
            f"{counts['impressions'] - counts['with_feedback']} impressions got no clicks "
            "feedback at all (not even an empty list); they count as impressions without clicks"
        )
    if counts["fallbacks"]:
        notes.append(
            f"{counts['fallbacks']} requests were answered by the champion alone because the "
            "challenger failed or was not loaded; they carry no preference"
        )
    if test.n_clusters >= 2 and test.dof < FEW_CLUSTERS:
        notes.append(
            f"few effective users: {test.n_clusters} users, {test.effective_clusters:.1f} "
            f"effective (1/Σ share²), {test.dof:.1f} Bell–McCaffrey df; a few users carry most "
            "impressions, so the test uses the CR2 small-sample correction and rests on them"
        )
    if "balanced" in methods:
        notes.append(
            "balanced interleaving can prefer a ranker under random clicks when one ranking "
            "is a shifted copy of the other (A = d1 d2 d3, B = d2 d3 d4: B wins 3 of 4 single "
            "random clicks); team-draft has no such bias"
        )
    return InterleaveAnalysis(
        model=model,
        experiment=experiment,
        strategy="interleave",
        first_event=first,
        last_event=last,
        methods=methods,
        counts=counts,
        wins={
            CHAMPION: test.wins_a,
            CHALLENGER: test.wins_b,
            "ties": test.ties,
        },
        test=test,
        unclustered=unclustered,
        verdict=verdict,
        policy=decision,
        cumulative={"elapsed_s": elapsed, "delta": delta},
        notes=tuple(notes),
        sequential=seq,
    )


# --- helpers ---------------------------------------------------------------------------------


def _challenger_health(
    con: duckdb.DuckDBPyConnection, model: str, experiment: str
) -> tuple[int, int, int, datetime | None, datetime | None]:
    """``(challenger attempts, challenger failures, fallbacks, first ts, last ts)`` of /rank."""
    scope = Scope(model, experiment)
    row = con.execute(
        f"""
        SELECT count(*) FILTER (WHERE arm = 'challenger' AND role = 'interleaved'),
               count(*) FILTER (WHERE arm = 'challenger' AND role = 'interleaved'
                                AND error IS NOT NULL),
               count(DISTINCT request_id) FILTER (WHERE arm = 'champion' AND role = 'served'),
               min(ts), max(ts)
        FROM unforced
        WHERE {scope.where()} AND protocol = 'rank'
        """,
        scope.params,
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), row[3], row[4]


def _oriented(t: InterleavingResult) -> dict[str, Any]:
    """A test result as plain values, plus the challenger-oriented Δ and interval."""
    return {
        **t.to_dict(),
        "challenger_delta": -t.delta,
        "challenger_ci_low": -t.ci_high,
        "challenger_ci_high": -t.ci_low,
    }


__all__ = ["Impression", "InterleaveAnalysis", "analyze_interleave", "decode_impression",
           "iter_clicked_impressions"]  # fmt: skip
