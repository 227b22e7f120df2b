"""The dashboard's live aggregates against an independent pandas computation on the same log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from arbiter.analysis.live import MAX_CLASSES, recent_traffic, shadow_pairs
from arbiter.events import EventStore
from tests.canary.conftest import write_events

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _log(root: Path) -> pd.DataFrame:
    """Served rows over the last two minutes (two arms, some errors) and shadow copies."""
    rng = np.random.default_rng(3)
    n = 400
    ages = rng.uniform(0, 120, n)  # seconds before NOW
    arm = rng.choice(["champion", "challenger"], n, p=[0.7, 0.3])
    frame = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "ts": [int((NOW - timedelta(seconds=float(a))).timestamp() * 1e6) for a in ages],
            "model": "fraud",
            "experiment": "fraud-shadow",
            "arm": arm,
            "version": np.where(arm == "champion", "1", "2"),
            "latency_ms": rng.lognormal(0.0, 0.5, n),
            "error": np.where(rng.uniform(size=n) < 0.05, "boom", None),
            "prediction": rng.choice(["0", "1", "2"], n, p=[0.6, 0.3, 0.1]),
            "role": "served",
            "strategy": "shadow",
        }
    )
    shadow = frame.sample(200, random_state=1).assign(
        role="shadow", arm="challenger", version="2", error=None,
        prediction=lambda f: np.where(rng.uniform(size=len(f)) < 0.8, f["prediction"], "1"),
    )  # fmt: skip
    both = pd.concat([frame, shadow], ignore_index=True)
    write_events(root, {c: both[c].tolist() for c in both.columns})
    return both


def test_recent_traffic_equals_pandas(tmp_path: Path) -> None:
    log = _log(tmp_path)
    with EventStore(tmp_path).connect() as con:
        got = {r["arm"]: r for r in recent_traffic(con, "fraud", window_s=60.0, now=NOW)}
    served = log[(log.role == "served")]
    start = int((NOW - timedelta(seconds=60)).timestamp() * 1e6)
    recent = served[served.ts >= start]
    assert set(got) == set(recent.arm)
    for arm, rows in recent.groupby("arm"):
        r = got[arm]
        assert r["requests"] == len(rows)
        assert r["rate_per_s"] == pytest.approx(len(rows) / 60.0)
        assert r["error_rate"] == pytest.approx(rows.error.notna().mean())
        ok = rows[rows.error.isna()].latency_ms
        assert r["latency_p50_ms"] == pytest.approx(np.quantile(ok, 0.5), rel=1e-9)
        assert r["latency_p99_ms"] == pytest.approx(np.quantile(ok, 0.99), rel=1e-9)


def test_shadow_pairs_equal_pandas(tmp_path: Path) -> None:
    log = _log(tmp_path)
    with EventStore(tmp_path).connect() as con:
        got = shadow_pairs(con, "fraud", "fraud-shadow")
    served = log[(log.role == "served") & log.error.isna()]
    shadow = log[log.role == "shadow"]
    pairs = served.merge(shadow, on="request_id", suffixes=("_a", "_b"))
    expected = pd.crosstab(pairs.prediction_a, pairs.prediction_b)
    labels = sorted(set(pairs.prediction_a) | set(pairs.prediction_b))
    expected = expected.reindex(index=labels, columns=labels, fill_value=0)
    assert got["labels"] == labels and len(labels) <= MAX_CLASSES
    assert got["matrix"] == expected.to_numpy().tolist()
    assert got["pairs"] == len(pairs)
    assert got["distribution"]["champion"] == expected.sum(axis=1).tolist()
    assert got["distribution"]["challenger"] == expected.sum(axis=0).tolist()
