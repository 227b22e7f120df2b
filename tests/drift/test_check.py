"""``check_drift``: method choice, multiple testing, dataset verdict, prediction drift."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import arbiter.drift as drift
from arbiter.drift import DriftConfig, ReferenceProfile, build_profile, check_drift
from arbiter.drift.check import default_method
from arbiter.errors import InvalidInputError

SRC = Path(drift.__file__).parent
CORE = [
    "_frame.py",
    "check.py",
    "config.py",
    "detectors.py",
    "methods.py",
    "profile.py",
    "results.py",
]
SHELL = (
    "arbiter.gateway",
    "arbiter.registry",
    "arbiter.events",
    "arbiter.cli",
    "arbiter.analysis",
    "mlflow",
    "duckdb",
    "pandas",
    "starlette",
    "httpx",
)


def _frames(n_ref: int, n_cur: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n_ref),
            "income": rng.lognormal(10, 1, n_ref),
            "city": rng.choice(["paris", "lyon", "nice"], n_ref, p=[0.5, 0.3, 0.2]),
            "flag": rng.random(n_ref) < 0.3,
        }
    )
    cur = pd.DataFrame(
        {
            "age": rng.normal(48, 10, n_cur),  # drifted
            "income": rng.lognormal(10, 1, n_cur),
            "city": rng.choice(["paris", "lyon", "nice"], n_cur, p=[0.2, 0.3, 0.5]),  # drifted
            "flag": rng.random(n_cur) < 0.3,
        }
    )
    return ref, cur


def test_core_does_not_import_the_shell() -> None:
    for name in CORE:
        tree = ast.parse((SRC / name).read_text(encoding="utf-8"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
        bad = {m for m in imported if any(m == s or m.startswith(s + ".") for s in SHELL)}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_all_lists_the_public_names() -> None:
    assert drift.__all__ == sorted(drift.__all__, key=lambda n: (not n.isupper(), n))
    assert all(hasattr(drift, n) for n in drift.__all__)


def test_default_method_rule() -> None:
    # n_eff = M·N/(M+N) against exact_max_n = 1000.
    assert default_method("numeric", 10_000, 1_000, 1000) == "ks"  # n_eff = 909
    assert default_method("numeric", 10_000, 2_000, 1000) == "psi"  # n_eff = 1667
    assert default_method("categorical", 500, 500, 1000) == "chi2"
    assert default_method("categorical", 1e6, 5_000, 1000) == "js"


def test_small_tables_use_exact_tests_and_flag_the_drifted_columns() -> None:
    ref, cur = _frames(2000, 500)
    result = check_drift(ref, cur)
    by = {r.column: r for r in result.features}
    assert by["age"].method == "ks" and by["city"].method == "chi2" and by["flag"].method == "chi2"
    assert by["age"].drifted and by["city"].drifted
    assert not by["income"].drifted and not by["flag"].drifted
    assert result.n_tested == 4 and result.n_drifted == 2
    assert result.share == 0.5 and result.drifted  # share >= 0.5
    assert result.correction == "holm"


def test_large_tables_use_effect_sizes() -> None:
    ref, cur = _frames(20_000, 20_000)
    result = check_drift(ref, cur)
    by = {r.column: r for r in result.features}
    assert by["age"].method == "psi" and by["city"].method == "js"
    assert by["age"].drifted and by["city"].drifted and not by["income"].drifted


def test_holm_adjusted_p_values_and_decisions() -> None:
    from arbiter.stats.multiple import holm

    ref, cur = _frames(2000, 500, seed=3)
    result = check_drift(ref, cur, DriftConfig(alpha=0.05))
    raw = [r.p_value for r in result.features]
    expected = holm(raw, alpha=0.05)
    assert [r.p_value_adjusted for r in result.features] == list(expected.adjusted_p_values)
    assert [r.drifted for r in result.features] == list(expected.reject)
    bh = check_drift(ref, cur, DriftConfig(alpha=0.05, correction="bh"))
    assert bh.correction == "bh"
    assert all(
        b.p_value_adjusted <= h.p_value_adjusted + 1e-15
        for b, h in zip(bh.features, result.features, strict=True)
    )


def test_method_override_and_validation() -> None:
    ref, cur = _frames(2000, 500)
    result = check_drift(ref, cur, DriftConfig(methods={"age": "wasserstein", "city": "psi"}))
    assert result.feature("age").method == "wasserstein"
    assert result.feature("city").method == "psi"
    with pytest.raises(InvalidInputError, match="not defined for the categorical"):
        check_drift(ref, cur, DriftConfig(methods={"city": "ks"}))
    with pytest.raises(InvalidInputError, match="columns not in the reference"):
        check_drift(ref, cur, DriftConfig(methods={"nope": "ks"}))
    with pytest.raises(InvalidInputError) as info:
        check_drift(ref, cur, DriftConfig(methods={"age": "magic"}))  # type: ignore[dict-item]
    assert info.value.field == "methods.age"
    with pytest.raises(InvalidInputError):
        check_drift(ref, cur, DriftConfig(share=0.0))


def test_kind_override_treats_integers_as_categories() -> None:
    rng = np.random.default_rng(0)
    ref = {"code": rng.integers(0, 4, 1000)}
    cur = {"code": rng.integers(0, 4, 1000)}
    result = check_drift(ref, cur, DriftConfig(kinds={"code": "categorical"}))
    assert result.feature("code").kind == "categorical"
    assert result.feature("code").method == "chi2"
    assert set(result.feature("code").histogram.labels) == {"0", "1", "2", "3"}


def test_missing_column_and_empty_window_are_statuses() -> None:
    ref, cur = _frames(1000, 300)
    result = check_drift(ref, cur.drop(columns=["income"]))
    assert result.feature("income").status == "missing_in_current"
    assert result.n_tested == 3
    empty = check_drift(ref, cur.iloc[:0])
    assert {r.status for r in empty.features} == {"empty"}
    assert empty.drifted is False and empty.share == 0.0


def test_profile_reference_matches_raw_reference() -> None:
    ref, cur = _frames(50_000, 800)
    raw = check_drift(ref, cur)
    profile = ReferenceProfile.from_json(build_profile(ref).to_json())
    approx = check_drift(profile, cur)
    for a, b in zip(raw.features, approx.features, strict=True):
        assert a.method == b.method
        assert a.drifted == b.drifted
        assert b.approximate and not a.approximate
        assert b.statistic == pytest.approx(a.statistic, abs=2e-3, rel=1e-6)


def test_prediction_drift_from_columns_and_profile() -> None:
    ref, cur = _frames(5000, 5000)
    rng = np.random.default_rng(1)
    ref["score"] = rng.beta(2, 5, 5000)
    cur["score"] = rng.beta(5, 2, 5000)
    config = DriftConfig(prediction_column="score")
    result = check_drift(ref, cur, config)
    assert "score" not in [r.column for r in result.features]
    assert result.prediction is not None and result.prediction.drifted
    assert result.prediction.column == "<prediction>"
    profile = build_profile(ref, prediction="score")
    assert "score" not in profile.names and profile.prediction is not None
    again = check_drift(profile, cur.drop(columns=["score"]), current_prediction=cur["score"])
    assert again.prediction is not None and again.prediction.drifted
    d = again.to_dict()
    assert d["prediction"]["method"] == again.prediction.method


def test_dataset_share_threshold() -> None:
    ref, cur = _frames(2000, 500)
    assert check_drift(ref, cur, DriftConfig(share=0.75)).drifted is False
    assert check_drift(ref, cur, DriftConfig(share=0.5)).drifted is True


def test_mapping_of_arrays_without_pandas() -> None:
    rng = np.random.default_rng(2)
    ref = {"x": rng.normal(size=500), "c": np.array(["a", "b", None] * 100, dtype=object)}
    cur = {"x": rng.normal(size=500), "c": np.array(["a", "b", "b"] * 100, dtype=object)}
    result = check_drift(ref, cur)
    assert result.feature("c").n_reference == 200  # None is missing
    assert result.feature("x").drifted is False
