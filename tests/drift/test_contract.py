"""The contract every drift detector honours (sklearn's ``parametrize_with_checks`` idea)."""

from __future__ import annotations

import dataclasses
import inspect
from collections import Counter

import numpy as np
import pytest

from arbiter.drift import DETECTORS as REGISTRY
from arbiter.drift import (
    ChiSquareDetector,
    Detector,
    DriftConfig,
    DriftResult,
    JSDetector,
    KSDetector,
    NotFittedError,
    PSIDetector,
    WassersteinDetector,
    build_profile,
)
from arbiter.drift.config import METHODS, METHODS_FOR_KIND
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


# -- the registry and from_config ------------------------------------------------------------

# Every parameter set away from its default, so a field read from the wrong place shows.
NON_DEFAULT = DriftConfig(
    alpha=0.05,
    bins=7,
    psi_min=0.2,
    psi_floor=1e-3,
    js_min=0.15,
    wasserstein_min=0.3,
    histograms=False,
)


def test_registry_holds_every_method_and_the_suite_covers_it() -> None:
    assert set(REGISTRY) == set(METHODS)
    for method, cls in REGISTRY.items():
        assert issubclass(cls, Detector)
        assert cls.method == method
        for kind, allowed in METHODS_FOR_KIND.items():
            if kind == "text":
                # Text columns are compared by their tokens (drift.signals.check_text), not by
                # a detector over whole values.
                assert allowed == {"js"}
                continue
            assert (kind in cls.kinds) is (method in allowed), (method, kind)
    # every registered detector runs this contract suite
    assert set(REGISTRY.values()) == set(DETECTORS)


def test_from_config_reads_every_param_from_the_config(detector_cls: type) -> None:
    config_names = {f.name for f in dataclasses.fields(DriftConfig)}
    fields = detector_cls.config_fields
    assert set(fields) == set(detector_cls().get_params())  # no parameter left at its default
    assert set(fields.values()) <= config_names
    d = detector_cls.from_config(NON_DEFAULT)
    assert type(d) is detector_cls
    assert not hasattr(d, "ref_stats_")  # built, not fitted
    assert d.get_params() == {p: getattr(NON_DEFAULT, f) for p, f in fields.items()}
    assert d.get_params() != detector_cls().get_params()


def test_from_config_defaults_are_the_constructor_defaults(detector_cls: type) -> None:
    assert detector_cls.from_config(DriftConfig()).get_params() == detector_cls().get_params()


def test_from_config_names_the_bad_config_field(detector_cls: type) -> None:
    with pytest.raises(InvalidInputError) as info:
        detector_cls.from_config(DriftConfig(alpha=2.0))
    assert info.value.field == "alpha"
    with pytest.raises(InvalidInputError) as info:
        detector_cls.from_config(DriftConfig(psi_floor=0.5))
    assert info.value.field == "psi_floor"


def test_from_config_detector_equals_the_constructed_one(detector_cls: type) -> None:
    fields = detector_cls.config_fields
    built = detector_cls(**{p: getattr(NON_DEFAULT, f) for p, f in fields.items()})
    ref, cur = _numeric(1), _numeric(2, shift=0.2)
    assert detector_cls.from_config(NON_DEFAULT).fit(ref).test(cur) == built.fit(ref).test(cur)


# -- test_prepared -----------------------------------------------------------------------------


def test_test_prepared_before_fit_raises_not_fitted(detector_cls: type) -> None:
    with pytest.raises(NotFittedError):
        detector_cls().test_prepared(_numeric(0))


def test_test_prepared_equals_test_on_numbers(detector_cls: type) -> None:
    raw = _numeric(2, shift=0.3)
    raw[::50] = np.nan  # test drops them; prepared input comes without
    raw[1::97] = np.inf
    d = detector_cls().fit(_numeric(1))
    prepared = d.test_prepared(raw[np.isfinite(raw)])
    assert prepared == d.test(raw)
    assert prepared.n_current == int(np.isfinite(raw).sum())


@pytest.mark.parametrize("cls", CATEGORICAL, ids=lambda c: c.__name__)
def test_test_prepared_equals_test_on_categories(cls: type) -> None:
    cur = _categorical(2, [0.1, 0.2, 0.3, 0.4])
    d = cls().fit(_categorical(1, [0.4, 0.3, 0.2, 0.1]))
    prepared = d.test_prepared(dict(Counter(cur.tolist())))
    assert prepared == d.test(cur)
    assert prepared.drifted is True


def test_test_prepared_refuses_the_wrong_form(detector_cls: type) -> None:
    d = detector_cls().fit(_numeric(1), name="age")
    with pytest.raises(InvalidInputError, match=r"test_prepared.*'age'.*use test") as info:
        d.test_prepared({"a": 3})
    assert info.value.field == "current"
    if detector_cls in CATEGORICAL:
        c = detector_cls().fit(_categorical(1, [0.25] * 4))
        with pytest.raises(InvalidInputError, match="mapping of category to count"):
            c.test_prepared(np.array([1.0, 2.0]))
