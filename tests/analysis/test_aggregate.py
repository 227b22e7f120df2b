"""Sufficient statistics from SQL equal a pandas computation on the same rows."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest

import arbiter.analysis
from arbiter.analysis.aggregate import aggregate_experiment, bucket_width
from arbiter.events import EventStore
from arbiter.stats.sufficient import ProportionStatistic
from tests.analysis.conftest import T0_US, write_log


def test_exported_members() -> None:
    """``__all__`` is sorted and lists exactly the public names (httpx's check)."""
    assert arbiter.analysis.__all__ == sorted(arbiter.analysis.__all__)
    public = {n for n in dir(arbiter.analysis) if not n.startswith("_")}
    modules = {n for n in public if isinstance(getattr(arbiter.analysis, n), types.ModuleType)}
    assert set(arbiter.analysis.__all__) == public - modules - {"annotations"}


@pytest.fixture
def messy(store: EventStore, rng: np.random.Generator) -> pd.DataFrame:
    """Batch requests, repeated units, errors, forced and unlabelled rows, a second model."""
    n_req = 2_000
    rows_per = rng.integers(1, 4, n_req)  # 1-3 rows per request
    req = np.repeat(np.arange(n_req), rows_per)
    n = req.size
    row_index = np.concatenate([np.arange(k) for k in rows_per]).astype(np.int32)
    arm_req = rng.choice(["champion", "challenger"], n_req, p=[0.45, 0.55])
    unit_req = rng.integers(0, 700, n_req)  # units send several requests
    failed_req = rng.random(n_req) < 0.02
    forced_req = rng.random(n_req) < 0.03
    latency_req = rng.gamma(3.0, 1.0, n_req)
    y = rng.integers(0, 3, n)  # three classes
    pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
    labelled = rng.random(n) < 0.6
    df = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in req],
            "row_index": row_index,
            "ts": T0_US + req.astype(np.int64) * 3_000_000,  # 3 s apart: ~100 min in all
            "model": np.where(req % 50 == 7, "other", "m"),
            "experiment": "m-ab",
            "strategy": "ab",
            "unit_id": [f"u{u}" for u in unit_req[req]],
            "arm": arm_req[req],
            "prediction": np.where(failed_req[req], None, pred.astype(str)),
            "prediction_num": np.where(failed_req[req], np.nan, pred.astype(float)),
            "error": np.where(failed_req[req], "boom", None),
            "forced": forced_req[req],
            "latency_ms": latency_req[req],
        }
    )
    columns = {c: df[c].to_numpy() for c in df.columns}
    columns["prediction_num"] = [None if np.isnan(v) else v for v in df["prediction_num"]]
    write_log(store, columns, np.where(labelled, y.astype(object), None))
    df["label"] = np.where(labelled, y.astype(str), None)
    return df


def test_aggregates_equal_pandas(store: EventStore, messy: pd.DataFrame) -> None:
    with store.connect() as con:
        agg = aggregate_experiment(con, "m", "m-ab")
    df = messy[(messy["model"] == "m") & ~messy["forced"]]
    requests = df[df["row_index"] == 0]
    for side, group in requests.groupby("arm"):
        traffic = agg.traffic[side]
        assert traffic.requests == len(group)
        assert traffic.units == group["unit_id"].nunique()
        assert traffic.errors == group["error"].notna().sum()
        ok = group.loc[group["error"].isna(), "latency_ms"]
        assert traffic.latency_ms(0.99) == pytest.approx(ok.quantile(0.99), rel=1e-12)
        assert traffic.latency_ms(0.5) == pytest.approx(ok.quantile(0.5), rel=1e-12)
    quality = df[df["label"].notna() & df["error"].isna()]
    for side, group in quality.groupby("arm"):
        expected = ProportionStatistic(
            len(group), int((group["prediction"] == group["label"]).sum())
        )
        assert agg.metric[side] == expected
        # The time series ends where the totals are.
        assert agg.timeseries.n[side][-1] == expected.n
        assert agg.timeseries.sums[side][-1] == expected.successes
    # Cumulative counts at each bucket end equal pandas' count of rows up to it.
    width = agg.timeseries.bucket_s
    assert width == bucket_width((df["ts"].max() - df["ts"].min()) / 1e6)
    bucket = (quality["ts"] - df["ts"].min()) // (width * 1_000_000)
    counts = quality.groupby([quality["arm"], bucket]).size()
    champion = counts["champion"].reindex(range(len(agg.timeseries.elapsed_s)), fill_value=0)
    assert list(agg.timeseries.n["champion"]) == champion.cumsum().tolist()
    # Confusion matrix of the champion equals pandas' crosstab.
    cm = next(c for c in agg.confusion if c.side == "champion")
    side = quality[quality["arm"] == "champion"]
    table = pd.crosstab(side["label"], side["prediction"]).reindex(
        index=list(cm.labels), columns=list(cm.labels), fill_value=0
    )
    assert [list(r) for r in cm.counts] == table.to_numpy().tolist()


def test_bucket_width_is_adaptive() -> None:
    assert bucket_width(30) == 1
    assert bucket_width(3600) == 60
    assert bucket_width(14 * 86400) == 21600  # 56 buckets of 6 h
    assert bucket_width(10 * 365 * 86400) > 604800
