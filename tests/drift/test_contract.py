"""The contract every drift detector honours (sklearn's ``parametrize_with_checks`` idea)."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from arbiter.drift import (
    ChiSquareDetector,
    DriftResult,
    JSDetector,
    KSDetector,
    NotFittedError,
    PSIDetector,
    WassersteinDetector,
    build_profile,
)
from arbiter.errors import ArbiterError, InvalidInputError

DETECTORS = [KSDetector, PSIDetector, ChiSquareDetector, JSDetector, WassersteinDetector]
CATEGORICAL = [PSIDetector, ChiSquareDetector, JSDetector]
BAD_PARAMS = {
    "alpha": [0.0, 1.0, -0.1, "0.05", True],
    "bins": [1, 0, 2.5, True],
    "min_psi": [-0.1, float("nan")],
    "floor": [0.0, 0.5],
    "min_distance": [-1.0, float("inf")],
    "histogram": ["yes"],
}


def _numeric(seed: int, shift: float = 0.0, n: int = 3000) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, 1.0, n)


def _categorical(seed: int, p: list[float], n: int = 3000) -> np.ndarray:
    return np.random.default_rng(seed).choice(np.array(["a", "b", "c", "d"]), size=n, p=p)


@pytest.fixture(params=DETECTORS, ids=lambda c: c.__name__)
def detector_cls(request: pytest.FixtureRequest) -> type:
    return request.param


def test_init_only_stores_keyword_only_params(detector_cls: type) -> None:
    params = inspect.signature(detector_cls.__init__).parameters
    for name, p in params.items():
        if name != "self":
            assert p.kind is inspect.Parameter.KEYWORD_ONLY, name
    # Bad values are accepted by __init__ (stored as is) and rejected by fit (sklearn rule).
    d = detector_cls(alpha=5.0)
    assert d.get_params()["alpha"] == 5.0
    assert repr(d).startswith(detector_cls.__name__)


def test_fit_validates_every_param(detector_cls: type) -> None:
    params = detector_cls().get_params()
    for name in params:
        for bad in BAD_PARAMS[name]:
            with pytest.raises(InvalidInputError) as info:
                detector_cls(**{name: bad}).fit(_numeric(0))
            assert info.value.field == name


def test_test_before_fit_raises_not_fitted(detector_cls: type) -> None:
    with pytest.raises(NotFittedError) as info:
        detector_cls().test(_numeric(0))
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, ArbiterError)
    assert "fit" in str(info.value)


def test_fit_returns_self_and_sets_ref_stats(detector_cls: type) -> None:
    d = detector_cls()
    assert not hasattr(d, "ref_stats_")
    assert d.fit(_numeric(0), name="age") is d
    assert d.ref_stats_.n == 3000
    assert d.ref_stats_.name == "age"


def test_identical_data_does_not_drift(detector_cls: type) -> None:
    x = _numeric(1)
    result = detector_cls().fit(x).test(x)
    assert result.drifted is False
    assert result.statistic == pytest.approx(0.0, abs=1e-12)


def test_same_distribution_does_not_drift(detector_cls: type) -> None:
    assert detector_cls().fit(_numeric(1)).test(_numeric(2)).drifted is False


def test_shifted_data_drifts(detector_cls: type) -> None:
    result = detector_cls().fit(_numeric(1)).test(_numeric(2, shift=1.0))
    assert result.drifted is True
    assert result.statistic > result.threshold


def test_fit_from_a_profile_gives_the_same_verdicts(detector_cls: type) -> None:
    profile = build_profile({"x": _numeric(1)}).column("x")
    d = detector_cls().fit(profile)
    assert d.test(_numeric(2)).drifted is False
    shifted = d.test(_numeric(2, shift=1.0))
    assert shifted.drifted is True
    assert shifted.approximate is True


def test_result_dataclass_fields(detector_cls: type) -> None:
    result = detector_cls().fit(_numeric(1), name="f").test(_numeric(2))
    assert isinstance(result, DriftResult)
    assert dataclasses.is_dataclass(result)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.drifted = True  # type: ignore[misc]
    assert result.column == "f"
    assert result.kind == "numeric"
    assert result.method == detector_cls.method
    assert (result.n_reference, result.n_current) == (3000, 3000)
    assert result.status == "ok"
    assert np.isfinite(result.statistic) and np.isfinite(result.threshold)
    if result.p_value is not None:
        assert 0.0 <= result.p_value <= 1.0
    d = result.to_dict()
    assert {"method", "statistic", "p_value", "threshold", "drifted"} <= set(d)


def test_empty_current_is_a_status_not_an_error(detector_cls: type) -> None:
    result = detector_cls().fit(_numeric(1)).test(np.array([np.nan, np.nan]))
    assert result.status == "empty"
    assert result.drifted is False
    assert result.n_current == 0


@pytest.mark.parametrize("cls", CATEGORICAL, ids=lambda c: c.__name__)
def test_categorical_contract(cls: type) -> None:
    p = [0.4, 0.3, 0.2, 0.1]
    ref = _categorical(1, p)
    d = cls().fit(ref, name="colour")
    assert d.ref_stats_.kind == "categorical"
    assert d.test(ref).drifted is False
    assert d.test(_categorical(2, p)).drifted is False
    assert d.test(_categorical(2, [0.1, 0.2, 0.3, 0.4])).drifted is True


@pytest.mark.parametrize("cls", [KSDetector, WassersteinDetector], ids=lambda c: c.__name__)
def test_order_based_methods_refuse_categorical_columns(cls: type) -> None:
    with pytest.raises(InvalidInputError, match="not defined for categorical"):
        cls().fit(_categorical(1, [0.25] * 4))
