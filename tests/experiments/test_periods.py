"""SRM per split period: periods from recorded changes, and the error rate by simulation.

A/A experiments whose split changes mid-way (10 % → 50 % challenger, monotonic assignment,
returning units, workers that apply the change only after a lag) are simulated at the SQL
level (``connect_tables`` with synthetic served rows). The per-period check must keep its
false-positive rate at the threshold, where the pooled check against one split fires.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from arbiter.analysis.periods import (
    PeriodSRMResult,
    split_periods,
    srm_with_periods,
)
from arbiter.events.schema import FEEDBACK_SCHEMA, PREDICTIONS_SCHEMA
from arbiter.events.views import connect_tables
from arbiter.experiments.split_store import changes_table
from arbiter.registry.history import ExperimentChange
from arbiter.stats.srm import srm_test

T0 = 1_700_000_000.0  # epoch seconds of the experiment's start
CHANGE_AT = T0 + 1000.0
GRACE_S = 5.0


def change(ts: float, action: str, before: Any, after: Any, *, experiment: str = "m-ab",
           previous: str | None = None) -> ExperimentChange:  # fmt: skip
    return ExperimentChange(
        ts_us=int(ts * 1e6), model="m", experiment=experiment, action=action,
        shares_before=before, shares_after=after, actor="test", reason="test",
        grace_s=GRACE_S, previous_experiment=previous,
    )  # fmt: skip


def rows(changes: list[ExperimentChange]) -> list[dict[str, Any]]:
    return [{**c.to_dict(), "ts": c.ts_us / 1e6} for c in changes]


def test_periods_from_changes() -> None:
    changes = [
        change(T0 + 10, "split", {"challenger": 0.1}, {"challenger": 0.5}),
        change(T0 + 20, "stop", {"challenger": 0.5}, None),
        change(T0 + 30, "start", None, {"challenger": 0.5}),
        change(
            T0 + 40,
            "start",
            {"challenger": 0.5},
            {"challenger": 0.1},
            experiment="m-ab-2",
            previous="m-ab",
        ),
    ]
    periods = split_periods(rows(changes), "m-ab")
    assert [(p.start, p.end, p.weights["challenger"]) for p in periods] == [
        (None, T0 + 10, 0.1),
        (T0 + 10, T0 + 20, 0.5),
        (T0 + 30, T0 + 40, 0.5),
    ]
    assert periods[1].weights == {"champion": 0.5, "challenger": 0.5}
    assert periods[1].grace_s == GRACE_S and periods[0].grace_s == 0.0
    fresh = split_periods(rows(changes), "m-ab-2")  # started under a new name: one period
    assert [(p.start, p.end, p.weights["challenger"]) for p in fresh] == [(T0 + 40, None, 0.1)]
    assert split_periods(rows(changes), "other") == []


def _predictions(
    unit: np.ndarray, ts: np.ndarray, arm: np.ndarray, experiment: str = "m-ab"
) -> pa.Table:
    n = len(unit)
    cols: dict[str, Any] = {
        "request_id": pa.array([f"r{i}" for i in range(n)]),
        "row_index": pa.array(np.zeros(n, np.int32)),
        "ts": pa.array((ts * 1e6).astype(np.int64), PREDICTIONS_SCHEMA.field("ts").type),
        "model": pa.array(["m"] * n),
        "experiment": pa.array([experiment] * n),
        "strategy": pa.array(["ab"] * n),
        "unit_id": pa.array([f"u{u}" for u in unit]),
        "unit_random": pa.array(np.zeros(n, bool)),
        "arm": pa.array(arm),
        "role": pa.array(["served"] * n),
        "forced": pa.array(np.zeros(n, bool)),
    }
    arrays = [cols.get(f.name, pa.nulls(n, f.type)) for f in PREDICTIONS_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=PREDICTIONS_SCHEMA)


def simulate(rng: np.random.Generator, units: int = 1500, lag_fraction: float = 0.5,
             late_share: float = 0.5, experiment: str = "m-ab",
             ) -> tuple[pa.Table, tuple[int, int]]:  # fmt: skip
    """A/A with a change 10 % → 50 % at CHANGE_AT: each unit arrives uniformly over
    [T0, T0 + 2000 s), half of them come back once later. Its bucket u ~ U(0, 1) is fixed
    (sticky); a request goes to the challenger when u < the share its worker applies. Within
    the grace window after the change, ``lag_fraction`` of requests still see the old split.
    ``late_share`` is the share the workers really apply after the change (0.5 = healthy).
    Returns the rows and the pooled (champion, challenger) unit counts."""
    u = rng.random(units)
    first = T0 + rng.random(units) * 2000.0
    back = rng.random(units) < 0.5
    again = first + rng.random(units) * (T0 + 2000.0 - first)
    unit = np.concatenate([np.arange(units), np.arange(units)[back]])
    ts = np.concatenate([first, again[back]])
    bucket = u[unit]
    old = ts < CHANGE_AT
    lag = (ts >= CHANGE_AT) & (ts < CHANGE_AT + GRACE_S) & (rng.random(len(ts)) < lag_fraction)
    share = np.where(old | lag, 0.1, late_share)
    arm = np.where(bucket < share, "challenger", "champion")
    first_arm = arm[:units]
    pooled = (int((first_arm == "champion").sum()), int((first_arm == "challenger").sum()))
    return _predictions(unit, ts, arm, experiment), pooled


def _analyse(table: pa.Table, threshold: float) -> PeriodSRMResult:
    con = connect_tables(table, FEEDBACK_SCHEMA.empty_table())
    con.register("experiment_changes", changes_table(
        [change(CHANGE_AT, "split", {"challenger": 0.1}, {"challenger": 0.5})]))  # fmt: skip
    notes: list[str] = []
    result = srm_with_periods(con, "m", "m-ab", None, ("champion", "challenger"), threshold,
                              notes)  # fmt: skip
    assert isinstance(result, PeriodSRMResult) and "per period" in notes[0]
    return result


def test_period_srm_equals_scipy_per_period_and_counts_crossed_units() -> None:
    rng = np.random.default_rng(7)
    table, _ = simulate(rng, units=3000)
    result = _analyse(table, 0.001)
    df = table.to_pandas()
    df["t"] = df["ts"].astype("int64") / 1e6
    first = df.sort_values("t").groupby("unit_id").first()
    expected_chi2 = 0.0
    for period, (lo, hi, share) in enumerate(
        [(-math.inf, CHANGE_AT, 0.1), (CHANGE_AT + GRACE_S, math.inf, 0.5)]
    ):
        sel = first[(first.t >= lo) & (first.t < hi)]
        obs = [(sel.arm == "champion").sum(), (sel.arm == "challenger").sum()]
        ref = stats.chisquare(obs, np.array([1 - share, share]) * sum(obs))
        assert result.periods[period]["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
        assert result.periods[period]["observed"] == {"champion": obs[0], "challenger": obs[1]}
        expected_chi2 += ref.statistic
    assert result.statistic == pytest.approx(expected_chi2, rel=1e-9)
    assert result.p_value == pytest.approx(stats.chi2.sf(expected_chi2, 2), rel=1e-9)
    in_grace = ((first.t >= CHANGE_AT) & (first.t < CHANGE_AT + GRACE_S)).sum()
    assert result.grace_units == in_grace
    crossed = (df.groupby("unit_id").arm.nunique() > 1).sum()
    assert result.crossed_units == crossed > 0
    assert result.to_dict()["crossed_units"] == crossed


@pytest.mark.parametrize(
    "runs", [pytest.param(40, id="reduced"), pytest.param(200, id="full", marks=pytest.mark.slow)]
)
def test_per_period_srm_does_not_fire_falsely_while_the_pooled_one_does(runs: int) -> None:
    """A/A experiments with a mid-way split change (200 in the slow run, about 25 s here;
    40 by default): the per-period check fires at most alpha + 3 SE of the time; the pooled
    check against the final split nearly always."""
    alpha = 0.05
    rng = np.random.default_rng(2026)
    tables, pooled = [], []
    for k in range(runs):  # every run an experiment of its own in one log
        table, counts = simulate(rng, units=600, experiment=f"m-ab-{k}")
        tables.append(table)
        pooled.append(counts)
    con = connect_tables(pa.concat_tables(tables), FEEDBACK_SCHEMA.empty_table())
    con.register("experiment_changes", changes_table([
        change(CHANGE_AT, "split", {"challenger": 0.1}, {"challenger": 0.5},
               experiment=f"m-ab-{k}") for k in range(runs)]))  # fmt: skip
    fired = sum(
        srm_with_periods(
            con, "m", f"m-ab-{k}", None, ("champion", "challenger"), alpha, []
        ).mismatch
        for k in range(runs)
    )
    pooled_fired = sum(srm_test(c, (0.5, 0.5), threshold=alpha).mismatch for c in pooled)
    bound = alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)
    assert fired / runs <= bound, fired
    assert pooled_fired / runs > 0.9, pooled_fired


def test_a_broken_split_after_the_change_is_detected() -> None:
    """Workers that apply 40 % instead of 50 % after the change: the per-period check fires."""
    rng = np.random.default_rng(3)
    table, _ = simulate(rng, units=6000, late_share=0.4)
    result = _analyse(table, 0.001)
    assert result.mismatch
    assert result.periods[1]["p_value"] < 1e-6 < result.periods[0]["p_value"]


def _labelled(table: pa.Table, rng: np.random.Generator) -> tuple[pa.Table, pa.Table]:
    """Predictions ``0``/``1`` and a label for every row, both arms equally accurate (A/A)."""
    n = table.num_rows
    pred = rng.integers(0, 2, n)
    label = np.where(rng.random(n) < 0.8, pred, 1 - pred)
    table = table.set_column(
        table.schema.get_field_index("prediction"), "prediction", pa.array(pred.astype(str))
    )
    table = table.set_column(
        table.schema.get_field_index("prediction_num"), "prediction_num", pa.array(pred * 1.0)
    )
    feedback = pa.table(
        {
            "request_id": table["request_id"],
            "row_index": table["row_index"],
            "ts": table["ts"],
            "label": pa.array(label.astype(str)),
            "label_num": pa.array(label * 1.0),
        },
        schema=FEEDBACK_SCHEMA,
    )
    return table, feedback


def test_the_ab_analysis_tests_srm_per_period_and_leaves_crossed_units_out(tmp_path: Any) -> None:
    from rich.console import Console

    from arbiter.analysis import analyze_experiment
    from arbiter.config import ModelConfig
    from arbiter.report.html import write_html
    from arbiter.report.terminal import print_analysis

    rng = np.random.default_rng(11)
    table, _ = simulate(rng, units=4000)
    table, feedback = _labelled(table, rng)
    config = ModelConfig.model_validate(
        {"experiment": {"strategy": "ab", "name": "m-ab", "challenger_share": 0.1}}
    )
    # Without the recorded change: the pooled check against the configured 10 % fires.
    con = connect_tables(table, feedback)
    pooled = analyze_experiment(con, "m", "m-ab", model_config=config)
    assert pooled.srm.mismatch and pooled.verdict.decision == "continue"
    assert "per period" not in " ".join(pooled.notes)

    con.register("experiment_changes", changes_table(
        [change(CHANGE_AT, "split", {"challenger": 0.1}, {"challenger": 0.5})]))  # fmt: skip
    result = analyze_experiment(con, "m", "m-ab", model_config=config)
    out = result.to_dict()
    assert out["srm"]["method"].startswith("Pearson chi-square per split period")
    assert not out["srm"]["mismatch"] and len(out["srm"]["periods"]) == 2
    srm = [r for r in result.verdict.reasons if r.name == "srm"]
    assert len(srm) == 1 and srm[0].met and "per split period" in srm[0].detail
    # the quality metric leaves out the units served by both arms (pandas reference)
    df = table.to_pandas()
    crossed = df.groupby("unit_id").arm.nunique()
    crossed = set(crossed[crossed > 1].index)
    assert out["srm"]["crossed_units"] == len(crossed) > 0
    kept = df[~df.unit_id.isin(crossed)]
    for arm in ("champion", "challenger"):
        assert result.arms[arm]["labelled"] == (kept.arm == arm).sum()
        assert result.arms[arm]["labelled_units"] == kept[kept.arm == arm].unit_id.nunique()
    console = Console(record=True, width=140)
    print_analysis(console, result)
    assert "per period" in console.export_text()
    assert write_html([result], tmp_path / "r.html", model="m").exists()


def test_the_multiarm_analysis_tests_srm_per_period_and_renders(tmp_path: Any) -> None:
    from rich.console import Console

    from arbiter.analysis import analyze_experiment
    from arbiter.config import ModelConfig
    from arbiter.report.html import write_html
    from arbiter.report.terminal import print_analysis

    rng = np.random.default_rng(12)
    table, _ = simulate(rng, units=3000)
    table, feedback = _labelled(table, rng)
    config = ModelConfig.model_validate(  # a challenger list: the k-arm analysis
        {
            "experiment": {
                "strategy": "ab",
                "name": "m-ab",
                "challengers": [{"alias": "challenger", "share": 0.1}],
            }
        }
    )
    con = connect_tables(table, feedback)
    con.register("experiment_changes", changes_table(
        [change(CHANGE_AT, "split", {"challenger": 0.1}, {"challenger": 0.5})]))  # fmt: skip
    result = analyze_experiment(con, "m", "m-ab", model_config=config)
    out = result.to_dict()
    assert out["kind"] == "multiarm"
    assert isinstance(result.srm, PeriodSRMResult) and not result.srm.mismatch
    assert out["srm"]["crossed_units"] > 0 and len(out["srm"]["periods"]) == 2
    console = Console(record=True, width=140)
    print_analysis(console, result)
    assert "SRM" in console.export_text()
    assert write_html([result], tmp_path / "r.html", model="m").exists()
