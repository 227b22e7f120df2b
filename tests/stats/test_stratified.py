"""The stratified per-unit difference, against statsmodels (OLS with stratum dummies), an
independent pandas computation of the variance, and a unit bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from arbiter.errors import InvalidInputError
from arbiter.stats.stratified import stratified_difference
from arbiter.stats.sufficient import RatioStatistic


def _cells(df: pd.DataFrame, strata: int) -> tuple[tuple[RatioStatistic, RatioStatistic], ...]:
    """Per stratum and arm: units' sums (m) and rows (d) -> RatioStatistic."""
    units = df.groupby(["stratum", "arm", "unit"]).agg(m=("y", "sum"), d=("y", "size"))
    out = []
    for s in range(strata):
        pair = []
        for arm in (0, 1):
            try:
                u = units.loc[(s, arm)]
            except KeyError:
                pair.append(RatioStatistic(0, 0.0, 0.0, 0.0, 0.0, 0.0))
                continue
            m, d = u["m"].to_numpy(float), u["d"].to_numpy(float)
            pair.append(
                RatioStatistic(
                    len(u), m.sum(), (m * m).sum(), d.sum(), (d * d).sum(), (m * d).sum()
                )
            )
        out.append((pair[0], pair[1]))
    return tuple(out)


def _rows(rng: np.random.Generator, shares: list[float], n: int, drift: float) -> pd.DataFrame:
    """One row per unit, strata with different shares and a drifting mean."""
    frames = []
    for s, share in enumerate(shares):
        arm = (rng.random(n) < share).astype(int)
        y = (rng.random(n) < 0.8 + drift * s).astype(float)
        frames.append(pd.DataFrame({"stratum": s, "arm": arm, "y": y}))
    df = pd.concat(frames, ignore_index=True)
    df["unit"] = np.arange(len(df))
    return df


def test_estimate_equals_ols_with_stratum_dummies() -> None:
    """One row per unit: the sample-size weights are those of OLS's arm coefficient."""
    df = _rows(np.random.default_rng(1), [0.05, 0.25, 0.5, 0.95], 3000, -0.03)
    est = stratified_difference(_cells(df, 4))
    fit = smf.ols("y ~ arm + C(stratum)", data=df).fit()
    assert est.estimate == pytest.approx(fit.params["arm"], abs=1e-12)
    assert est.strata_used == 4
    # the pooled difference is biased by the drift; the stratified one is not
    pooled = df[df.arm == 1].y.mean() - df[df.arm == 0].y.mean()
    assert pooled < -0.03 < est.estimate


def test_variance_matches_an_independent_pandas_computation() -> None:
    rng = np.random.default_rng(2)
    rows = []
    for s, share in enumerate([0.1, 0.5]):
        for u in range(400):
            arm = int(rng.random() < share)
            k = int(rng.geometric(0.3))
            p = rng.beta(8, 2)
            rows += [(s, arm, f"{s}-{u}", float(rng.random() < p)) for _ in range(k)]
    df = pd.DataFrame(rows, columns=["stratum", "arm", "unit", "y"])
    est = stratified_difference(_cells(df, 2), pseudo_units=True)

    units = df.groupby(["stratum", "arm", "unit"]).y.agg(["sum", "size"]).reset_index()
    cell = units.groupby(["stratum", "arm"]).agg(
        M=("sum", "sum"), D=("size", "sum"), K=("sum", "size")
    )
    units = units.join(cell, on=["stratum", "arm"])
    units["e2"] = (units["sum"] - units.M / units.D * units["size"]) ** 2
    own = units.groupby(["stratum", "arm"]).e2.sum()
    cell["own"] = own * cell.K / (cell.K - 1) / cell.D**2
    p = (cell.M + 1) / (cell.D + 2)  # the Agresti-Caffo floor of a proportion
    cell["floor"] = p * (1 - p) / cell.D
    cell["var"] = cell[["own", "floor"]].max(axis=1)
    cell["R"] = cell.M / cell.D
    wide = cell.unstack("arm")
    w = wide.D[0] * wide.D[1] / (wide.D[0] + wide.D[1])
    diff = wide.R[1] - wide.R[0]
    assert est.estimate == pytest.approx(float((w * diff).sum() / w.sum()), rel=1e-12)
    expected = float((w**2 * (wide["var"][0] + wide["var"][1])).sum() / w.sum() ** 2)
    assert est.variance == pytest.approx(expected, rel=1e-10)


