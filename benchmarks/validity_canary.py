"""Validity of the canary's harm test by simulation (issue 15, canary part).

A **pure simulation** through the real decision path of the core, one checkpoint at a time:
:func:`arbiter.stats.verdict.decide` (``mode="canary"``, per-stage strata of per-unit
statistics, :mod:`arbiter.stats.stratified` + the fixed-``tau`` mixture of
:func:`arbiter.stats.sequential.mixture_test`) →
:meth:`arbiter.routing.canary.CheckpointInputs.from_verdict` →
:func:`arbiter.routing.canary.advance`, with the default plan (1 % → 5 % → 25 % → 50 % →
100 %, stage durations 5/10/10/15/10 min, minimum requests 100/250/500/1000/1000) and the
default 5 % champion holdback at the last stage. What ``arbiter.canary.measure`` adds on top
(the SQL that sums each unit's rows per stage) is not simulated: the strata are built here
from the simulated rows the same way.

Traffic: 10 requests/s, one checkpoint every 60 s (600 requests per look, about 65 looks
per canary), every request labelled at once, accuracy 0.85. The metric can drift linearly by
``drift`` (±1.2 points) over the planned canary duration (3,900 s). Units:

* ``iid``: every request is its own unit;
* ``users``: 3,000 users with Pareto(1.2) activity and a personal accuracy (Beta, mean 0.85,
  sd 0.1), each with a sticky bucket in [0, 1) (challenger while bucket < share, so units
  cross champion → challenger as the share grows).

Scenarios: an identical challenger (false rollback must stay ≤ alpha) and a challenger 1.5
points worse (share promoted, without and with a ``max_harm`` margin of 1 point, where
promoting it is an error bounded by alpha). ``--pooled`` adds the same null scenarios under
the previous test (all rows pooled since the start, no holdback) for comparison.

Usage::

    python benchmarks/validity_canary.py --runs 1000          # full table (a few minutes)
    python benchmarks/validity_canary.py --runs 200 --pooled  # quick, with the old test
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from arbiter.routing.canary import (
    DEFAULT_STAGES,
    CanaryPlan,
    CanaryState,
    CheckpointInputs,
    advance,
)
from arbiter.stats.stratified import influence_coefficients
from arbiter.stats.sufficient import ProportionStatistic, RatioStatistic
from arbiter.stats.verdict import ArmObservations, DecisionPolicy, decide

ALPHA = 0.05
RATE = 10.0  # requests per second
INTERVAL = 60.0  # seconds between checkpoints
BASE = 0.85
PLANNED_S = 3900.0  # planned canary length at RATE (the 1 % stage needs ~1,000 s)
MAX_LOOKS = 160
USERS = 3000
HOLDBACK = 0.05


@dataclass(frozen=True)
class Scenario:
    name: str
    effect: float = 0.0  # challenger - champion, accuracy points as a fraction
    drift: float = 0.0  # total drift of the metric over PLANNED_S
    users: bool = False
    max_harm: float | None = None
    pooled: bool = False  # the previous test: pooled rows, no strata, no holdback
    measure: str = "rollback"  # "rollback" or "promote"
    nominal: float | None = ALPHA


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("identical, i.i.d. rows"),
    Scenario("identical, repeating users (Pareto 1.2)", users=True),
    Scenario("identical, drift -1.2 pt", drift=-0.012),
    Scenario("identical, drift +1.2 pt", drift=+0.012),
    Scenario("identical, users + drift -1.2 pt", drift=-0.012, users=True),
    Scenario(
        "1.5 pt worse, drift +1.2 pt: promoted", -0.015, 0.012, measure="promote", nominal=None
    ),
    Scenario(
        "1.5 pt worse, drift -1.2 pt: promoted", -0.015, -0.012, measure="promote", nominal=None
    ),
    Scenario(
        "1.5 pt worse, drift +1.2 pt, max_harm 1 pt: promoted",
        -0.015,
        0.012,
        max_harm=0.01,
        measure="promote",
    ),
    Scenario(
        "1.5 pt worse, drift -1.2 pt, max_harm 1 pt: promoted",
        -0.015,
        -0.012,
        max_harm=0.01,
        measure="promote",
    ),
    Scenario(
        "identical, drift +1.2 pt, max_harm 1 pt: promoted (power)",
        0.0,
        0.012,
        max_harm=0.01,
        measure="promote",
        nominal=None,
    ),
)

POOLED: tuple[Scenario, ...] = tuple(
    replace(s, name=f"{s.name} [pooled, before]", pooled=True)
    for s in (*SCENARIOS[:3], SCENARIOS[5])
)


def _cell(m: np.ndarray, d: np.ndarray) -> RatioStatistic:
    """Per-unit ratio statistic of the units with rows (``d > 0``)."""
    keep = d > 0
    m, d = m[keep], d[keep]
    return RatioStatistic(
        int(keep.sum()),
        float(m.sum()),
        float((m * m).sum()),
        float(d.sum()),
        float((d * d).sum()),
        float((m * d).sum()),
    )


def _influence(strata: list[list[Any]], cells: tuple[Any, ...]) -> tuple[float, int]:
    """Squared unit influences summed over users, as ``arbiter.canary.measure`` sums them
    in SQL (:func:`arbiter.stats.stratified.influence_coefficients`)."""
    total = np.zeros(USERS)
    seen = np.zeros(USERS, dtype=bool)
    for (arm, m, d), (c_a, r_a, c_b, r_b) in zip(
        strata, influence_coefficients(cells), strict=True
    ):
        total += np.where(arm, c_b, c_a) * (m - np.where(arm, r_b, r_a) * d)
        seen |= d > 0
    return float(total @ total), int(seen.sum())


def _iid_cell(n: int, s: int) -> RatioStatistic:
    return RatioStatistic(n, float(s), float(s), float(n), float(n), float(s))


def _cells(stratum: list[Any], users: bool) -> tuple[RatioStatistic, RatioStatistic]:
    """(champion, challenger) cells of one stratum."""
    if users:
        arm, m, d = stratum
        return _cell(m[~arm], d[~arm]), _cell(m[arm], d[arm])
    n, y = stratum
    return _iid_cell(int(n[0]), int(y[0])), _iid_cell(int(n[1]), int(y[1]))


def simulate(scenario: Scenario, rng: np.random.Generator) -> str:
    """One canary: ``"rollback"``, ``"promote"`` or ``"running"`` (cap reached)."""
    plan = CanaryPlan(DEFAULT_STAGES, INTERVAL, holdback=0.0 if scenario.pooled else HOLDBACK)
    policy = DecisionPolicy(mode="canary", alpha=ALPHA, check_srm=False, max_harm=scenario.max_harm)
    state = CanaryState.start(0.0)
    per_look = int(RATE * INTERVAL)
    if scenario.users:
        activity = rng.pareto(1.2, USERS) + 1.0
        activity /= activity.sum()
        sd, mean = 0.1, BASE
        k = mean * (1 - mean) / sd**2 - 1.0
        p_user = rng.beta(mean * k, (1 - mean) * k, USERS)
        bucket = rng.random(USERS)
    # per stratum: users (arm, m, d) arrays, or (rows, right) per arm for i.i.d. rows
    strata: list[list[Any]] = []
    frozen: list[tuple[RatioStatistic, RatioStatistic]] = []  # cells of finished strata
    pooled = np.zeros((2, 2))  # arm x (n, successes)
    stage_req = np.zeros(2, dtype=np.int64)
    current = -1
    for look in range(1, MAX_LOOKS + 1):
        now = look * INTERVAL
        share = state.share(plan)
        if state.stage != current:  # a new stratum (the share changed)
            if strata:
                frozen.append(_cells(strata[-1], scenario.users))
            current = state.stage
            stage_req[:] = 0
            if scenario.users:
                strata.append([bucket < share, np.zeros(USERS), np.zeros(USERS)])
            else:
                strata.append([np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64)])
        mid = now - INTERVAL / 2
        drift = scenario.drift * min(mid / PLANNED_S, 1.0)
        cell = strata[-1]
        if scenario.users:
            arm, m_u, d_u = cell
            k_u = rng.poisson(per_look * activity)
            y_u = rng.binomial(k_u, np.clip(p_user + drift + scenario.effect * arm, 0.0, 1.0))
            m_u += y_u
            d_u += k_u
            kb, yb, kt, yt = k_u[arm].sum(), y_u[arm].sum(), k_u.sum(), y_u.sum()
            pooled += np.array([[kt - kb, yt - yb], [kb, yb]])
            stage_req += np.array([kt - kb, kb])
        else:
            p = np.array([BASE + drift, BASE + drift + scenario.effect])
            n_b = rng.binomial(per_look, share)
            n = np.array([per_look - n_b, n_b])
            y = rng.binomial(n, p)
            cell[0] += n
            cell[1] += y
            pooled += np.column_stack([n, y])
            stage_req += n
        champ = ProportionStatistic(int(pooled[0, 0]), int(pooled[0, 1]))
        chall = ProportionStatistic(int(pooled[1, 0]), int(pooled[1, 1]))
        if scenario.pooled:
            obs = ArmObservations(champ, chall)
        else:
            cells = (*frozen, _cells(cell, scenario.users))
            influence = _influence(strata, cells) if scenario.users else None
            obs = ArmObservations(champ, chall, strata=cells, strata_influence=influence)
        verdict = decide(obs, policy)
        inputs = CheckpointInputs.from_verdict(
            verdict, champion_requests=int(stage_req[0]), challenger_requests=int(stage_req[1])
        )
        state, action = advance(state, plan, inputs, now)
        if action in ("rollback", "promote"):
            return action
    return "running"


def run_scenario(scenario: Scenario, runs: int, seed: int) -> dict[str, Any]:
    """Outcome rates of ``runs`` canaries of one scenario."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    outcomes = [simulate(scenario, rng) for _ in range(runs)]
    hits = sum(o == scenario.measure for o in outcomes)
    rate = hits / runs
    return {
        "name": scenario.name,
        "runs": runs,
        "measure": scenario.measure,
        "rate": rate,
        "se": math.sqrt(rate * (1 - rate) / runs),
        "nominal": scenario.nominal,
        "rolled_back": sum(o == "rollback" for o in outcomes) / runs,
        "promoted": sum(o == "promote" for o in outcomes) / runs,
        "seconds": time.perf_counter() - t0,
    }


def run_scenarios(runs: int, seed: int, *, pooled: bool = False) -> list[dict[str, Any]]:
    """Every scenario (``name, runs, rate, se, nominal`` and more per row)."""
    chosen = SCENARIOS + (POOLED if pooled else ())
    return [run_scenario(s, runs, seed + i) for i, s in enumerate(chosen)]


_HEADER = (
    "| scenario | runs | measured | rate ± SE | nominal | rolled back | promoted |\n"
    "|---|---:|---|---:|---:|---:|---:|"
)


def _line(r: dict[str, Any]) -> str:
    nominal = "—" if r["nominal"] is None else f"≤ {r['nominal']:.2f}"
    return (
        f"| {r['name']} | {r['runs']} | {r['measure']} | {r['rate']:.3f} ± {r['se']:.3f} "
        f"| {nominal} | {r['rolled_back']:.3f} | {r['promoted']:.3f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--pooled", action="store_true", help="add the previous pooled test")
    args = parser.parse_args(argv)
    print(_HEADER, flush=True)
    chosen = SCENARIOS + (POOLED if args.pooled else ())
    for i, scenario in enumerate(chosen):  # one line as each scenario ends
        print(_line(run_scenario(scenario, args.runs, args.seed + i)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
