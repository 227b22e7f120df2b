"""A canary checkpoint's evidence, measured in DuckDB where the events live.

:func:`measure_checkpoint` reads the event log of one canary (its model, experiment and the
two versions it tests, forced rows left out) and returns the :class:`CheckpointInputs` the
pure :func:`~arbiter.routing.canary.advance` needs, with the numbers behind them:

* **stage requests** per arm since ``stage_started_at`` (the stage's ``min_requests``);
* **since the canary started**, per arm: requests, error rate, p99 latency of successful
  requests, and the primary metric's sufficient statistics on labelled rows (accuracy for a
  classifier, the per-row loss of ``decision.loss`` for a regressor);
* **PSI** of the challenger's predictions against the champion's since the canary started:
  a classifier's predicted classes, a regressor's predictions in the champion's decile bins;
* the **SRM check** of the current stage (below);
* the **strata** of the harm test (below), per stage and unit;
* the **verdict** of :func:`arbiter.stats.verdict.decide` with ``mode="canary"`` (a
  significantly worse challenger is a ``rollback``), built by
  :func:`arbiter.analysis.policy.to_decision_policy`, plus a PSI guardrail and the canary's
  ``max_harm`` non-inferiority margin.

Harm, from concurrent strata and per unit
-----------------------------------------
Pooling every row since the start compares the champion's early rows with the challenger's
late ones (the share ramps), so a drifting metric read as harm; and a per-row test ignores
that assignment is per unit. So each transition of the canary's history (start, advance,
pause, resume) starts a **stratum** of constant split; within it every unit's labelled rows
are summed (``m``, ``d``; a unit without an id, ``unit_random``, is its own unit) and the
cells (stratum × arm) become :class:`~arbiter.stats.sufficient.RatioStatistic`. The verdict
combines the strata that have both arms (:mod:`arbiter.stats.stratified`) and tests the
result with a mixture whose scale is fixed on the effect scale
(:func:`arbiter.stats.sequential.mixture_test`), valid whatever the split path. Units are
sticky and cross champion → challenger as the share grows: each unit's influence is summed
over every cell it appears in (in DuckDB) for a cluster-robust variance across strata and
arms, and ``crossed_units`` counts the units seen in both arms. With the plan's ``holdback``
the last stage keeps concurrent champion rows; without it harm is tested on the earlier
stages only; ``harm.last_stage`` in the evidence says which. Measured by
``benchmarks/validity_canary.py`` (docs/canary.md): an identical challenger is rolled back
at most ``alpha`` of the time within simulation error, with i.i.d. rows, repeating users
and a metric drifting ±1.2 points over the canary.

Noise rarely rolls a canary back on its own (at most ``alpha`` for the harm test, above).
As in :mod:`arbiter.analysis.analyze`, a guardrail
is handed to ``decide`` only when the data are conclusive, judged by the one rule of
:mod:`arbiter.stats.guardrails` (a canary looks at its data at every checkpoint, hundreds of
looks, so a 95 % interval would be crossed by chance sooner or later): the error rate counts
as breached only when **both** the lower bound of its time-uniform binomial confidence sequence
(a beta-binomial mixture, valid over any number of looks) at level
:data:`~arbiter.stats.guardrails.BREACH_ALPHA` = 0.001 exceeds the limit (a 20 %-error
challenger still crosses a 1 % limit after about 20 requests) **and** it is significantly
above the champion's error rate (one-sided Fisher exact test at the same level), so a champion
whose own baseline is above the limit does not get an identical challenger rolled back; with
no champion request at all (a plan that starts at 100 %) the absolute bound alone decides. It
counts as met when the same sequence's upper bound at ``alpha`` lies below the limit.
The p99 ratio is judged once both
arms have :data:`~arbiter.stats.guardrails.MIN_LATENCY_REQUESTS` successful requests; the PSI
once each arm has :data:`MIN_PSI_ROWS_PER_BIN` rows per bin on average
(``MIN_PSI_ROWS_PER_BIN * bins`` rows: the chi-square approximation behind its noise threshold
fails on near-empty bins, where the 1e-4 floor inflates PSI to several units) and
when it is above the larger of the limit and that noise threshold
(:func:`arbiter.drift.methods.psi_test`).

SRM, per stage
--------------
The sample-ratio check looks at the **current stage only**, and only at requests that arrived
after a grace window of ``2 * poll_interval_s + analysis_interval_s`` past the stage start:
every worker applies a new share within one registry poll (plus one running checkpoint of the
worker that decided it), so the first seconds of a stage still run at the old share, and at high
traffic that lag alone would be a significant mismatch. Within the window the expected split is
exactly ``(1 - share, share)`` (``1 - holdback`` at the last stage). It counts **distinct
units** per arm (the unit is what is randomised; a sticky unit with many requests would make
request counts over-dispersed and the test anti-conservative), plus the requests that carried no
unit id (``unit_random``: each drawn independently). It needs nothing from the stored history,
so a long ramp whose history was truncated is checked as well as a short one. No check (no
``srm`` criterion) at share 1.0 (no holdback: nothing to compare) or while either arm's expected
count is below :data:`MIN_SRM_EXPECTED`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np

from arbiter.analysis.aggregate import detect_task
from arbiter.analysis.policy import ERROR_RATE, LATENCY_P99, to_decision_policy
from arbiter.config import ModelConfig, RegistryConfig
from arbiter.drift.methods import psi_test
from arbiter.errors import NotFoundError
from arbiter.events.query import Scope, latest_labels_sql
from arbiter.routing.canary import CanaryPlan, CanaryState, CheckpointInputs
from arbiter.stats.guardrails import BREACH_ALPHA, check_latency, check_rate
from arbiter.stats.stratified import influence_coefficients, stratified_difference
from arbiter.stats.sufficient import ProportionStatistic, RatioStatistic, SampleMeanStatistic
from arbiter.stats.verdict import (
    ArmObservations,
    DecisionPolicy,
    Guardrail,
    GuardrailObservation,
    Verdict,
    decide,
)

PSI = "prediction_psi"
PSI_BINS = 10
#: Rows per arm and bin (on average) before the PSI guardrail is judged.
MIN_PSI_ROWS_PER_BIN = 20
#: Smallest expected count (units) of either arm before the stage's SRM check runs.
MIN_SRM_EXPECTED = 10
#: Registry poll interval assumed for the SRM grace window when the caller gives none.
DEFAULT_POLL_INTERVAL_S: float = RegistryConfig.model_fields["poll_interval_s"].default
SIDES = ("champion", "challenger")
# Temp table of the canary's rows, filled once per checkpoint. SQL here interpolates only
# this name, fixed metric expressions and the scope's WHERE text; values are bound parameters.
_ROWS = "_canary_rows"
_UNITS = "_canary_units"  # per stratum, arm and unit: the primary metric's sum and rows


@dataclass(frozen=True)
class ArmSummary:
    """One arm since the canary started (successful, unforced, served rows)."""

    requests: int
    errors: int
    latency_p99_ms: float
    labelled: int
    metric: ProportionStatistic | SampleMeanStatistic

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "latency_p99_ms": self.latency_p99_ms,
            "labelled": self.labelled,
            "metric_mean": self.metric.mean if self.metric.n else math.nan,
        }


@dataclass(frozen=True)
class Measurement:
    """A checkpoint's evidence and the inputs :func:`advance` takes.

    ``expected_challenger_share`` is the current stage's share, the split the SRM check
    expects; ``srm`` describes that check (window, basis, counts, p-value, or why it did not
    run).
    """

    inputs: CheckpointInputs
    verdict: Verdict
    policy: DecisionPolicy
    task: str
    stage_requests: dict[str, int]
    arms: dict[str, ArmSummary]
    expected_challenger_share: float
    psi: dict[str, Any] | None
    guardrails: tuple[dict[str, Any], ...]
    duration_s: float
    window: dict[str, Any] = field(default_factory=dict)
    srm: dict[str, Any] = field(default_factory=dict)
    harm: dict[str, Any] = field(default_factory=dict)

    def evidence(self) -> dict[str, Any]:
        """Plain JSON-able values for decision records and status output."""
        p = self.verdict.primary
        return {
            "window": self.window,
            "task": self.task,
            "stage_requests": self.stage_requests,
            "arms": {side: a.to_dict() for side, a in self.arms.items()},
            "expected_challenger_share": self.expected_challenger_share,
            "srm": self.srm,
            "harm": self.harm,
            "psi": self.psi,
            "guardrails": list(self.guardrails),
            "primary": None
            if p is None
            else {
                "estimate": p.estimate,
                "ci_low": p.ci_low,
                "ci_high": p.ci_high,
                "p_value": p.p_value,
                "method": p.method,
                "status": p.status,
            },
            "verdict": self.verdict.decision,
            "criteria": [
                {"name": c.name, "met": c.met, "detail": c.detail} for c in self.verdict.reasons
            ],
            "breaches": list(self.inputs.guardrail_breaches),
            "reasons": list(self.inputs.verdict_reasons),
            "primary_sample_reached": self.inputs.primary_sample_reached,
            "non_inferior": self.inputs.non_inferior,
            "duration_s": self.duration_s,
        }


def srm_window_start(
    state: CanaryState, *, analysis_interval_s: float, poll_interval_s: float
) -> float:
    """First arrival time (seconds) the stage's SRM check counts: the stage start plus a grace
    of two registry polls and one analysis interval (see the module docstring)."""
    return state.stage_started_at + 2.0 * poll_interval_s + analysis_interval_s


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ts(seconds: float) -> datetime:
    """A UTC datetime for ``seconds`` since the epoch, exact to the microsecond.

    Bound as a TIMESTAMPTZ parameter and compared with ``ts`` itself, so DuckDB pushes the
    bound into the scan and prunes Parquet row groups on ``ts`` (``epoch_us(ts) >= ...`` would
    hide the column behind a function and read every row group).
    """
    return _EPOCH + timedelta(microseconds=round(seconds * 1e6))


def measure_checkpoint(
    con: duckdb.DuckDBPyConnection,
    *,
    model: str,
    experiment: str,
    config: ModelConfig,
    plan: CanaryPlan,
    state: CanaryState,
    champion_version: str | None,
    challenger_version: str,
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
) -> Measurement:
    """Measure one checkpoint of a canary (see the module docstring).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        From :meth:`arbiter.events.EventStore.connect`, used for this checkpoint only: it is
        set to one thread (the checkpoint runs inside a serving process) and gets a temporary
        table of the canary's rows.
    model, experiment : str
        The endpoint and its experiment name (the canary's rows).
    config : ModelConfig
        The model's configuration (``decision:`` and ``experiment.canary``).
    plan, state : CanaryPlan, CanaryState
        The canary; ``state.started_at`` and ``stage_started_at`` bound the windows.
    champion_version, challenger_version : str
        The versions under test; rows of other versions are left out.
    poll_interval_s : float, default DEFAULT_POLL_INTERVAL_S
        ``registry.poll_interval_s`` of the gateway, for the SRM grace window.

    Returns
    -------
    Measurement
    """
    t0 = time.perf_counter()
    # The checkpoint shares the process (and the 2 cores) with request handling: one thread.
    con.execute("SET threads = 1")
    scope = Scope(model, experiment, start=_ts(state.started_at))
    params = {**scope.params, "champ_v": champion_version, "chall_v": challenger_version}
    # Filter once, on the raw columns (Parquet row groups pruned on ts), then aggregate the
    # small table several times instead of scanning the log once per statistic.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {_ROWS} AS
        SELECT request_id, row_index, ts, arm, unit_id, unit_random, error, latency_ms,
               prediction, prediction_num
        FROM served
        WHERE {scope.where()}
          AND ((arm = 'champion' AND version IS NOT DISTINCT FROM $champ_v)
               OR (arm = 'challenger' AND version = $chall_v))
        """,
        params,
    )
    try:
        return _measure(
            con,
            t0,
            model=model,
            experiment=experiment,
            config=config,
            plan=plan,
            state=state,
            champion_version=champion_version,
            challenger_version=challenger_version,
            poll_interval_s=poll_interval_s,
        )
    finally:
        con.execute(f"DROP TABLE IF EXISTS {_ROWS}")