def test_per_unit_variance_matches_a_unit_bootstrap() -> None:
    """Repeating users with their own accuracy: the per-unit SE agrees with resampling units
    within each stratum and arm, and the per-row SE would be far too small."""
    rng = np.random.default_rng(3)
    rows = []
    for s, share in enumerate([0.2, 0.5]):
        for u in range(600):
            arm = int(rng.random() < share)
            k = int(rng.geometric(0.15))
            p = rng.beta(4, 1)
            rows += [(s, arm, f"{s}-{u}", float(rng.random() < p)) for _ in range(k)]
    df = pd.DataFrame(rows, columns=["stratum", "arm", "unit", "y"])
    est = stratified_difference(_cells(df, 2), pseudo_units=True)
    units = df.groupby(["stratum", "arm", "unit"]).y.agg(["sum", "size"]).reset_index()
    groups = [g[["sum", "size"]].to_numpy(float) for _, g in units.groupby(["stratum", "arm"])]
    boot = []
    for _ in range(400):
        cells = []
        for g in groups:
            x = g[rng.integers(0, len(g), len(g))]
            m, d = x[:, 0], x[:, 1]
            cells.append(
                RatioStatistic(
                    len(x), m.sum(), (m * m).sum(), d.sum(), (d * d).sum(), (m * d).sum()
                )
            )
        pairs = [(cells[0], cells[1]), (cells[2], cells[3])]
        boot.append(stratified_difference(pairs, pseudo_units=True).estimate)
    assert est.std_error == pytest.approx(float(np.std(boot, ddof=1)), rel=0.12)
    row_level = stratified_difference(_cells(df.assign(unit=np.arange(len(df))), 2)).std_error
    assert row_level < 0.8 * est.std_error


def test_strata_without_both_arms_contribute_nothing() -> None:
    a = RatioStatistic(100, 80.0, 80.0, 100.0, 100.0, 80.0)
    b = RatioStatistic(100, 70.0, 70.0, 100.0, 100.0, 70.0)
    empty = RatioStatistic(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    only_challenger = RatioStatistic(500, 100.0, 100.0, 500.0, 500.0, 100.0)
    one = stratified_difference([(a, b)])
    two = stratified_difference([(a, b), (empty, only_challenger)])
    assert two.estimate == pytest.approx(one.estimate) == pytest.approx(-0.1)
    assert (two.strata, two.strata_used, two.units) == (2, 1, (100, 100))
    none = stratified_difference([(empty, only_challenger)])
    assert none.strata_used == 0 and math.isnan(none.estimate)


def test_pseudo_units_keep_a_tiny_arm_variance_positive() -> None:
    champion = RatioStatistic(1000, 850.0, 850.0, 1000.0, 1000.0, 850.0)
    three_right = RatioStatistic(3, 3.0, 3.0, 3.0, 3.0, 3.0)
    plain = stratified_difference([(champion, three_right)])
    adjusted = stratified_difference([(champion, three_right)], pseudo_units=True)
    assert adjusted.variance > plain.variance > 0.0


def test_rejects_malformed_strata() -> None:
    with pytest.raises(InvalidInputError) as info:
        stratified_difference([(RatioStatistic(1, 1.0, 1.0, 1.0, 1.0, 1.0),)])  # type: ignore[list-item]
    assert info.value.field == "strata[0]"


def test_a_mean_cell_of_identical_units_borrows_the_median_per_row_variance() -> None:
    """A loss metric, one row per unit: a 2-unit cell whose units agree has no variance of
    its own; each cell's variance is the larger of its CR1 variance and the median residual
    variance per row of its arm's cells over its rows."""
    rng = np.random.default_rng(5)
    values = {
        (0, 0): rng.exponential(1.0, 400),
        (0, 1): rng.exponential(1.0, 400),
        (1, 0): rng.exponential(1.0, 300),
        (1, 1): np.array([0.5, 0.5]),
    }

    def cell(m: np.ndarray) -> RatioStatistic:
        return RatioStatistic(len(m), m.sum(), (m * m).sum(), float(len(m)), float(len(m)), m.sum())

    est = stratified_difference([(cell(values[s, 0]), cell(values[s, 1])) for s in (0, 1)])
    per_row = {k: float(np.var(v)) for k, v in values.items()}  # sum e^2 / D
    median = {a: float(np.median([per_row[0, a], per_row[1, a]])) for a in (0, 1)}
    var = {k: max(np.var(v, ddof=1) / len(v), median[k[1]] / len(v)) for k, v in values.items()}
    assert var[1, 1] == pytest.approx(median[1] / 2) and median[1] > 0
    w = {
        s: len(values[s, 0]) * len(values[s, 1]) / (len(values[s, 0]) + len(values[s, 1]))
        for s in (0, 1)
    }
    expected = sum(w[s] ** 2 * (var[s, 0] + var[s, 1]) for s in (0, 1)) / sum(w.values()) ** 2
    assert est.variance == pytest.approx(expected, rel=1e-9)
