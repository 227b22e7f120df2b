"""The fast paths of the drift check give the results of the straightforward numpy code.

Issue 13 made the default check ~3x cheaper (one sort per raw numeric reference, bins counted
by comparison passes, columns checked in threads); these tests hold it to the former results:
bin counts equal, statistics equal to 1e-9 (in practice bit-identical).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arbiter.drift import DriftConfig, PSIDetector, check_drift
from arbiter.drift.profile import bin_counts, sorted_bin_counts


def _samples() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "normal": rng.normal(size=50_000),
        "poisson": rng.poisson(3.0, 50_000).astype(float),  # ties on the edges
        "few": rng.choice([0.0, 1.0, 2.5], 50_000),
        "constant": np.full(1_000, 7.0),
        "lognormal": rng.lognormal(0.0, 2.0, 50_000),
    }


@pytest.mark.parametrize("name", list(_samples()))
def test_bin_counts_equal_searchsorted(name: str) -> None:
    x = _samples()[name]
    for edges in (
        np.unique(np.quantile(x, np.arange(1, 10) / 10)),
        np.linspace(x.min() - 1, x.max() + 1, 21)[1:-1],
        np.unique(np.quantile(x, np.linspace(0.01, 0.99, 99))),  # > 64 edges: searchsorted
    ):
        expected = np.bincount(np.searchsorted(edges, x, side="left"), minlength=edges.size + 1)
        assert np.array_equal(bin_counts(x, edges), expected)
        assert np.array_equal(sorted_bin_counts(np.sort(x), edges), expected)


@pytest.mark.parametrize("name", list(_samples()))
def test_reference_summary_equals_the_straightforward_one(name: str) -> None:
    x = _samples()[name]
    detector = PSIDetector(bins=10).fit(x)
    s = detector.ref_stats_
    edges = np.unique(np.quantile(x, np.arange(1, 10) / 10))
    assert s.bin_edges == tuple(edges.tolist())
    expected = np.bincount(np.searchsorted(edges, x, side="left"), minlength=edges.size + 1)
    assert s.bin_counts == tuple(int(c) for c in expected)
    assert s.mean == float(x.mean()) and s.std == float(x.std())
    assert (s.min, s.max) == (float(x.min()), float(x.max()))
    rng = np.random.default_rng(1)
    cur = x[rng.integers(0, x.size, 20_000)] + 0.1
    result = detector.test(cur)
    lo, hi = np.quantile(x, [0.005, 0.995])
    if hi > lo:  # display bins exist
        display = np.linspace(lo, hi, 21)
        ref_hist = np.bincount(np.searchsorted(display[1:-1], x), minlength=20) / x.size
        cur_hist = np.bincount(np.searchsorted(display[1:-1], cur), minlength=20) / cur.size
        assert result.histogram is not None
        assert result.histogram.reference == tuple(ref_hist.tolist())
        assert result.histogram.current == tuple(cur_hist.tolist())


def test_threads_do_not_change_results() -> None:
    rng = np.random.default_rng(2)
    n = 30_000
    ref = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(6)})
    ref["c"] = rng.choice(["a", "b", "c"], n)
    cur = pd.DataFrame({f"x{i}": rng.normal(0.02 * i, 1.0, n) for i in range(6)})
    cur["c"] = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    one = check_drift(ref, cur, DriftConfig(workers=1)).to_dict(histogram=True)
    four = check_drift(ref, cur, DriftConfig(workers=4)).to_dict(histogram=True)
    assert one == four
    with pytest.raises(ValueError, match="workers"):
        check_drift(ref, cur, DriftConfig(workers=0))


@pytest.mark.parametrize("name", list(_samples()))
def test_exact_wasserstein_equals_scipy(name: str) -> None:
    from scipy import stats

    from arbiter.drift.methods import wasserstein_exact

    x = _samples()[name]
    rng = np.random.default_rng(3)
    for cur in (x[rng.integers(0, x.size, 777)] * 1.1 + 0.2, x[: x.size // 3], x[:1]):
        expected = stats.wasserstein_distance(x, cur)
        assert wasserstein_exact(x, cur) == pytest.approx(expected, rel=1e-12, abs=1e-12)
