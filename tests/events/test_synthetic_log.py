"""The benchmarks' synthetic event log (benchmarks/synthetic_log.py) at a reduced size.

The analysis benchmarks (analysis.py, analysis_engines.py, metrics.py) trust that the log it
writes is a real store's log (the gateway's columns, segment names the store lists) with the
content they describe (sticky 50/50 units, shadow pairs, labels for a share of the rows, a
challenger that is better): checked here on tens of thousands of rows instead of 100 M.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pyarrow.parquet as pq
import pytest
from scipy import stats

from arbiter.analysis import analyze_model
from arbiter.events import FEEDBACK_SCHEMA, PREDICTIONS_SCHEMA, EventStore
from arbiter.events.segments import is_segment

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "synthetic_log.py"


@pytest.fixture(scope="module")
def synthetic_log() -> ModuleType:
    spec = importlib.util.spec_from_file_location("synthetic_log", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _binomial_ok(successes: int, n: int, p: float) -> bool:
    """Whether ``successes`` of ``n`` is plausible at rate ``p`` (two-sided, alpha 1e-6)."""
    return stats.binomtest(successes, n, p).pvalue > 1e-6


def test_segments_have_the_store_schema_and_names(synthetic_log: ModuleType, tmp_path) -> None:
    store = synthetic_log.generate(tmp_path, "ab", 30_000, 3, 0.5, workers=2)
    for table, schema in (("predictions", PREDICTIONS_SCHEMA), ("feedback", FEEDBACK_SCHEMA)):
        files = sorted(store.table_dir(table).iterdir())
        assert files == store.segments(table)  # no temporary left, every file listed
        assert all(is_segment(f.name) for f in files)
        assert {pq.read_schema(f).remove_metadata() for f in files} == {schema}
    assert len(store.segments("predictions")) == 3
    with store.connect() as con:
        rows, units, requests, max_arms = con.execute(
            "SELECT count(*), count(DISTINCT unit_id), count(DISTINCT request_id), "
            "(SELECT max(n) FROM (SELECT count(DISTINCT arm) AS n FROM predictions "
            " GROUP BY unit_id)) FROM predictions"
        ).fetchone()
        challenger, labelled, positive = con.execute(
            "SELECT count(*) FILTER (arm = 'challenger'), count(label), "
            "count(*) FILTER (label = '1') FROM labeled"
        ).fetchone()
    assert (rows, requests) == (30_000, 30_000)
    assert max_arms == 1  # sticky: a unit sees one arm
    assert 5_000 < units <= 6_000  # about five requests per user
    assert _binomial_ok(challenger, rows, 0.5)
    assert _binomial_ok(labelled, rows, 0.5)
    assert _binomial_ok(positive, labelled, 0.1)


def test_the_log_does_not_depend_on_the_number_of_workers(
    synthetic_log: ModuleType, tmp_path
) -> None:
    tables = []
    for workers in (1, 3):
        store = synthetic_log.generate(
            tmp_path / str(workers), "shadow", 20_000, 4, 0.3, workers=workers
        )
        with store.connect() as con:
            tables.append(
                con.execute(
                    "SELECT * EXCLUDE (label_ts) FROM all_labeled ORDER BY request_id, role"
                ).fetchall()
            )
    assert tables[0] == tables[1]


def test_shadow_rows_pair_with_the_served_rows(synthetic_log: ModuleType, tmp_path) -> None:
    store = synthetic_log.generate(tmp_path, "shadow", 20_000, 2, 0.5)
    with store.connect() as con:
        served, shadow, pairs, labels, labelled_pairs = con.execute(
            "SELECT (SELECT count(*) FROM served), (SELECT count(*) FROM shadowed), "
            "(SELECT count(*) FROM served AS s JOIN shadowed AS h USING (request_id, row_index) "
            " WHERE s.ts = h.ts AND s.unit_id = h.unit_id AND s.features = h.features "
            " AND s.alias = 'champion' AND h.alias = 'challenger'), "
            "(SELECT count(*) FROM feedback), "
            "(SELECT count(*) FROM feedback JOIN served USING (request_id, row_index) "
            " JOIN shadowed USING (request_id, row_index))"
        ).fetchone()
    assert served == shadow == pairs == 10_000
    assert labelled_pairs == labels  # a label is the truth of a request, both rows' truth
    assert _binomial_ok(labels, served, 0.5)


def test_analyze_finds_the_better_challenger(synthetic_log: ModuleType, tmp_path) -> None:
    store: EventStore = synthetic_log.generate(tmp_path, "ab", 200_000, 2, 0.5)
    with store.connect() as con:
        (analysis,) = analyze_model(con, "fraud")
    assert analysis.to_dict()["decision"] == "promote"