def _measure(
    con: duckdb.DuckDBPyConnection,
    t0: float,
    *,
    model: str,
    experiment: str,
    config: ModelConfig,
    plan: CanaryPlan,
    state: CanaryState,
    champion_version: str | None,
    challenger_version: str,
    poll_interval_s: float,
) -> Measurement:
    rows = con.execute(
        f"""
        SELECT arm, count(*),
               count(*) FILTER (WHERE ts >= $stage_start),
               count(error),
               quantile_cont(latency_ms, 0.99) FILTER (WHERE error IS NULL)
        FROM {_ROWS} WHERE row_index = 0
        GROUP BY arm
        """,
        {"stage_start": _ts(state.stage_started_at)},
    ).fetchall()
    by_arm = {r[0]: r for r in rows}
    requests = {s: int(by_arm[s][1]) if s in by_arm else 0 for s in SIDES}
    stage_requests = {s: int(by_arm[s][2]) if s in by_arm else 0 for s in SIDES}
    errors = {s: int(by_arm[s][3]) if s in by_arm else 0 for s in SIDES}
    p99 = {
        s: float(by_arm[s][4]) if s in by_arm and by_arm[s][4] is not None else math.nan
        for s in SIDES
    }

    try:
        task = detect_task(con, model, experiment)
    except NotFoundError:
        task = "classification"
    metric = _primary_statistics(con, task, config)
    strata, influence, harm_info = _strata(con, task, config, plan, state)

    decision = config.decision
    share = plan.routed_share(min(state.stage, plan.last_stage))
    start = srm_window_start(
        state,
        analysis_interval_s=config.experiment.canary.analysis_interval_s,
        poll_interval_s=poll_interval_s,
    )
    srm_info, srm_counts = _stage_srm(con, start, share)
    if srm_counts is not None:
        policy = to_decision_policy(
            decision, mode="canary", task=task, traffic_weights=(1.0 - share, share)
        )
    else:
        policy = replace(to_decision_policy(decision, mode="canary", task=task), check_srm=False)
    policy = replace(policy, max_harm=config.experiment.canary.max_harm)
    max_psi = config.experiment.canary.max_prediction_psi
    if max_psi is not None:
        policy = replace(policy, guardrails=(*policy.guardrails, Guardrail(PSI, max_psi, "max")))
    psi_info = _psi(con, task=task, alpha=decision.alpha, limit=max_psi)

    observations, rows_out = _guardrails(
        policy, requests, errors, p99, psi_info, alpha=decision.alpha
    )
    arms = ArmObservations(
        metric["champion"],
        metric["challenger"],
        guardrails=observations,
        assignment_counts=srm_counts,
        strata=strata,
        strata_influence=influence,
    )
    verdict = decide(arms, policy)
    from arbiter.canary.metric_guardrails import with_metric_guardrails  # issue 10 (o4-wiring)

    scope = Scope(model, experiment, start=_ts(state.started_at))
    verdict = with_metric_guardrails(verdict, con, scope, config, alpha=decision.alpha)
    if verdict.srm_p_value is not None:
        srm_info["p_value"] = verdict.srm_p_value
    inputs = CheckpointInputs.from_verdict(
        verdict,
        champion_requests=stage_requests["champion"],
        challenger_requests=stage_requests["challenger"],
    )
    summaries = {
        s: ArmSummary(requests[s], errors[s], p99[s], metric[s].n, metric[s]) for s in SIDES
    }
    return Measurement(
        inputs=inputs,
        verdict=verdict,
        policy=policy,
        task=task,
        stage_requests=stage_requests,
        arms=summaries,
        expected_challenger_share=share,
        psi=psi_info,
        guardrails=rows_out,
        duration_s=time.perf_counter() - t0,
        window={
            "model": model,
            "experiment": experiment,
            "champion_version": champion_version,
            "challenger_version": challenger_version,
            "started_at": state.started_at,
            "stage": state.stage,
            "stage_started_at": state.stage_started_at,
        },
        srm=srm_info,
        harm=harm_info,
    )


