"""Reduced version of benchmarks/canary_sim_pure.py: the four scenarios, few runs each."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "canary_sim_pure.py"


@pytest.fixture(scope="module")
def sim() -> ModuleType:
    spec = importlib.util.spec_from_file_location("canary_sim", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows(sim: ModuleType) -> list[dict[str, object]]:
    return sim.run_all(runs=8, null_runs=40, seed=7, label_delay=6000)


def test_healthy_better_challenger_is_promoted(rows: list[dict]) -> None:
    healthy = rows[0]
    assert healthy["promoted"] == 1.0
    assert healthy["final_stage_counts"] == {"4": 8}


def test_erroring_challenger_is_rolled_back_at_the_first_stage(rows: list[dict]) -> None:
    erroring = rows[1]
    assert erroring["rolled_back_guardrail"] == 1.0
    assert erroring["final_stage_counts"] == {"0": 8}
    assert erroring["challenger_requests_p10_p50_p90"][2] < 100


def test_worse_challenger_is_rolled_back_once_labels_arrive(rows: list[dict]) -> None:
    worse = rows[2]
    assert worse["rolled_back_quality"] == 1.0 and worse["promoted"] == 0.0
    # Labels lag 6,000 requests: the harm cannot be seen in the first five intervals.
    assert worse["requests_p10_p50_p90"][0] > 6000
    # Harm is tested at every look (always-valid, one-sided), not only after the policy's
    # minimum sample: the rollback comes once the delayed labels show it.
    assert (
        0
        < worse["challenger_labelled_p10_p50_p90"][1]
        < worse["challenger_requests_p10_p50_p90"][1]
    )


def test_identical_challenger_is_rarely_rolled_back_for_quality(rows: list[dict]) -> None:
    null = rows[3]
    assert null["rolled_back_guardrail"] == 0.0
    assert null["not_rolled_back_for_quality"] >= 0.9  # 95 % in the full run; 40 runs here
    assert null["unfinished"] == 0.0


def test_markdown_table(sim: ModuleType, rows: list[dict]) -> None:
    table = sim.markdown(rows)
    assert table.count("\n| ") == 4 and "MC SE" in table


def test_error_rate_lower_bound(sim: ModuleType) -> None:
    assert sim.error_rate_lower_bound(0, 100) == 0.0
    assert sim.error_rate_lower_bound(5, 0) == 0.0
    lb = sim.error_rate_lower_bound(20, 100)
    assert 0.1 < lb < 0.2
    # Cross-check against scipy's exact binomial test interval.
    from scipy import stats

    ci = stats.binomtest(20, 100).proportion_ci(confidence_level=0.98, method="exact")
    assert lb == pytest.approx(ci.low, rel=1e-9)
