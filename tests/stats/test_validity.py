"""Reduced validity suite of issue 15 (benchmarks/validity.py); full size with ``-m slow``.

Each scenario simulates experiments where nothing differs (or a guardrail sits exactly at its
limit) through the product's decision functions, and asserts the error rate is within
simulation error of its nominal level: ``rate <= nominal + 3 SE``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "validity.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("validity", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _check(bench: ModuleType, rows: list[dict]) -> None:
    for r in rows:
        assert {"name", "runs", "rate", "se", "nominal"} <= set(r)
        if not r.get("contrast"):
            assert bench.holds(r), r


def test_abn_with_repeating_users_holds_alpha_per_unit(bench: ModuleType) -> None:
    rows = bench.abn_repeat_users(60, 1, users=2000, looks=4)
    _check(bench, rows)
    # Per row, the same data reject far too often: why the analysis goes per unit.
    per_row = next(r for r in rows if "per row" in r["name"] and "fixed" in r["name"])
    assert per_row["rate"] > 0.2


def test_interleaving_aa_holds_alpha_under_activity_skew(bench: ModuleType) -> None:
    _check(bench, bench.interleaving_aa(60, 1, users=200, looks=8))


def test_guardrail_at_its_limit_rarely_rolls_back_over_30_looks(bench: ModuleType) -> None:
    rows = bench.guardrail_at_limit(50, 1, looks=30)
    _check(bench, rows)
    before = [r for r in rows if r.get("contrast")]
    assert max(r["rate"] for r in before) > 0.1  # a 5 % test at every look does not hold


def test_providers_include_optional_modules_and_render(bench: ModuleType) -> None:
    names = set(bench.providers())
    assert {"abn_repeat_users", "interleaving_aa", "guardrail_at_limit"} <= names
    assert ("canary" in names) == (_PATH.parent / "validity_canary.py").exists()
    table = bench.markdown([bench.row("x", 3, 100, 0.05)])
    assert "| x | 100 | 0.0300 |" in table
    with pytest.raises(SystemExit):
        bench.run(1, 1, only="no_such_scenario")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["abn_repeat_users", "interleaving_aa", "guardrail_at_limit"])
def test_full_validity_suite(bench: ModuleType, name: str) -> None:
    _check(bench, bench.run(1000, 20261203, only=name))
