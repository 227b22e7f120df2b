"""Error rates of decisions on a business metric, simulated at the SQL level.

Each run is an event log built with :func:`arbiter.events.views.connect_tables` (served rows
and purchase outcomes), analysed through :func:`arbiter.analysis.metrics.metric_statistics`
and :func:`arbiter.stats.verdict.decide`, as ``arbiter analyze`` does:

* A/A with sequential looks (the analysis end moved over the experiment): the share of runs
  that ever promote or roll back stays at or below ``alpha``;
* a +2-point conversion lift is detected with the power
  :func:`arbiter.stats.power.sample_size_proportions` promised for the sample it sized.

Reduced in the default suite; full size behind ``@pytest.mark.slow``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from arbiter.analysis.metrics import metric_statistics, metric_statistics_at
from arbiter.events.query import Scope
from arbiter.stats.power import sample_size_proportions
from arbiter.stats.sequential import SequentialConfig
from arbiter.stats.verdict import ArmObservations, DecisionPolicy, decide

from .metrics_synth import (
    DAY_US,
    T0_US,
    connect,
    model_config,
    outcomes_table,
    predictions_table,
    swap,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CONFIG = model_config({"conversion": {"event": "purchase", "aggregate": "any", "window": "2d"}})


def _log(rng: np.random.Generator, n_units: int, p_a: float, p_b: float):  # type: ignore[no-untyped-def]
    """One experiment's (predictions, outcomes).

    Units arrive uniformly over 10 days, each arm with probability 1/2; 30 % come back (a
    second served row); a converter buys 1-3 times within the 2-day window. Noise the metric
    must ignore: purchases before exposure and after the window.
    """
    unit = np.arange(n_units)
    arm = np.where(rng.random(n_units) < 0.5, "champion", "challenger")
    first = T0_US + rng.integers(0, 10 * DAY_US, n_units)
    again = rng.random(n_units) < 0.3
    p_ts = np.concatenate([first, first[again] + rng.integers(1, DAY_US, again.sum())])
    converts = rng.random(n_units) < np.where(arm == "challenger", p_b, p_a)
    buys = rng.integers(1, 4, n_units) * converts
    noise = rng.integers(0, n_units, n_units // 10)
    o_unit = np.concatenate([np.repeat(unit, buys), noise, noise])
    o_ts = np.concatenate(
        [
            np.repeat(first, buys) + rng.integers(0, 2 * DAY_US - 1, buys.sum()),
            first[noise] - rng.integers(1, DAY_US, noise.size),
            first[noise] + 3 * DAY_US,
        ]
    )
    return (
        predictions_table(
            np.concatenate([unit, unit[again]]), np.concatenate([arm, arm[again]]), p_ts
        ),
        outcomes_table(o_unit, np.full(o_unit.size, "purchase"), np.ones(o_unit.size), o_ts),
    )


def _runs(rng: np.random.Generator, runs: int, n_units: int, p_a: float, p_b: float):  # type: ignore[no-untyped-def]
    """Yield one connection per run: the same DuckDB connection with the run's log swapped in."""
    con = connect(*_log(rng, n_units, p_a, p_b))
    try:
        for r in range(runs):
            if r:
                swap(con, *_log(rng, n_units, p_a, p_b))
            yield con
    finally:
        con.close()


def _decisions(con, experiment: str, policy: DecisionPolicy, looks: int) -> list[str]:  # type: ignore[no-untyped-def]
    """The verdict at each of ``looks`` evenly spaced analysis ends (one query for all)."""
    ends = [
        EPOCH + timedelta(microseconds=T0_US + k * (12 * DAY_US) // looks)
        for k in range(1, looks + 1)
    ]
    series = metric_statistics_at(
        con, Scope("m", experiment), CONFIG, ends, arms=("champion", "challenger")
    )
    out = []
    for data in series:
        a, b = data["conversion"].stats["champion"], data["conversion"].stats["challenger"]
        verdict = decide(ArmObservations(a, b, assignment_counts=(a.n, b.n)), policy)
        out.append(verdict.decision)
    return out


def _aa(runs: int, looks: int, n_units: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    policy = DecisionPolicy(
        metric_kind="mean",
        sequential=True,
        sequential_config=SequentialConfig(target_sample_size=n_units),
        min_sample_per_arm=100,
    )
    false = 0
    for con in _runs(rng, runs, n_units, 0.10, 0.10):
        decisions = _decisions(con, "exp", policy, looks)
        false += any(d in ("promote", "rollback") for d in decisions)
    return false / runs


def _power(runs: int, seed: int) -> tuple[float, float]:
    """Detection rate of +2 points at the fixed-horizon sample the calculator sized."""
    plan = sample_size_proportions(0.10, 0.02, alpha=0.05, power=0.8)
    n_units = 2 * plan.n_per_arm
    rng = np.random.default_rng(seed)
    policy = DecisionPolicy(metric_kind="mean", sequential=False, min_sample_per_arm=100)
    hits = 0
    for con in _runs(rng, runs, n_units, 0.10, 0.12):
        data = metric_statistics(con, Scope("m", "exp"), CONFIG, "conversion")
        a, b = data.stats["champion"], data.stats["challenger"]
        verdict = decide(ArmObservations(a, b, assignment_counts=(a.n, b.n)), policy)
        hits += verdict.decision == "promote"
    return hits / runs, plan.power


def test_aa_sequential_false_positive_rate_reduced() -> None:
    rate = _aa(runs=200, looks=10, n_units=800, seed=1)
    assert rate <= 0.05


@pytest.mark.slow
def test_aa_sequential_false_positive_rate_full() -> None:
    rate = _aa(runs=2000, looks=20, n_units=4000, seed=2)
    assert rate <= 0.05


def test_conversion_lift_power_reduced() -> None:
    runs = 100
    rate, promised = _power(runs, seed=3)
    # ±3 points in the full run; here 3 standard errors of a 100-run rate (0.12).
    assert abs(rate - promised) <= max(0.03, 3 * np.sqrt(promised * (1 - promised) / runs))


@pytest.mark.slow
def test_conversion_lift_power_full() -> None:
    rate, promised = _power(2000, seed=4)
    assert abs(rate - promised) <= 0.03
