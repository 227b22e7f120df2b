"""The reference profile: contents and JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from arbiter.drift import ReferenceProfile, build_profile
from arbiter.errors import InvalidInputError


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(5, 2, 10_000)
    x[:10] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "n": rng.integers(0, 100, 10_000),
            "c": pd.Categorical(rng.choice(["a", "b", "c"], 10_000)),
            "b": rng.random(10_000) < 0.2,
            "s": pd.array(rng.choice(["u", "v", None], 10_000), dtype="string"),
        }
    )


def test_profile_contents(frame: pd.DataFrame) -> None:
    p = build_profile(frame, bins=10, sketch_size=1000, metadata={"model": "m"})
    x = p.column("x")
    values = frame["x"].dropna().to_numpy()
    assert (x.kind, x.n, x.n_missing) == ("numeric", 9990, 10)
    assert x.mean == pytest.approx(values.mean()) and x.std == pytest.approx(values.std())
    assert len(x.quantiles) == 1001
    np.testing.assert_allclose(x.quantiles, np.quantile(values, np.linspace(0, 1, 1001)))
    np.testing.assert_allclose(x.bin_edges, np.quantile(values, np.arange(1, 10) / 10))
    assert sum(x.bin_counts) == 9990 and len(x.bin_counts) == 10
    assert p.column("n").kind == "numeric"
    assert [p.column(c).kind for c in "cbs"] == ["categorical"] * 3
    assert set(p.column("b").categories) == {"true", "false"}  # JSON spelling of bools
    assert p.column("s").n + p.column("s").n_missing == 10_000
    assert p.metadata == {"model": "m"}


def test_json_round_trip(frame: pd.DataFrame) -> None:
    p = build_profile(frame, prediction=np.linspace(0, 1, 10_000), metadata={"v": "3"})
    text = p.to_json()
    json.loads(text)  # strict JSON (no NaN)
    again = ReferenceProfile.from_json(text)
    assert again == p
    assert again.to_json() == text


def test_max_categories_pools_the_rest() -> None:
    values = np.array([f"k{i}" for i in range(50)] * 2 + ["k0"] * 10)
    p = build_profile({"c": values}, max_categories=5).column("c")
    assert len(p.categories) == 5 and p.categories[0] == "k0"
    assert p.other_count == 110 - sum(p.category_counts)


def test_bad_inputs() -> None:
    with pytest.raises(InvalidInputError):
        ReferenceProfile.from_json("{}")
    with pytest.raises(InvalidInputError, match="not JSON"):
        ReferenceProfile.from_json("nope")
    with pytest.raises(InvalidInputError, match="version"):
        ReferenceProfile.from_json('{"format": "arbiter.reference_profile", "version": 99}')
    with pytest.raises(InvalidInputError):
        build_profile({"x": [1.0]}, bins=1)
    with pytest.raises(InvalidInputError):
        build_profile({"x": [1.0]}, columns=["y"])
    with pytest.raises(InvalidInputError):
        build_profile({"x": [1.0]}, kinds={"x": "prose"})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError, match="vocabulary_size"):
        build_profile({"x": ["a b c"]}, vocabulary_size=0)
