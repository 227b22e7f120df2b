"""Canary releases by simulation: the four scenarios of the "Progressive delivery" issue.

A **pure simulation**: no server, no registry, no clock. Synthetic traffic is drawn with
numpy and fed, one analysis interval at a time, to the real decision path of the core:
:func:`arbiter.stats.verdict.decide` (``mode="canary"``, always-valid confidence sequence of
:mod:`arbiter.stats.sequential` on accuracy, an ``error_rate`` guardrail) →
:meth:`arbiter.routing.canary.CheckpointInputs.from_verdict` →
:func:`arbiter.routing.canary.advance` with the default 1 % → 5 % → 25 % → 50 % → 100 %
plan. ``benchmarks/canary_sim.py`` runs the same scenarios through a real gateway (fewer
runs: seconds each instead of microseconds).

Traffic model, per analysis interval (60 s at 20 requests/s = 1,200 requests): each request
goes to the challenger with probability equal to the current share (what a hash split of
many users gives), fails with its arm's error rate, and otherwise is correct with its arm's
accuracy. Errored requests have no prediction and get no label. A label arrives ``delay``
requests after its request (0 = immediately). At each checkpoint:

* guardrail ``error_rate`` (max 2 %) is fed the one-sided 99 % Clopper–Pearson *lower*
  bound of the challenger's error rate over the whole canary: rollback needs evidence that
  the limit is exceeded, so a handful of early requests with one unlucky error cannot roll
  back a healthy model;
* the primary metric is accuracy over the labelled requests of the whole canary, per arm,
  with the SRM check run on the served counts against the expected cumulative split.

Scenarios (champion: accuracy 0.85, error rate 0.5 %):

1. *healthy, better*: accuracy 0.87, errors 0.5 % → should ramp to 100 % and be promoted;
2. *erroring*: 20 % of requests fail, accuracy 0.85 → rolled back; after how many
   challenger requests;
3. *worse, labels delayed*: no errors on either arm, accuracy 0.80, labels ``delay``
   requests late → rolled back once enough labels arrive; after how many requests;
4. *identical*: same as the champion → must not be rolled back for quality in >= 95 % of
   runs (rate with its Monte-Carlo standard error).

Usage::

    python benchmarks/canary_sim_pure.py                 # full run
    python benchmarks/canary_sim_pure.py --quick         # fewer runs
    python benchmarks/canary_sim_pure.py --json out.json # also write JSON ("-" = stdout)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from arbiter.routing.canary import CanaryPlan, CanaryState, CheckpointInputs, advance
from arbiter.stats.sufficient import ProportionStatistic
from arbiter.stats.verdict import (
    ArmObservations,
    DecisionPolicy,
    Guardrail,
    GuardrailObservation,
    decide,
)

RATE_PER_S = 20.0
INTERVAL_S = 60.0
MAX_ERROR_RATE = 0.02
GUARDRAIL_CONFIDENCE = 0.99
MAX_CHECKPOINTS = 400  # 6.7 simulated hours: a canary still running then is "unfinished"
CHAMPION_ACCURACY = 0.85
CHAMPION_ERROR_RATE = 0.005


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    challenger_accuracy: float
    challenger_error_rate: float
    champion_error_rate: float = CHAMPION_ERROR_RATE
    label_delay: int = 0  # requests between a request and its label


@dataclass(frozen=True, slots=True)
class RunResult:
    outcome: str  # promoted | rolled_back | unfinished
    cause: str  # guardrail | quality | "" (not rolled back)
    stage: int  # stage index at the end
    requests: int  # all requests served until the decision
    challenger_requests: int
    challenger_labelled: int
    minutes: float


def scenarios(label_delay: int) -> tuple[Scenario, ...]:
    return (
        Scenario("1 healthy, better (acc 0.87)", 0.87, CHAMPION_ERROR_RATE),
        Scenario("2 erroring (20 % errors)", CHAMPION_ACCURACY, 0.20),
        Scenario(
            f"3 acc -5 pts, labels {label_delay} requests late",
            CHAMPION_ACCURACY - 0.05,
            0.0,
            champion_error_rate=0.0,
            label_delay=label_delay,
        ),
        Scenario("4 identical", CHAMPION_ACCURACY, CHAMPION_ERROR_RATE),
    )


def error_rate_lower_bound(errors: int, n: int, confidence: float = GUARDRAIL_CONFIDENCE) -> float:
    """One-sided Clopper–Pearson lower confidence bound of a binomial proportion."""
    if errors == 0 or n == 0:
        return 0.0
    return float(stats.beta.ppf(1.0 - confidence, errors, n - errors + 1))


def simulate_run(
    scenario: Scenario,
    rng: np.random.Generator,
    plan: CanaryPlan,
    *,
    requests_per_checkpoint: int = int(RATE_PER_S * INTERVAL_S),
    max_checkpoints: int = MAX_CHECKPOINTS,
) -> RunResult:
    """One canary from start to a terminal state (or ``max_checkpoints``)."""
    r = requests_per_checkpoint
    cap = max_checkpoints * r
    # Cumulative labelled counts and correct counts by request index, per arm (0 champion,
    # 1 challenger), so the labels available at any cut-off are one lookup.
    lab_n = np.zeros((2, cap + 1), dtype=np.int64)
    lab_k = np.zeros((2, cap + 1), dtype=np.int64)
    acc = np.array([CHAMPION_ACCURACY, scenario.challenger_accuracy])
    err = np.array([scenario.champion_error_rate, scenario.challenger_error_rate])
    rails = (Guardrail("error_rate", MAX_ERROR_RATE, "max"),)

    state = CanaryState.start(0.0)
    now, served = 0.0, 0
    assigned = np.zeros(2, dtype=np.int64)
    stage_start = assigned.copy()
    chal_errors, expected_chal = 0, 0.0
    for _ in range(max_checkpoints):
        share = state.share(plan)
        u = rng.random((3, r))
        arm = (u[0] < share).astype(np.int64)
        failed = u[1] < err[arm]
        correct = u[2] < acc[arm]
        for a in (0, 1):
            labelled = (arm == a) & ~failed
            lab_n[a, served + 1 : served + r + 1] = lab_n[a, served] + np.cumsum(labelled)
            lab_k[a, served + 1 : served + r + 1] = lab_k[a, served] + np.cumsum(labelled & correct)
        n_chal = int(arm.sum())
        assigned += (r - n_chal, n_chal)
        chal_errors += int((failed & (arm == 1)).sum())
        expected_chal += r * share
        served += r
        now += INTERVAL_S

        cut = max(served - scenario.label_delay, 0)
        f = min(max(expected_chal / served, 1e-9), 1.0 - 1e-9)
        policy = DecisionPolicy(
            metric_kind="proportion",
            mode="canary",
            guardrails=rails,
            traffic_weights=(1.0 - f, f),
        )
        arms = ArmObservations(
            ProportionStatistic(int(lab_n[0, cut]), int(lab_k[0, cut])),
            ProportionStatistic(int(lab_n[1, cut]), int(lab_k[1, cut])),
            guardrails=(
                GuardrailObservation(
                    "error_rate", error_rate_lower_bound(chal_errors, int(assigned[1]))
                ),
            ),
            assignment_counts=(int(assigned[0]), int(assigned[1])),
        )
        in_stage = assigned - stage_start
        inputs = CheckpointInputs.from_verdict(
            decide(arms, policy),
            champion_requests=int(in_stage[0]),
            challenger_requests=int(in_stage[1]),
        )
        state, action = advance(state, plan, inputs, now)
        if action == "advance":
            stage_start = assigned.copy()
        if state.terminal:
            break
    cause = ""
    if state.status == "rolled_back":
        first = state.history[-1].reasons[0]
        cause = "guardrail" if first.startswith("guardrail") else "quality"
    outcome = state.status if state.terminal else "unfinished"
    return RunResult(
        outcome,
        cause,
        state.stage,
        served,
        int(assigned[1]),
        int(lab_n[1, max(served - scenario.label_delay, 0)]),
        now / 60.0,
    )


def run_scenario(
    scenario: Scenario, runs: int, seed: int, plan: CanaryPlan | None = None
) -> list[RunResult]:
    plan = plan or CanaryPlan()
    children = np.random.SeedSequence(seed).spawn(runs)
    return [simulate_run(scenario, np.random.default_rng(c), plan) for c in children]


def summarise(scenario: Scenario, results: list[RunResult]) -> dict[str, Any]:
    n = len(results)
    promoted = sum(r.outcome == "promoted" for r in results)
    by_guardrail = sum(r.cause == "guardrail" for r in results)
    by_quality = sum(r.cause == "quality" for r in results)
    unfinished = sum(r.outcome == "unfinished" for r in results)
    not_quality = 1.0 - by_quality / n
    decided = [r for r in results if r.outcome != "unfinished"]

    def q(values: list[float]) -> list[float]:
        if not values:
            return [math.nan] * 3
        return [float(v) for v in np.percentile(values, [10, 50, 90])]

    return {
        "scenario": scenario.name,
        "runs": n,
        "promoted": promoted / n,
        "rolled_back_guardrail": by_guardrail / n,
        "rolled_back_quality": by_quality / n,
        "unfinished": unfinished / n,
        "not_rolled_back_for_quality": not_quality,
        "not_rolled_back_for_quality_mc_se": math.sqrt(not_quality * (1 - not_quality) / n),
        "challenger_requests_p10_p50_p90": q([r.challenger_requests for r in decided]),
        "requests_p10_p50_p90": q([r.requests for r in decided]),
        "challenger_labelled_p10_p50_p90": q([r.challenger_labelled for r in decided]),
        "minutes_p10_p50_p90": q([r.minutes for r in decided]),
        "final_stage_counts": {
            str(s): sum(r.stage == s for r in decided) for s in sorted({r.stage for r in decided})
        },
        "scenario_params": asdict(scenario),
    }


def run_all(runs: int, null_runs: int, seed: int, label_delay: int) -> list[dict[str, Any]]:
    out = []
    for i, sc in enumerate(scenarios(label_delay)):
        n = null_runs if i == 3 else runs
        out.append(summarise(sc, run_scenario(sc, n, seed + i)))
    return out


def _fmt(q: list[float], fmt: str = "{:,.0f}") -> str:
    if any(math.isnan(v) for v in q):
        return "–"
    return f"{fmt.format(q[1])} ({fmt.format(q[0])}–{fmt.format(q[2])})"


def stages(counts: dict[str, int]) -> str:
    shares = [s.share for s in CanaryPlan().stages]
    return ", ".join(f"{shares[int(k)]:.0%}: {v}" for k, v in counts.items())


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | runs | promoted | rolled back: guardrail | rolled back: quality "
        "| unfinished | challenger requests at decision, median (p10–p90) "
        "| challenger labels at decision | all requests at decision | minutes "
        "| stage at decision (runs) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['runs']} | {r['promoted']:.1%} "
            f"| {r['rolled_back_guardrail']:.1%} | {r['rolled_back_quality']:.1%} "
            f"| {r['unfinished']:.1%} | {_fmt(r['challenger_requests_p10_p50_p90'])} "
            f"| {_fmt(r['challenger_labelled_p10_p50_p90'])} "
            f"| {_fmt(r['requests_p10_p50_p90'])} | {_fmt(r['minutes_p10_p50_p90'])} "
            f"| {stages(r['final_stage_counts'])} |"
        )
    null = rows[3]
    lines.append("")
    lines.append(
        f"Identical challenger not rolled back for quality: "
        f"{null['not_rolled_back_for_quality']:.1%} "
        f"(MC SE {null['not_rolled_back_for_quality_mc_se']:.1%}, {null['runs']} runs)."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="runs of scenarios 1-3")
    parser.add_argument("--null-runs", type=int, default=1000, help="runs of scenario 4")
    parser.add_argument("--label-delay", type=int, default=6000, help="scenario 3, requests")
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--quick", action="store_true", help="50 runs, 200 null runs")
    parser.add_argument("--json", help="write results as JSON to this path ('-' = stdout)")
    args = parser.parse_args(argv)
    runs, null_runs = (50, 200) if args.quick else (args.runs, args.null_runs)
    t0 = time.perf_counter()
    rows = run_all(runs, null_runs, args.seed, args.label_delay)
    elapsed = time.perf_counter() - t0
    sys.stdout.write(markdown(rows) + "\n")
    sys.stdout.write(
        f"\n{elapsed:.1f} s simulation, Python {platform.python_version()}, "
        f"numpy {np.__version__}\n"
    )
    if args.json:
        payload = json.dumps({"seconds": elapsed, "results": rows}, indent=2)
        if args.json == "-":
            sys.stdout.write(payload + "\n")
        else:
            with open(args.json, "w", encoding="utf-8") as fh:
                fh.write(payload + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
