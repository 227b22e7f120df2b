"""The metric engine against an independent per-unit computation (pandas + scipy/statsmodels).

Random logs with repeated units, units without events, late outcomes outside the window,
outcomes before exposure (excluded from the metric, used by CUPED) and crossed units
(excluded and counted).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from arbiter.analysis.metrics import (
    all_metric_statistics,
    analyze_metrics,
    metric_statistics,
    metric_statistics_at,
)
from arbiter.errors import InvalidInputError
from arbiter.events.query import Scope
from arbiter.stats.means import ratio_mean_and_variance
from arbiter.stats.sufficient import (
    RatioStatistic,
    RegressionAdjustmentStatistic,
    SampleMeanStatistic,
)

from .metrics_synth import (
    DAY_US,
    T0_US,
    connect,
    feedback_table,
    model_config,
    outcomes_table,
    predictions_table,
)

METRICS = {
    "conversion": {"event": "purchase", "aggregate": "any"},
    "revenue": {"event": "purchase", "aggregate": "sum", "window": "3d"},
    "sessions": {"event": "session", "aggregate": "count"},
    "revenue_per_session": {"ratio": ["revenue", "sessions"]},
    "chargebacks": {"event": "chargeback", "aggregate": "count", "direction": "decrease"},
}


def _random_log(seed: int, n_units: int = 600) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows = rng.integers(1, 5, n_units)  # repeated units: 1..4 served rows each
    unit = np.repeat(np.arange(n_units), rows)
    arm = np.where(unit % 2 == 0, "champion", "challenger").astype(object)
    crossed = rng.random(n_units) < 0.03  # ~3 % of units switch arm on a later row
    flip = crossed[unit] & (np.concatenate([[0], np.diff(unit)]) == 0)
    arm[flip] = np.where(arm[flip] == "champion", "challenger", "champion")
    ts = T0_US + rng.integers(0, 4 * DAY_US, unit.size)
    pred = pd.DataFrame({"unit": unit.astype(str), "arm": arm, "ts": ts})
    # Outcomes: some units none, some before exposure, some beyond the 3-day window; a few
    # units that were never exposed.
    k = 3 * n_units
    o_unit = rng.integers(0, int(n_units * 1.1), k)
    event = rng.choice(["purchase", "session", "session", "chargeback"], k)
    value = np.round(rng.exponential(20.0, k), 2)
    o_ts = T0_US + rng.integers(-5 * DAY_US, 12 * DAY_US, k)
    out = pd.DataFrame({"unit": o_unit.astype(str), "event": event, "value": value, "ts": o_ts})
    return pred, out


def _connect(pred: pd.DataFrame, out: pd.DataFrame):  # type: ignore[no-untyped-def]
    return connect(
        predictions_table(pred.unit.to_numpy(), pred.arm.to_numpy(), pred.ts.to_numpy()),
        outcomes_table(out.unit.to_numpy(), out.event.to_numpy(), out.value.to_numpy(), out.ts),
    )


def _reference(
    pred: pd.DataFrame, out: pd.DataFrame, metric: dict, end_us: int | None = None
) -> pd.DataFrame:
    """Per-unit value (y) and pre-exposure value (x) of an event metric, by pandas."""
    if end_us is not None:
        pred = pred[pred.ts <= end_us]
    exp = pred.groupby("unit").agg(
        first=("ts", "min"), n_arms=("arm", "nunique"), arm=("arm", "first")
    )
    exp = exp[exp.n_arms == 1]
    window = None
    if metric.get("window"):
        window = int(metric["window"][:-1]) * DAY_US
    o = out[out.event == metric["event"]].merge(exp, left_on="unit", right_index=True)
    post = o.ts >= o["first"]
    if window is not None:
        post &= o.ts < o["first"] + window
    if end_us is not None:
        post &= o.ts <= end_us
    pre = o.ts < o["first"]
    if window is not None:
        pre &= o.ts >= o["first"] - window

    def agg(mask: pd.Series) -> pd.Series:
        g = o[mask].groupby("unit")
        if metric["aggregate"] == "sum":
            s = g.value.sum()
        elif metric["aggregate"] == "count":
            s = g.size().astype(float)
        else:
            s = (g.size() > 0).astype(float)
        return s.reindex(exp.index, fill_value=0.0)

    return pd.DataFrame({"arm": exp.arm, "y": agg(post), "x": agg(pre)})


def _crossed(pred: pd.DataFrame) -> int:
    return int((pred.groupby("unit").arm.nunique() > 1).sum())


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", ["conversion", "revenue", "sessions", "chargebacks"])
def test_event_metric_equals_pandas_per_unit(seed: int, name: str) -> None:
    pred, out = _random_log(seed)
    cfg = model_config(METRICS)
    with _connect(pred, out) as con:
        data = metric_statistics(con, Scope("m", "exp"), cfg, name)
        cdata = metric_statistics(con, Scope("m", "exp"), cfg, name, cuped=True)
    ref = _reference(pred, out, METRICS[name])
    assert data.crossed_units == cdata.crossed_units == _crossed(pred) > 0
    assert data.direction == ("decrease" if name == "chargebacks" else "increase")
    for arm, g in ref.groupby("arm"):
        stat = data.stats[arm]
        assert isinstance(stat, SampleMeanStatistic)
        assert data.units[arm] == stat.n == len(g)
        assert stat.sum == pytest.approx(g.y.sum(), rel=1e-9, abs=1e-9)
        assert stat.sum_squares == pytest.approx((g.y**2).sum(), rel=1e-9, abs=1e-9)
        ra = cdata.stats[arm]
        assert isinstance(ra, RegressionAdjustmentStatistic)
        assert ra.x_sum == pytest.approx(g.x.sum(), rel=1e-9, abs=1e-9)
        assert ra.x_sum_squares == pytest.approx((g.x**2).sum(), rel=1e-9, abs=1e-9)
        assert ra.xy_sum_product == pytest.approx((g.x * g.y).sum(), rel=1e-9, abs=1e-9)
        assert ra.y_sum == pytest.approx(stat.sum, rel=1e-12)


def test_analysis_end_cuts_exposures_and_outcomes() -> None:
    pred, out = _random_log(7)
    end_us = T0_US + 2 * DAY_US
    end = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=end_us)
    cfg = model_config(METRICS)
    with _connect(pred, out) as con:
        data = metric_statistics(con, Scope("m", "exp", end=end), cfg, "sessions")
    ref = _reference(pred, out, METRICS["sessions"], end_us=end_us)
    for arm, g in ref.groupby("arm"):
        assert data.stats[arm].n == len(g)
        assert data.stats[arm].sum == pytest.approx(g.y.sum(), rel=1e-9)


def test_welch_and_cuped_equal_scipy_and_statsmodels() -> None:
    pred, out = _random_log(11, n_units=1500)
    cfg = model_config(METRICS, cuped=True, sequential=False)
    with _connect(pred, out) as con:
        result = analyze_metrics(con, Scope("m", "exp"), cfg).result("revenue")
    plain = analyze_metrics_plain(pred, out)
    ref = _reference(pred, out, METRICS["revenue"])
    assert result is not None and result.cuped is not None
    # CUPED estimate = OLS coefficient of the arm with the centred covariate.
    ref["treat"] = (ref.arm == "challenger").astype(float)
    ref["xc"] = ref.x - ref.x.mean()
    fit = smf.ols("y ~ treat + xc", data=ref).fit()
    assert result.estimate == pytest.approx(fit.params["treat"], rel=1e-9, abs=1e-12)
    assert result.cuped["variance_reduction"] >= 0.0
    # Without CUPED: Welch's test on the per-unit values.
    a, b = (ref.y[ref.arm == s] for s in ("champion", "challenger"))
    t = stats.ttest_ind(b, a, equal_var=False)
    assert plain.estimate == pytest.approx(b.mean() - a.mean(), rel=1e-9)
    assert plain.p_value == pytest.approx(t.pvalue, rel=1e-9)
    assert plain.arms["champion"]["mean"] == pytest.approx(a.mean(), rel=1e-9)
    assert plain.arms["challenger"]["units"] == len(b)


def analyze_metrics_plain(pred: pd.DataFrame, out: pd.DataFrame):  # type: ignore[no-untyped-def]
    cfg = model_config(METRICS, sequential=False)
    with _connect(pred, out) as con:
        return analyze_metrics(con, Scope("m", "exp"), cfg).result("revenue")


def test_ratio_metric_equals_pandas_and_bootstrap() -> None:
    pred, out = _random_log(5, n_units=3000)
    cfg = model_config(METRICS)
    with _connect(pred, out) as con:
        data = metric_statistics(con, Scope("m", "exp"), cfg, "revenue_per_session")
    m = _reference(pred, out, METRICS["revenue"])
    d = _reference(pred, out, METRICS["sessions"])
    rng = np.random.default_rng(0)
    for arm in ("champion", "challenger"):
        stat = data.stats[arm]
        assert isinstance(stat, RatioStatistic)
        mm, dd = m.y[m.arm == arm].to_numpy(), d.y[d.arm == arm].to_numpy()
        assert stat.n == mm.size
        assert stat.mean == pytest.approx(mm.sum() / dd.sum(), rel=1e-9)
        assert stat.m_d_sum_product == pytest.approx((mm * dd).sum(), rel=1e-9)
        _, var = ratio_mean_and_variance(stat)
        # Brute-force bootstrap of units within the arm: 2000 resamples.
        idx = rng.integers(0, mm.size, (2000, mm.size))
        boot = mm[idx].sum(axis=1) / dd[idx].sum(axis=1)
        # The variance of a bootstrap variance estimate from B=2000 is ~sqrt(2/B) = 3 %.
        assert var == pytest.approx(boot.var(ddof=1), rel=0.12)


def test_label_accuracy_per_unit() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    unit = rng.integers(0, 700, n)
    arm = np.where(unit % 2 == 0, "champion", "challenger")
    ts = T0_US + np.arange(n) * 1_000_000
    prediction = rng.integers(0, 2, n)
    pred = predictions_table(unit, arm, ts, prediction=prediction)
    labelled = rng.random(n) < 0.6
    label = np.where(rng.random(n) < 0.7, prediction, 1 - prediction)
    fb = feedback_table(
        [f"r{i}" for i in np.flatnonzero(labelled)],
        [str(v) for v in label[labelled]],
        ts[labelled] + 10,
    )
    cfg = model_config({"accuracy": {"label_metric": "accuracy"}})
    with connect(pred, outcomes_table([], [], [], []), fb) as con:
        data = metric_statistics(con, Scope("m", "exp"), cfg, "accuracy")
    df = pd.DataFrame(
        {"unit": unit, "arm": arm, "m": (labelled & (label == prediction)).astype(float),
         "d": labelled.astype(float)}
    )  # fmt: skip
    per_unit = df.groupby(["unit", "arm"])[["m", "d"]].sum().reset_index()
    per_unit = per_unit[per_unit.d > 0]
    for a, g in per_unit.groupby("arm"):
        stat = data.stats[a]
        assert isinstance(stat, RatioStatistic)
        assert stat.n == len(g)
        assert stat.m_sum == g.m.sum() and stat.d_sum == g.d.sum()
        assert stat.m_sum_squares == (g.m**2).sum()
        assert stat.m_d_sum_product == (g.m * g.d).sum()


@pytest.mark.parametrize("seed", [6, 7])
def test_every_label_look_equals_the_label_analysis_at_that_end(seed: int) -> None:
    """Label metrics: one query for every look (label_sums_at) = one analysis per end.

    Units repeat, some cross arms on a later row, rows arrive in random time order and only
    some are labelled, so looks differ in units, crossings and labelled rows.
    """
    rng = np.random.default_rng(seed)
    n = 2500
    unit = rng.integers(0, 500, n)
    arm = np.where(unit % 2 == 0, "champion", "challenger").astype(object)
    flip = (unit % 17 == 0) & (rng.random(n) < 0.5)  # crossed units
    arm[flip] = np.where(arm[flip] == "champion", "challenger", "champion")
    ts = T0_US + rng.integers(0, 4 * DAY_US, n)
    prediction = rng.integers(0, 2, n)
    pred = predictions_table(unit, arm, ts, prediction=prediction)
    labelled = rng.random(n) < 0.6
    label = np.where(rng.random(n) < 0.7, prediction, 1 - prediction)
    fb = feedback_table(
        [f"r{i}" for i in np.flatnonzero(labelled)],
        [str(v) for v in label[labelled]],
        ts[labelled] + 10,
    )
    cfg = model_config(
        {
            "accuracy": {"label_metric": "accuracy"},
            "precision": {"label_metric": "precision"},
            "positive_rate": {"label_metric": "class_rate"},  # reads unlabelled rows too
        }
    )
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    ends = [epoch + timedelta(microseconds=T0_US + k * DAY_US // 3) for k in range(1, 12)]
    ends.append(None)
    with connect(pred, outcomes_table([], [], [], []), fb) as con:
        looks = metric_statistics_at(con, Scope("m", "exp"), cfg, ends)
        seen_crossed = set()
        for end, look in zip(ends, looks, strict=True):
            direct = all_metric_statistics(con, Scope("m", "exp", end=end), cfg)
            for name, data in direct.items():
                got = look[name]
                seen_crossed.add(data.crossed_units)
                assert got.crossed_units == data.crossed_units, (name, end)
                assert got.units == data.units, (name, end)
                assert got.stats.keys() == data.stats.keys()
                for arm_name, stat in data.stats.items():
                    for f in stat.__dataclass_fields__:
                        assert getattr(got.stats[arm_name], f) == pytest.approx(
                            getattr(stat, f), rel=1e-9, abs=1e-9
                        ), (name, arm_name, f, end)
        assert len(seen_crossed) > 2  # the looks did see crossings happen


def test_unknown_metric_is_refused() -> None:
    pred, out = _random_log(1, n_units=20)
    with _connect(pred, out) as con, pytest.raises(InvalidInputError, match="no metric"):
        metric_statistics(con, Scope("m", "exp"), model_config(METRICS), "nope")


def test_analyze_metrics_roles_holm_and_guardrail() -> None:
    pred, out = _random_log(9, n_units=2000)
    cfg = model_config(
        METRICS,
        primary_metric="conversion",
        guardrail_metrics=[{"metric": "chargebacks", "max_increase": 0.0}],
    )
    with _connect(pred, out) as con:
        analysis = analyze_metrics(con, Scope("m", "exp"), cfg, over_time=3)
    rows = {r["name"]: r for r in analysis.to_list()}
    assert set(rows) == set(METRICS)
    assert (
        rows["conversion"]["role"] == "primary" and rows["conversion"]["adjusted_p_value"] is None
    )
    assert rows["chargebacks"]["role"] == "guardrail"
    assert rows["chargebacks"]["guardrail"]["status"] in ("met", "breached")
    secondary = [r for r in rows.values() if r["role"] == "secondary"]
    for r in secondary:
        assert r["adjusted_p_value"] >= r["p_value"]
        assert r["sequential"] and "always-valid" in r["method"]
        assert r["ci_low"] <= r["estimate"] <= r["ci_high"]
    last = rows["revenue"]["over_time"]
    assert len(last["estimate"]) == 3
    assert last["estimate"][-1] == pytest.approx(rows["revenue"]["estimate"])
    crit = analysis.guardrail_criteria()
    assert [c.name for c in crit] == ["guardrail_metric:chargebacks"]
    assert analysis.crossed_units == _crossed(pred)
    assert all(math.isfinite(r["relative_lift"]) for r in secondary)


@pytest.mark.parametrize("seed", [4, 5])
def test_every_look_equals_the_analysis_at_that_end(seed: int) -> None:
    """metric_statistics_at (one query for all looks) = metric_statistics per end."""
    pred, out = _random_log(seed)
    cfg = model_config(METRICS)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    ends = [epoch + timedelta(microseconds=T0_US + k * DAY_US // 2) for k in range(1, 9)]
    ends.append(None)  # the last look: everything logged
    with _connect(pred, out) as con:
        for cuped in (False, True):
            looks = metric_statistics_at(con, Scope("m", "exp"), cfg, ends, cuped=cuped)
            for end, look in zip(ends, looks, strict=True):
                direct = all_metric_statistics(con, Scope("m", "exp", end=end), cfg, cuped=cuped)
                for name, data in direct.items():
                    got = look[name]
                    assert got.crossed_units == data.crossed_units
                    assert got.units == data.units
                    for arm, stat in data.stats.items():
                        for f in stat.__dataclass_fields__:
                            assert getattr(got.stats[arm], f) == pytest.approx(
                                getattr(stat, f), rel=1e-9, abs=1e-9
                            ), (name, arm, f, end)
