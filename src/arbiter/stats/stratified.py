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

Variance (per unit, delta method). Within a cell (stratum × arm) ``Var(R) ≈ sum_i e_i^2 / D^2``
with ``e_i = m_i - R d_i`` the unit's linearised residual (Deng, Knoblich & Lu 2018). The
residual variance of each arm is pooled over its cells, ``s_k^2 = sum e^2 / sum (K_cell - 1)``,
so a stratum with three challenger units borrows the arm's variance instead of trusting its
own (0 when the three were all right): ``Var(R_cell)`` is the larger of
``s_k^2 K_cell / D_cell^2`` and the cell's own ``K/(K-1) sum e^2 / D_cell^2`` (CR1), and
``Var(delta_hat) = sum_s w_s^2 (Var R_{s,A} + Var R_{s,B}) / (sum_s w_s)^2``. For a
proportion, ``pseudo_units=True`` adds a pseudo-unit right and a pseudo-unit wrong to each
arm's pooled residual sum (the Agresti–Caffo idea), which keeps the variance away from 0
while an arm has only a few rows, and vanishes as rows accumulate.
"""

from __future__ import annotations

import math
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
        Mean of the arms' pooled per-unit variances on the ratio scale (``s_k^2 / dbar_k^2``):
        the per-observation variance that fixes a mixture's scale
        (:func:`arbiter.stats.sequential.fixed_mixture_tau`).
    """

    estimate: float
    variance: float
    strata: int
    strata_used: int
    units: tuple[int, int]
    rows: tuple[float, float]
    unit_variance: float

    @property
    def std_error(self) -> float:
        return math.sqrt(self.variance) if self.variance >= 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stratified_difference(
    strata: Sequence[Stratum], *, pseudo_units: bool = False
) -> StratifiedEstimate:
    """Combine per-stratum differences of two arms (see the module docstring).

    Parameters
    ----------
    strata : sequence of (RatioStatistic, RatioStatistic)
        ``(champion, challenger)`` per stratum, units summed within the stratum
        (``m`` = a unit's summed metric, ``d`` = its labelled rows).
    pseudo_units : bool, default=False
        Add one right and one wrong pseudo-unit to each arm's pooled residual variance (for a
        proportion metric).

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
    # Pooled residual variance per arm, over every cell with rows (used strata or not).
    sse, dof, m_tot, d_tot, k_tot = [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0, 0]
    for pair in cells:
        for k, c in enumerate(pair):
            if c.n == 0 or c.d_sum <= 0:
                continue
            r = c.m_sum / c.d_sum
            e2 = c.m_sum_squares - 2.0 * r * c.m_d_sum_product + r * r * c.d_sum_squares
            sse[k] += max(e2, 0.0)
            dof[k] += c.n - 1
            m_tot[k] += c.m_sum
            d_tot[k] += c.d_sum
            k_tot[k] += c.n
    s2 = [math.nan, math.nan]
    for k in range(2):
        if pseudo_units and d_tot[k] > 0:
            p = m_tot[k] / d_tot[k]
            sse[k] += (1.0 - p) ** 2 + p * p
            dof[k] += 2.0
        s2[k] = sse[k] / dof[k] if dof[k] > 0 else math.nan
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
        var_num += w * w * (_cell_variance(a, s2[0]) + _cell_variance(b, s2[1]))
        units[0] += a.n
        units[1] += b.n
        rows[0] += a.d_sum
        rows[1] += b.d_sum
    per_unit = [s2[k] / (d_tot[k] / k_tot[k]) ** 2 if k_tot[k] else math.nan for k in range(2)]
    unit_variance = (
        float(sum(per_unit) / 2.0) if all(math.isfinite(v) for v in per_unit) else math.nan
    )
    if not used:
        return StratifiedEstimate(
            math.nan, math.nan, len(cells), 0, (0, 0), (0.0, 0.0), unit_variance
        )
    return StratifiedEstimate(
        num / den,
        var_num / den**2,
        len(cells),
        used,
        (units[0], units[1]),
        (rows[0], rows[1]),
        unit_variance,
    )


def _cell_variance(c: RatioStatistic, pooled: float) -> float:
    """Variance of a cell's ratio: the larger of the cell's own delta-method (CR1) variance
    and the arm's pooled residual variance scaled to the cell.

    The pooled variance steadies a cell of a few units; the cell's own keeps it honest when
    its units are heavier than the arm's average (a 1 % stage whose few units include a very
    active one: residuals grow with a unit's row count).
    """
    pooled_var = pooled * c.n / c.d_sum**2
    if c.n < 2:
        return pooled_var
    r = c.m_sum / c.d_sum
    e2 = max(c.m_sum_squares - 2.0 * r * c.m_d_sum_product + r * r * c.d_sum_squares, 0.0)
    return max(e2 * c.n / (c.n - 1) / c.d_sum**2, pooled_var)


__all__ = ["StratifiedEstimate", "Stratum", "stratified_difference"]
