"""The canary's harm test reads concurrent strata, per unit: the cells measured in DuckDB
against pandas, the estimate against statsmodels OLS with stratum dummies, the variance
against statsmodels' cluster-robust covariance by unit."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from arbiter.canary import measure_checkpoint
from arbiter.config import ModelConfig
from arbiter.events import EventStore
from arbiter.routing.canary import CanaryPlan, CanaryStage, CanaryState, DecisionRecord
from tests.canary.conftest import canary_model, write_events

T0 = 1_790_000_000.0
PLAN = CanaryPlan((CanaryStage(0.2), CanaryStage(0.5), CanaryStage(1.0)), holdback=0.05)


def _log(rng: np.random.Generator, *, stage2: bool) -> pd.DataFrame:
    """300 sticky units (bucket < share: challenger), several requests each, over stages
    0 (20 %), 1 (50 %) and, when ``stage2``, 2 (the last: 95 % with the holdback). The
    accuracy drifts down over time; the challenger is identical."""
    units = 300
    bucket = rng.random(units)
    ability = rng.beta(6, 2, units)
    end = 300.0 if stage2 else 200.0
    k = rng.geometric(0.08, units)
    unit = np.repeat(np.arange(units), k)
    ts = T0 + rng.uniform(0.0, end, unit.size)
    share = np.select([ts < T0 + 100.0, ts < T0 + 200.0], [0.2, 0.5], 0.95)
    challenger = bucket[unit] < share
    p = np.clip(ability[unit] - 0.2 * (ts - T0) / end, 0.0, 1.0)
    right = rng.random(unit.size) < p
    pred = np.where(np.arange(unit.size) % 3 == 0, 1, 0)
    label = np.where(right, pred, 1 - pred)
    return pd.DataFrame(
        {
            "ts": ts,
            "unit": [f"u{u}" for u in unit],
            "arm": np.where(challenger, "challenger", "champion"),
            "pred": pred,
            "label": label,
            "y": right.astype(float),
            "stratum": np.select([ts < T0 + 100.0, ts < T0 + 200.0], [0, 1], 2),
        }
    )


def _measure(
    root: Path, df: pd.DataFrame, state: CanaryState, plan: CanaryPlan = PLAN, **canary: Any
) -> Any:
    n = len(df)
    write_events(
        root,
        {
            "request_id": [f"r{i}" for i in range(n)],
            "ts": (df.ts.to_numpy() * 1e6).astype(np.int64),
            "model": ["m"] * n,
            "experiment": ["m-canary"] * n,
            "unit_id": list(df.unit),
            "arm": list(df.arm),
            "alias": list(df.arm),
            "version": np.where(df.arm == "challenger", "2", "1").tolist(),
            "prediction": [str(v) for v in df.pred],
            "prediction_num": df.pred.astype(float).tolist(),
            "latency_ms": np.full(n, 2.0),
        },
        labels=list(df.label),
    )
    section = canary_model("challenger", max_prediction_psi=None, min_sample_per_arm=50)
    section["experiment"]["canary"].update(canary)
    con = EventStore(root).connect()
    try:
        return measure_checkpoint(
            con,
            model="m",
            experiment="m-canary",
            config=ModelConfig.model_validate(section),
            plan=plan,
            state=state,
            champion_version="1",
            challenger_version="2",
            poll_interval_s=1.0,
        )
    finally:
        con.close()


def _state(stage: int) -> CanaryState:
    history = [DecisionRecord(T0, 0, 0, "start")]
    history += [DecisionRecord(T0 + 100.0 * i, i - 1, i, "advance") for i in range(1, stage + 1)]
    return CanaryState("running", stage, T0 + 100.0 * stage, T0, stage, tuple(history))


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, pd.DataFrame]:
    df = _log(np.random.default_rng(11), stage2=True)
    return _measure(tmp_path_factory.mktemp("strata"), df, _state(2)), df


def test_strata_cells_match_pandas(measured: tuple[Any, pd.DataFrame]) -> None:
    result, df = measured
    harm = result.harm
    for s, stratum in enumerate(harm["strata"]):
        part = df[df.stratum == s]
        units = [part[part.arm == a].unit.nunique() for a in ("champion", "challenger")]
        rows = [int((part.arm == a).sum()) for a in ("champion", "challenger")]
        assert stratum["units"] == units and stratum["rows"] == rows
        assert stratum["concurrent"]  # the holdback keeps champion rows in the last stage
    assert harm["strata_used"] == 3
    arms = df.groupby("unit").arm.nunique()
    assert harm["crossed_units"] == int((arms == 2).sum()) > 0
    assert harm["clustered_units"] == df.unit.nunique()
    assert "holdback of 5.0%" in harm["last_stage"]
    assert result.expected_challenger_share == pytest.approx(0.95)


def test_estimate_and_cluster_variance_match_statsmodels(
    measured: tuple[Any, pd.DataFrame],
) -> None:
    result, df = measured
    df = df.assign(b=(df.arm == "challenger").astype(int))
    ols = smf.ols("y ~ b + C(stratum)", data=df).fit()
    assert result.harm["estimate"] == pytest.approx(ols.params["b"], rel=1e-9)
    # Saturated cell means with a covariance clustered by unit (CR0), then the estimate's
    # linear combination; the measurement uses CR1 = G / (G - 1) * CR0.
    df["cell"] = df.stratum.astype(str) + df.arm
    fit = smf.ols("y ~ C(cell) - 1", data=df).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(df.unit)[0], "use_correction": False}
    )
    counts = df.groupby(["stratum", "arm"]).size()
    w = {s: counts[s, "champion"] * counts[s, "challenger"] / counts[s].sum() for s in range(3)}
    total = sum(w.values())
    combo = np.zeros(len(fit.params))
    for i, name in enumerate(fit.params.index):
        s, arm = int(name[len("C(cell)[")]), name[len("C(cell)[0") : -1]
        combo[i] = (1 if arm == "challenger" else -1) * w[s] / total
    assert float(combo @ fit.params) == pytest.approx(ols.params["b"], rel=1e-9)
    g = df.unit.nunique()
    cr1 = float(combo @ fit.cov_params().to_numpy() @ combo) * g / (g - 1)
    assert result.harm["cluster_variance"] == pytest.approx(cr1, rel=1e-9)
    assert result.harm["std_error"] >= math.sqrt(cr1) * (1 - 1e-12)


def test_harm_criterion_names_the_concurrent_strata(measured: tuple[Any, pd.DataFrame]) -> None:
    result, _ = measured
    crit = next(c for c in result.verdict.reasons if c.name == "primary_no_harm")
    assert "msprt_fixed_tau" in crit.detail and "3 of 3 strata" in crit.detail
    assert result.verdict.decision != "rollback"  # drift over the canary is not harm
    assert result.inputs.non_inferior is None  # no max_harm configured


def test_pooled_rows_would_read_the_drift_as_harm(measured: tuple[Any, pd.DataFrame]) -> None:
    """The challenger's rows are later, so lower under the downward drift."""
    result, df = measured
    pooled = df[df.arm == "challenger"].y.mean() - df[df.arm == "champion"].y.mean()
    assert pooled < result.harm["estimate"] - 2 * result.harm["std_error"]


def test_max_harm_gates_promotion(tmp_path: Path) -> None:
    df = _log(np.random.default_rng(12), stage2=False)
    loose = _measure(tmp_path / "a", df, _state(1), max_harm=0.5)
    tight = _measure(tmp_path / "b", df, _state(1), max_harm=0.001)
    for result, shown in ((loose, True), (tight, False)):
        crit = next(c for c in result.verdict.reasons if c.name == "non_inferiority")
        assert crit.met is shown and result.inputs.non_inferior is shown
        assert result.evidence()["non_inferior"] is shown
    assert "no holdback" not in loose.harm["last_stage"]


def test_no_holdback_says_harm_is_tested_on_earlier_stages(tmp_path: Path) -> None:
    df = _log(np.random.default_rng(13), stage2=False)
    plan = CanaryPlan(PLAN.stages, holdback=0.0)
    result = _measure(tmp_path, df, _state(1), plan, holdback=0.0)
    assert result.harm["strata_used"] == 2
    assert "no holdback" in result.harm["last_stage"]
    assert "earlier stages only" in result.harm["last_stage"]