def _stratum_bounds(state: CanaryState) -> list[float]:
    """Start times of the strata: the canary start and every later transition (advance,
    pause, resume), so the split is constant within each stratum (up to the registry-poll
    lag right after a transition)."""
    times = sorted({r.at for r in state.history if r.at > state.started_at})
    return [state.started_at, *times]


def _strata(
    con: duckdb.DuckDBPyConnection,
    task: str,
    config: ModelConfig,
    plan: CanaryPlan,
    state: CanaryState,
) -> tuple[tuple[tuple[RatioStatistic, RatioStatistic], ...], tuple[float, int], dict[str, Any]]:
    """Per-unit statistics of the primary metric per stratum and arm, for the harm test.

    A unit is the request's ``unit_id`` (a request without one, ``unit_random``, is its own
    unit). Its labelled rows are summed **per stratum** (``m`` = correct rows or summed loss,
    ``d`` = labelled rows): a unit that crossed from the champion to the challenger when the
    share grew is a champion unit in the earlier strata and a challenger unit in the later
    ones, never both within one (except during the poll lag right after a transition, when
    it is one unit per arm). Both kinds are counted in the record, and the unit's rows in
    every stratum and arm are one cluster of the variance (:func:`_influence`).
    """
    bounds = _stratum_bounds(state)
    y = _metric_sql(task, config)
    latest = latest_labels_sql(
        "WHERE request_id IN (SELECT request_id FROM ok)", fields=("label", "label_num")
    )
    # Stratum index: the number of later boundaries at or before ts (bound parameters).
    names = {f"b{i}": _ts(t) for i, t in enumerate(bounds[1:])}
    stratum = " + ".join(f"(r.ts >= ${k})::INTEGER" for k in names) or "0"
    unit = (
        "CASE WHEN coalesce(r.unit_random, false) OR r.unit_id IS NULL "
        "THEN 'r:' || r.request_id ELSE 'u:' || r.unit_id END"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {_UNITS} AS
        WITH ok AS (SELECT * FROM {_ROWS} WHERE error IS NULL),
        latest AS ({latest}),
        labelled AS (
            SELECT {stratum} AS stratum, r.arm, {unit} AS unit, {y} AS y
            FROM ok AS r
            JOIN latest AS f ON r.request_id = f.request_id AND r.row_index = f.row_index
            WHERE f.label IS NOT NULL
        )
        SELECT stratum, arm, unit, sum(y) AS m, count(*)::DOUBLE AS d
        FROM labelled GROUP BY ALL
        """,
        names,
    )
    try:
        rows = con.execute(
            f"""
            SELECT stratum, arm, count(*), sum(m), sum(m * m), sum(d), sum(d * d), sum(m * d)
            FROM {_UNITS} GROUP BY ALL
            """
        ).fetchall()
        cells: dict[tuple[int, str], RatioStatistic] = {
            (int(r[0]), r[1]): RatioStatistic(int(r[2]), *(float(v) for v in r[3:])) for r in rows
        }
        empty = RatioStatistic(0, 0.0, 0.0, 0.0, 0.0, 0.0)
        strata = tuple(
            (cells.get((i, "champion"), empty), cells.get((i, "challenger"), empty))
            for i in range(len(bounds))
        )
        influence = _influence(con, strata)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {_UNITS}")
    crossed = con.execute(
        f"""
        SELECT count(*), count(*) FILTER (WHERE same_stratum) FROM (
            SELECT unit_id, count(DISTINCT arm) = 2 AS both_arms,
                   bool_or(n_arms_in_stratum = 2) AS same_stratum
            FROM (
                SELECT r.unit_id, r.arm,
                       count(DISTINCT r.arm) OVER (PARTITION BY r.unit_id, {stratum}) AS
                           n_arms_in_stratum
                FROM {_ROWS} AS r
                WHERE r.row_index = 0 AND NOT coalesce(r.unit_random, false)
                  AND r.unit_id IS NOT NULL
            ) GROUP BY unit_id
        ) WHERE both_arms
        """,
        names,
    ).fetchone()
    holdback = plan.routed_share(plan.last_stage) < 1.0
    est = stratified_difference(strata, pseudo_units=task == "classification", clustered=influence)
    info: dict[str, Any] = {
        "estimate": est.estimate,
        "std_error": est.std_error,
        "cluster_variance": est.cluster_variance,
        "strata_used": est.strata_used,
        "strata": [
            {
                "start": bounds[i],
                "units": [a.n, b.n],
                "rows": [a.d_sum, b.d_sum],
                "concurrent": a.n > 0 and b.n > 0,
            }
            for i, (a, b) in enumerate(strata)
        ],
        "crossed_units": int(crossed[0]) if crossed else 0,
        "clustered_units": influence[1],
        "crossed_units_within_stratum": int(crossed[1]) if crossed else 0,
        "last_stage": (
            f"champion holdback of {1.0 - plan.routed_share(plan.last_stage):.1%}: harm is "
            "still tested on concurrent rows at the last stage"
            if holdback
            else "no holdback: the last stage has no concurrent champion rows, so harm is "
            "tested on the earlier stages only"
        ),
    }
    return strata, influence, info


def _influence(
    con: duckdb.DuckDBPyConnection, strata: tuple[tuple[RatioStatistic, RatioStatistic], ...]
) -> tuple[float, int]:
    """``(sum of squared unit influences, units)`` over every stratum and arm a unit has rows
    in (:func:`arbiter.stats.stratified.influence_coefficients`): the cluster-robust variance
    of the stratified difference, which counts a sticky unit's rows in several strata."""
    coefs = influence_coefficients(strata)
    params: dict[str, Any] = {}
    values = []
    for i, (c_a, r_a, c_b, r_b) in enumerate(coefs):
        for arm, c, r in (("champion", c_a, r_a), ("challenger", c_b, r_b)):
            key = f"{i}_{arm}"
            params.update({f"s{key}": i, f"a{key}": arm, f"c{key}": c, f"r{key}": r})
            values.append(f"($s{key}::INTEGER, $a{key}, $c{key}::DOUBLE, $r{key}::DOUBLE)")
    row = con.execute(
        f"""
        WITH coef(stratum, arm, c, r) AS (VALUES {", ".join(values)})
        SELECT coalesce(sum(i * i), 0), count(*) FROM (
            SELECT u.unit, sum(coef.c * (u.m - coef.r * u.d)) AS i
            FROM {_UNITS} AS u JOIN coef USING (stratum, arm)
            GROUP BY u.unit
        )
        """,
        params,
    ).fetchone()
    assert row is not None
    return float(row[0]), int(row[1])


def _metric_sql(task: str, config: ModelConfig) -> str:
    """The per-row primary metric on the join of ``r`` (rows) and ``f`` (labels)."""
    if task == "classification":
        return "(r.prediction = f.label)::DOUBLE"
    if config.decision.loss == "squared":
        return "(r.prediction_num - f.label_num) ^ 2"
    return "abs(r.prediction_num - f.label_num)"


def _stage_srm(
    con: duckdb.DuckDBPyConnection, start: float, share: float
) -> tuple[dict[str, Any], tuple[int, int] | None]:
    """Counts of the current stage's SRM check, or ``None`` when it must not run.

    Per arm: distinct unit ids of rows randomised by unit, plus the rows without a unit
    (``unit_random``), among first rows of requests that arrived after the grace window.
    """
    info: dict[str, Any] = {"stage_share": share, "window_start": start, "p_value": None}
    if share >= 1.0:
        info["skipped"] = "the stage routes everything to the challenger"
        return info, None
    rows = con.execute(
        f"""
        SELECT arm,
               count(DISTINCT unit_id) FILTER (WHERE NOT coalesce(unit_random, false)
                                                 AND unit_id IS NOT NULL),
               count(*) FILTER (WHERE coalesce(unit_random, false) OR unit_id IS NULL)
        FROM {_ROWS} WHERE row_index = 0 AND ts >= $srm_start
        GROUP BY arm
        """,
        {"srm_start": _ts(start)},
    ).fetchall()
    found = {r[0]: (int(r[1]), int(r[2])) for r in rows}
    units = {s: found.get(s, (0, 0))[0] for s in SIDES}
    random = {s: found.get(s, (0, 0))[1] for s in SIDES}
    counts = (units["champion"] + random["champion"], units["challenger"] + random["challenger"])
    info.update(units=units, random_requests=random, counts=list(counts))
    total = sum(counts)
    if min(total * (1.0 - share), total * share) < MIN_SRM_EXPECTED:
        info["skipped"] = (
            f"{total} units in the stage window: an arm expects fewer than {MIN_SRM_EXPECTED}"
        )
        return info, None
    return info, counts


def _primary_statistics(
    con: duckdb.DuckDBPyConnection, task: str, config: ModelConfig
) -> dict[str, ProportionStatistic | SampleMeanStatistic]:
    """Per-arm statistic of the primary metric on labelled, successful rows.

    Only the labels of the canary's own request ids are aggregated (latest label wins, by
    :func:`arbiter.events.query.latest_labels_sql`, the rule of the ``latest_feedback`` view,
    restricted before its ``GROUP BY``). Joining ``latest_feedback`` whole aggregates every
    label ever posted: on a million-row log whose canary holds the last 20 % of the rows,
    0.35 s against 0.07 s (the same when the canary is the whole log).
    """
    y = _metric_sql(task, config)
    latest = latest_labels_sql(
        "WHERE request_id IN (SELECT request_id FROM ok)", fields=("label", "label_num")
    )
    rows = con.execute(
        f"""
        WITH ok AS (SELECT * FROM {_ROWS} WHERE error IS NULL),
        latest AS ({latest})
        SELECT arm, count(y), coalesce(sum(y), 0), coalesce(sum(y * y), 0) FROM (
            SELECT r.arm, {y} AS y
            FROM ok AS r
            JOIN latest AS f
              ON r.request_id = f.request_id AND r.row_index = f.row_index
            WHERE f.label IS NOT NULL
        ) GROUP BY arm
        """
    ).fetchall()
    found = {r[0]: r for r in rows}
    out: dict[str, ProportionStatistic | SampleMeanStatistic] = {}
    for side in SIDES:
        n, s1, s2 = found[side][1:] if side in found else (0, 0.0, 0.0)
        if task == "classification":
            out[side] = ProportionStatistic(int(n), round(float(s1)))
        else:
            out[side] = SampleMeanStatistic(int(n), float(s1), float(s2))
    return out


def _psi(
    con: duckdb.DuckDBPyConnection,
    *,
    task: str,
    alpha: float,
    limit: float | None,
) -> dict[str, Any] | None:
    """PSI of the challenger's predictions against the champion's, with its noise threshold.

    A classifier is compared on its **predicted classes**: that is what its callers act on,
    and it catches the broken release (everything predicted negative, a swapped label map).
    Its scores are not compared: two sound models of different families (a logistic
    regression, boosted trees) have score distributions far apart (PSI above 4 on the demo
    data) while deciding alike, so a score PSI would block most genuine improvements. A
    regressor is compared on its predictions binned at the champion's deciles. ``None`` when
    an arm has no successful row yet.
    """
    base = f"{_ROWS} WHERE error IS NULL AND prediction IS NOT NULL"
    row = con.execute(
        f"""
        SELECT count(*) FILTER (WHERE arm = 'champion'), count(*) FILTER (WHERE arm = 'challenger'),
               quantile_cont(prediction_num, $qs) FILTER (WHERE arm = 'champion')
        FROM {base}
        """,
        {"qs": [k / PSI_BINS for k in range(1, PSI_BINS)]},
    ).fetchone()
    assert row is not None
    n_a, n_b, deciles = row
    if not n_a or not n_b:
        return None
    edge_params: dict[str, float] = {}
    if task != "classification" and deciles:
        edges = sorted(set(float(x) for x in deciles))
        # One bound parameter per edge ($e0, $e1, ...): names generated here, values bound.
        edge_params = {f"e{i}": e for i, e in enumerate(edges)}
        case = " ".join(f"WHEN prediction_num <= $e{i} THEN {i}" for i in range(len(edges)))
        key, basis = f"CASE {case} ELSE {len(edges)} END", "prediction_deciles"
    else:
        key, basis = "prediction", "predicted_class"
    counts = con.execute(
        f"SELECT arm, {key} AS bin, count(*) FROM {base} GROUP BY ALL", edge_params
    ).fetchall()
    bins = sorted({r[1] for r in counts}, key=str)
    index = {b: i for i, b in enumerate(bins)}
    ref, cur = np.zeros(len(bins)), np.zeros(len(bins))
    for arm, b, c in counts:
        (ref if arm == "champion" else cur)[index[b]] += c
    outcome = psi_test(ref, cur, alpha=alpha, min_psi=limit if limit is not None else 0.1)
    return {
        "value": outcome.statistic,
        "p_value": outcome.p_value,
        "noise_threshold": outcome.threshold,
        "basis": basis,
        "bins": len(bins),
        "champion_rows": int(ref.sum()),
        "challenger_rows": int(cur.sum()),
    }


def _guardrails(
    policy: DecisionPolicy,
    requests: dict[str, int],
    errors: dict[str, int],
    p99: dict[str, float],
    psi: dict[str, Any] | None,
    *,
    alpha: float,
) -> tuple[tuple[GuardrailObservation, ...], tuple[dict[str, Any], ...]]:
    """Conclusive guardrail observations for ``decide`` and one display row each."""
    observations: list[GuardrailObservation] = []
    rows: list[dict[str, Any]] = []
    for rail in policy.guardrails:
        row: dict[str, Any] = {"name": rail.name, "limit": rail.threshold, "status": "no_data"}
        obs = None
        if rail.name == ERROR_RATE and requests["challenger"]:
            # The one rule of arbiter.stats.guardrails: with no champion request there is no
            # baseline and the absolute bound alone decides (see the module docstring).
            check = check_rate(
                rail.name, errors["challenger"], requests["challenger"], rail.threshold,
                champion_events=errors["champion"], champion_n=requests["champion"],
                alpha=alpha, breach_alpha=BREACH_ALPHA,
            )  # fmt: skip
            row.update(
                (k, v) for k, v in check.to_dict().items() if k not in ("alpha", "breach_alpha")
            )
            obs = check.observation
        elif rail.name == LATENCY_P99:
            check = check_latency(
                rail.name,
                p99["challenger"],
                p99["champion"],
                rail.threshold,
                challenger_ok=requests["challenger"] - errors["challenger"],
                champion_ok=requests["champion"] - errors["champion"],
            )
            if check.status != "no_data":
                row.update(
                    challenger=check.challenger,
                    champion=check.champion,
                    limit=check.limit,
                    status=check.status,
                )
            obs = check.observation
        elif rail.name == PSI and psi is not None:
            value = psi["value"]
            status = "met"
            if value > rail.threshold:
                status = "breached" if value > psi["noise_threshold"] else "inconclusive"
            enough = MIN_PSI_ROWS_PER_BIN * psi["bins"]
            if min(psi["champion_rows"], psi["challenger_rows"]) < enough:
                status = "inconclusive"
            row.update(challenger=value, noise_threshold=psi["noise_threshold"], status=status)
            if status != "inconclusive":
                obs = GuardrailObservation(rail.name, value)
        if obs is not None:
            observations.append(obs)
        rows.append(row)
    return tuple(observations), tuple(rows)


__all__ = [
    "BREACH_ALPHA",
    "DEFAULT_POLL_INTERVAL_S",
    "MIN_PSI_ROWS_PER_BIN",
    "MIN_SRM_EXPECTED",
    "PSI",
    "PSI_BINS",
    "ArmSummary",
    "Measurement",
    "measure_checkpoint",
    "srm_window_start",
]
