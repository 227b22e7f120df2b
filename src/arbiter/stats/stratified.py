"""A difference of two arms estimated within strata and combined: concurrent comparisons only.

Why strata. When the split changes over time (a canary ramping 1 % → 100 %), a pooled
difference of means compares the champion's early rows with the challenger's late ones: a
metric that drifts over the canary then looks like a difference between the arms. Within a
stratum in which the split is constant (a canary stage) both arms are sampled over the same
period, so their difference is free of the drift; the strata's differences are then combined
with fixed weights.

Estimator. For stratum ``s`` with per-arm ratio means ``R_{s,A}``, ``R_{s,B}`` (rows summed
per unit, :class:`~arbiter.stats.sufficient.RatioStatistic`) and labelled rows
``D_{s,A}``, ``D_{s,B}``::

    delta_hat = sum_s w_s (R_{s,B} - R_{s,A}) / sum_s w_s
    w_s = D_{s,A} D_{s,B} / (D_{s,A} + D_{s,B})

the sample-size (Cochran–Mantel–Haenszel) weights. With one row per unit they give exactly the
arm coefficient of an OLS fit of the outcome on the arm and stratum dummies; they do not use
the estimated variances, which are noisy in a 1 % stage. A stratum without rows in one arm
has ``w_s = 0``: it contributes nothing.

Variance (per unit, delta method). Within a cell (stratum × arm) the ratio's variance is the
cluster-robust (CR1) delta-method variance ``K/(K-1) sum_i e_i^2 / D^2`` with
``e_i = m_i - R d_i`` the unit's linearised residual (Deng, Knoblich & Lu 2018), and
``Var(delta_hat) = sum_s w_s^2 (Var R_{s,A} + Var R_{s,B}) / (sum_s w_s)^2``. A cell of a
few units (a 1 % stage) can have an estimated variance near 0 (three units, all right), so
each cell's variance is floored by what its rows would give without clustering: for a
proportion (``pseudo_units=True``) the binomial ``p~ (1 - p~) / D`` with one pseudo-row right
and one wrong (``p~ = (M + 1) / (D + 2)``, the Agresti–Caffo idea); for a mean, the
median over the arm's cells of their residual variance per row, ``sum e^2 / D``, over
``D`` (a median: one cell holding a very active unit must not inflate the others).

Units across strata. A sticky unit stays in the challenger's cells stage after stage (and one
that crossed is in both arms), so the strata's differences are correlated through their
shared units. Given the units' squared influences summed where the rows are
(:func:`influence_coefficients`, ``clustered=``), the variance is the larger of the per-cell
one above and the cluster-robust (CR1) variance over units, which counts that covariance. The
floor never lowers a variance, and vanishes against the CR1 term as rows accumulate.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from arbiter.errors import InvalidInputError
from arbiter.stats.sufficient import RatioStatistic

Stratum = tuple[RatioStatistic, RatioStatistic]


@dataclass(frozen=True, slots=True)
class StratifiedEstimate:
    """A stratified difference (challenger − champion) and its variance.

    Attributes
    ----------
    estimate : float
        ``delta_hat`` (nan when no stratum has both arms).
    variance : float
        Its variance (nan when no stratum has both arms).
    strata : int
        Strata given.
    strata_used : int
        Strata with rows in both arms (the concurrent ones).
    units : tuple of int
        Units (champion, challenger) in the used strata; a unit counts once per stratum.
    rows : tuple of float
        Labelled rows (champion, challenger) in the used strata.
    unit_variance : float
        Mean of the arms' per-unit residual variances on the ratio scale
        (``sum e^2 / sum (K - 1) / dbar^2``, pooled over each arm's cells):
        the per-observation variance that fixes a mixture's scale
        (:func:`arbiter.stats.sequential.fixed_mixture_tau`).
    cluster_variance : float
        The cluster-robust variance over units across strata (nan when not given);
        ``variance`` is the larger of it and the per-cell variance.
    """

    estimate: float
    variance: float
    strata: int
    strata_used: int
    units: tuple[int, int]
    rows: tuple[float, float]
    unit_variance: float
    cluster_variance: float = math.nan

    @property
    def std_error(self) -> float:
        return math.sqrt(self.variance) if self.variance >= 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stratified_difference(
    strata: Sequence[Stratum],
    *,
    pseudo_units: bool = False,
    clustered: tuple[float, int] | None = None,
) -> StratifiedEstimate:
    """Combine per-stratum differences of two arms (see the module docstring).

    Parameters
    ----------
    strata : sequence of (RatioStatistic, RatioStatistic)
        ``(champion, challenger)`` per stratum, units summed within the stratum
        (``m`` = a unit's summed metric, ``d`` = its labelled rows).
    pseudo_units : bool, default=False
        Floor each cell's variance with the binomial variance of its rows plus one pseudo-row
        right and one wrong (for a proportion metric); else with the median per-row residual
        variance of the arm's cells.
    clustered : (float, int), optional
        ``(sum_i IF_i^2, G)``: the squared influences of the ``G`` units summed over every
        cell they appear in, with the coefficients of :func:`influence_coefficients`. The
        variance is then the larger of the per-cell one and the cluster-robust
        ``G / (G - 1) sum_i IF_i^2``, which counts the covariance of a unit's rows across
        strata and arms (a sticky unit stays in the challenger's cells stage after stage; a
        unit that crossed is in both arms).

    Returns
    -------
    StratifiedEstimate

    Examples
    --------
    >>> def cell(n, s):  # n rows, s of them right, one row per unit
    ...     return RatioStatistic(n, s, s, n, n, s)
    >>> strata = [(cell(900, 810), cell(100, 90)), (cell(500, 400), cell(500, 400))]
    >>> est = stratified_difference(strata)
    >>> round(est.estimate, 6), est.strata_used
    (0.0, 2)
    """
    cells = list(strata)
    for i, pair in enumerate(cells):
        if not (
            isinstance(pair, tuple)
            and len(pair) == 2
            and all(isinstance(c, RatioStatistic) and c.n >= 0 for c in pair)
        ):
            raise InvalidInputError(
                f"strata[{i}] must be a (RatioStatistic, RatioStatistic) pair, got {pair!r}",
                field=f"strata[{i}]",
            )
    # Residual sums per arm over every cell with rows (used strata or not).
    sse, dof, d_tot, k_tot = [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0, 0]
    for pair in cells:
        for k, c in enumerate(pair):
            if c.n == 0 or c.d_sum <= 0:
                continue
            sse[k] += _residual_ss(c)
            dof[k] += c.n - 1
            d_tot[k] += c.d_sum
            k_tot[k] += c.n
    # A mean's floor: the median over the arm's cells of the residual variance per row (a
    # median, so one cell holding a very active unit does not inflate every other cell's).
    per_row = [math.nan, math.nan]
    for k in range(2):
        rates = [
            _residual_ss(pair[k]) / pair[k].d_sum
            for pair in cells
            if pair[k].n >= 2 and pair[k].d_sum > 0
        ]
        if rates:
            per_row[k] = float(statistics.median(rates))
    num = den = var_num = 0.0
    used = 0
    units, rows = [0, 0], [0.0, 0.0]
    for a, b in cells:
        if a.n == 0 or b.n == 0 or a.d_sum <= 0 or b.d_sum <= 0:
            continue
        used += 1
        w = a.d_sum * b.d_sum / (a.d_sum + b.d_sum)
        num += w * (b.m_sum / b.d_sum - a.m_sum / a.d_sum)
        den += w
        var_num += (
            w
            * w
            * (
                _cell_variance(a, per_row[0], pseudo_units)
                + _cell_variance(b, per_row[1], pseudo_units)
            )
        )
        units[0] += a.n
        units[1] += b.n
        rows[0] += a.d_sum
        rows[1] += b.d_sum
    per_unit = [
        sse[k] / dof[k] / (d_tot[k] / k_tot[k]) ** 2 if dof[k] > 0 else math.nan for k in range(2)
    ]
    unit_variance = (
        float(sum(per_unit) / 2.0) if all(math.isfinite(v) for v in per_unit) else math.nan
    )
    if not used:
        return StratifiedEstimate(
            math.nan, math.nan, len(cells), 0, (0, 0), (0.0, 0.0), unit_variance
        )
    variance = var_num / den**2
    cluster_variance = math.nan
    if clustered is not None:
        ss, g = clustered
        if g >= 2 and math.isfinite(ss):
            cluster_variance = g / (g - 1) * ss
            variance = max(variance, cluster_variance)
    return StratifiedEstimate(
        num / den,
        variance,
        len(cells),
        used,
        (units[0], units[1]),
        (rows[0], rows[1]),
        unit_variance,
        cluster_variance,
    )


def influence_coefficients(
    strata: Sequence[Stratum],
) -> tuple[tuple[float, float, float, float], ...]:
    """Per stratum ``(c_A, R_A, c_B, R_B)``: a unit's influence on the stratified estimate.

    A unit with ``(m, d)`` in cell (s, k) contributes ``c_{s,k} (m - R_{s,k} d)`` to its
    influence ``IF_i`` (summed over every cell it appears in), where ``c_{s,B} = w_s / (W
    D_{s,B})``, ``c_{s,A} = -w_s / (W D_{s,A})`` and ``W = sum_s w_s`` (the linearisation of
    each cell's ratio, weights held fixed). Strata without both arms get zeros. The caller
    sums ``IF_i^2`` over units where the rows are (SQL) and passes it back as ``clustered``.
    """
    used = [a.n > 0 and b.n > 0 and a.d_sum > 0 and b.d_sum > 0 for a, b in strata]
    weights = [
        a.d_sum * b.d_sum / (a.d_sum + b.d_sum) if ok else 0.0
        for (a, b), ok in zip(strata, used, strict=True)
    ]
    total = sum(weights)
    out = []
    for (a, b), w, ok in zip(strata, weights, used, strict=True):
        if not ok or total <= 0:
            out.append((0.0, 0.0, 0.0, 0.0))
            continue
        out.append(
            (-w / (total * a.d_sum), a.m_sum / a.d_sum, w / (total * b.d_sum), b.m_sum / b.d_sum)
        )
    return tuple(out)


def _residual_ss(c: RatioStatistic) -> float:
    """``sum_i (m_i - R d_i)^2`` of a cell, from its sums."""
    r = c.m_sum / c.d_sum
    return max(c.m_sum_squares - 2.0 * r * c.m_d_sum_product + r * r * c.d_sum_squares, 0.0)


def _cell_variance(c: RatioStatistic, per_row: float, pseudo_units: bool) -> float:
    """Variance of a cell's ratio: its CR1 delta-method variance, floored by the variance its
    rows would have without clustering (module docstring)."""
    if pseudo_units:
        p = (c.m_sum + 1.0) / (c.d_sum + 2.0)
        floor = p * (1.0 - p) / c.d_sum
    else:
        floor = per_row / c.d_sum if math.isfinite(per_row) else math.nan
    if c.n < 2:
        return floor
    own = _residual_ss(c) * c.n / (c.n - 1) / c.d_sum**2
    return max(own, floor) if math.isfinite(floor) else own


__all__ = ["StratifiedEstimate", "Stratum", "influence_coefficients", "stratified_difference"]
