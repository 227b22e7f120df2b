"""Reduced version of benchmarks/stats_validity.py (the full size runs with ``-m slow``)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

ALPHA = 0.05
_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "stats_validity.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stats_validity", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _check_peeking(bench: ModuleType, runs: int, seed: int) -> None:
    for metric in ("proportion", "lognormal"):
        naive, final, sequential = bench.peeking_false_positives(runs, 20, 500, seed, metric)
        bound = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
        assert sequential.rate <= bound, (metric, sequential)
        assert final.rate <= bound, (metric, final)
        # Peeking at 20 looks inflates the error rate about fourfold (~0.25): "clearly" above.
        assert naive.rate - 3 * naive.se > ALPHA, (metric, naive)


def _check_power(bench: ModuleType, runs: int, seed: int) -> None:
    res = bench.power_at_planned_n(0.10, 0.12, runs, seed)
    assert res["n_per_arm"] == 3841
    assert abs(res["n_per_arm"] - res["n_per_arm_statsmodels_cohen_h"]) < 20
    se = res["fixed"]["mc_se"]
    assert abs(res["fixed"]["rate"] - 0.8) <= max(0.02, 3 * se)


def _check_gate(bench: ModuleType, runs: int, seed: int) -> None:
    gate = bench.paired_gate_false_promotions(runs, 1000, 0.85, 0.10, seed)
    assert gate.rate <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)


def test_reduced_validity(bench: ModuleType) -> None:
    _check_peeking(bench, 300, 101)
    _check_power(bench, 2000, 102)
    _check_gate(bench, 300, 103)


def test_cli_quick_emits_markdown_and_json(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "res.json"
    assert bench.main(["--runs", "50", "--looks", "5", "--batch", "200", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "### 1. A/A false-positive rate" in text and "| proportion |" in text
    data = json.loads(out.read_text())
    assert data["config"]["runs"] == 50
    assert set(data) >= {"peeking", "power", "paired_gate", "elapsed_seconds"}


@pytest.mark.slow
def test_full_validity(bench: ModuleType) -> None:
    _check_peeking(bench, 2000, 201)
    _check_power(bench, 10_000, 202)
    _check_gate(bench, 2000, 203)
