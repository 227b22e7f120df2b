"""Exact quantiles by rank (the Spark path of arm_traffic): the rule, and the path on DuckDB.

The three-engine comparison is in test_engines.py; here the pure rule is checked against
numpy's linear (type 7) quantile, and arm_traffic's sorted path is run on DuckDB through a
connection that says it is Spark, so it must give DuckDB's native ``quantile_cont`` numbers
without asking the engine for ``quantile_cont``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from arbiter.analysis.aggregate import LATENCY_PERCENTILES, arm_traffic
from arbiter.analysis.shadow_detail import shadow_detail
from arbiter.events import EventStore
from arbiter.events.exact_quantiles import (
    interpolate,
    quantile_ranks,
    uses_sorted_quantiles,
)
from arbiter.events.schema import PREDICTIONS_SCHEMA
from arbiter.events.segments import write_segment
from arbiter.report.summary import arm_stats

LEVELS = (0.0, 0.01, 0.1, 1 / 3, 0.5, 0.95, 0.99, 1.0)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000])
def test_rule_matches_numpy_linear_quantile(n: int) -> None:
    rng = np.random.default_rng(n)
    x = np.sort(np.round(rng.gamma(2, 3, size=n), 1))  # rounded: ties
    ranks = quantile_ranks(n, LEVELS)
    assert ranks == sorted(set(ranks)) and ranks[0] == 0 and ranks[-1] == n - 1
    got = interpolate(n, LEVELS, {r: float(x[r]) for r in ranks})
    np.testing.assert_allclose(got, np.quantile(x, LEVELS, method="linear"), rtol=1e-12)


def test_no_values_give_no_quantiles() -> None:
    assert quantile_ranks(0, LEVELS) == []
    assert interpolate(0, LEVELS, {}) == ()


def test_ranks_read_are_few() -> None:
    # Two per level at most, whatever n: the rows Spark brings back are a handful.
    assert len(quantile_ranks(10**9, LATENCY_PERCENTILES)) <= 2 * len(LATENCY_PERCENTILES)


class SparkLike:
    """A DuckDB connection that reports itself as Spark's, and records the SQL it is given."""

    dialect = "spark"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.sql: list[str] = []

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        self.sql.append(sql)
        return self.con.execute(sql, params)


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    """A shadow experiment: served and shadow rows, rounded latencies and scores (ties), some
    NULL latencies, some errors (left out of the percentiles), one version with one request."""
    es = EventStore(tmp_path)
    rng = np.random.default_rng(3)
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    rows = []
    for i in range(400):
        for role in ("served", "shadow"):
            row = dict.fromkeys(PREDICTIONS_SCHEMA.names)
            score = float(np.round(rng.beta(2, 3), 2))
            row.update(
                request_id=f"r{i}", row_index=0, ts=t0 + timedelta(seconds=i), model="m",
                experiment="e", arm="champion", role=role, forced=False,
                version="1" if role == "served" else ("3" if i == 7 else "2"),
                prediction=str(int(score > 0.5)), score=score,
                latency_ms=None if i % 41 == 0 else float(np.round(rng.gamma(3, 4), 1)),
                error="boom" if i % 37 == 0 else None,
            )  # fmt: skip
            rows.append(row)
    write_segment(es.table_dir("predictions"), pa.Table.from_pylist(rows, PREDICTIONS_SCHEMA))
    return es


QUERIES: dict[str, Callable[[Any], Any]] = {
    "arm_traffic": lambda con: {k: v.to_dict() for k, v in arm_traffic(con, "m", "e").items()},
    "arm_stats": lambda con: arm_stats(con, "m", "e"),
    "shadow_detail": lambda con: shadow_detail(con, "m", "e", "classification").to_dict(),
}

PROBES: dict[str, Callable[[Any], Any]] = {
    "arm_traffic": lambda d: d["challenger"]["latency_p99_ms"],
    "arm_stats": lambda rows: next(r for r in rows if r["version"] == "3")["latency_p99_ms"],
    "shadow_detail": lambda d: d["distributions"]["challenger"]["quantiles"]["p95"],
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_sorted_path_equals_quantile_cont(store: EventStore, name: str) -> None:
    with store.connect() as con:
        native = QUERIES[name](con)
        spark_like = SparkLike(con)
        assert uses_sorted_quantiles(spark_like) and not uses_sorted_quantiles(con)
        ranked = QUERIES[name](spark_like)
    assert spark_like.sql and not any("quantile_cont" in sql for sql in spark_like.sql)
    probe = PROBES[name](native)  # a quantile the engine computed, not a missing one
    assert isinstance(probe, float) and not math.isnan(probe)
    assert_close(native, ranked)


def assert_close(a: Any, b: Any) -> None:
    """Equal structures, floats to 1e-12 (relative)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            assert_close(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), (a, b)
        for x, y in zip(a, b, strict=True):
            assert_close(x, y)
    elif isinstance(a, float):
        assert isinstance(b, float) and (a == b or math.isclose(a, b, rel_tol=1e-12)), (a, b)
    else:
        assert a == b, (a, b)
