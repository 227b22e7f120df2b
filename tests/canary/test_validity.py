"""Reduced version of benchmarks/validity_canary.py: the canary's false-rollback rate through
the real decide → from_verdict → advance path holds alpha (issue 15). Full size: -m slow."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "validity_canary.py"


@pytest.fixture(scope="module")
def sim() -> ModuleType:
    spec = importlib.util.spec_from_file_location("validity_canary", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _within(row: dict[str, object]) -> bool:
    nominal = float(row["nominal"])  # type: ignore[arg-type]
    runs = int(row["runs"])  # type: ignore[call-overload]
    return float(row["rate"]) <= nominal + 3 * math.sqrt(nominal * (1 - nominal) / runs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "runs"),
    [
        ("identical, i.i.d. rows", 200),
        ("identical, drift -1.2 pt", 200),
        ("identical, repeating users (Pareto 1.2)", 120),
    ],
)
def test_identical_challenger_is_rarely_rolled_back(sim: ModuleType, name: str, runs: int) -> None:
    scenario = next(s for s in sim.SCENARIOS if s.name == name)
    row = sim.run_scenario(scenario, runs, seed=101)
    assert row["measure"] == "rollback" and _within(row), row
    assert row["promoted"] >= 0.8  # and the canaries do end


def test_max_harm_blocks_a_worse_challenger(sim: ModuleType) -> None:
    worse = next(s for s in sim.SCENARIOS if s.max_harm is not None and s.effect < 0)
    row = sim.run_scenario(worse, 100, seed=102)
    assert row["measure"] == "promote" and _within(row), row


def test_run_scenarios_shape(sim: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim, "SCENARIOS", sim.SCENARIOS[:1])
    (row,) = sim.run_scenarios(2, 0)
    assert {"name", "runs", "rate", "se", "nominal"} <= set(row)
    assert row["runs"] == 2 and 0.0 <= row["rate"] <= 1.0


@pytest.mark.slow
def test_full_size_validity_table(sim: ModuleType) -> None:
    rows = sim.run_scenarios(1000, 15)
    for row in rows:
        if row["nominal"] is not None:
            assert _within(row), row
