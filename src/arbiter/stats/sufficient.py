"""Sufficient statistics: the only form in which data reaches the statistics engine.

Each is a frozen dataclass of counts and sums that SQL can compute where the events live
(``COUNT(*)``, ``SUM(x)``, ``SUM(x*x)``...), and that merge with ``+`` so partial aggregates
(per day, per worker, per segment) combine exactly. Modelled on gbstats'
``models/statistics.py``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProportionStatistic:
    """A binary metric: ``successes`` out of ``n`` trials."""

    n: int
    successes: int

    @property
    def mean(self) -> float:
        return self.successes / self.n if self.n > 0 else 0.0

    @property
    def variance(self) -> float:
        """Bernoulli variance p(1-p) of one observation."""
        p = self.mean
        return p * (1.0 - p)

    def __add__(self, other: ProportionStatistic) -> ProportionStatistic:
        return ProportionStatistic(self.n + other.n, self.successes + other.successes)


@dataclass(frozen=True, slots=True)
class SampleMeanStatistic:
    """A continuous metric: ``n`` observations with their ``sum`` and ``sum_squares``."""

    n: int
    sum: float
    sum_squares: float

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n > 0 else 0.0

    @property
    def variance(self) -> float:
        """Unbiased sample variance (n-1 denominator); 0 when n < 2."""
        if self.n < 2:
            return 0.0
        v = (self.sum_squares - self.sum * self.sum / self.n) / (self.n - 1)
        return max(v, 0.0)

    def __add__(self, other: SampleMeanStatistic) -> SampleMeanStatistic:
        return SampleMeanStatistic(
            self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares
        )


@dataclass(frozen=True, slots=True)
class RatioStatistic:
    """A ratio metric sum(m)/sum(d) over ``n`` units (e.g. clicks per impression per user).

    Carries the cross-product needed by the delta method. This is also how a row-level
    metric is analysed when randomisation is per unit and units send several rows: ``m`` =
    a unit's correct predictions (or summed loss), ``d`` = its labelled rows. ``n`` then
    counts units, and :attr:`variance` is per unit, so ``variance / n`` is the variance of
    the ratio, as for the other statistics.
    """

    n: int
    m_sum: float
    m_sum_squares: float
    d_sum: float
    d_sum_squares: float
    m_d_sum_product: float

    @property
    def mean(self) -> float:
        return self.m_sum / self.d_sum if self.d_sum != 0 else 0.0

    @property
    def variance(self) -> float:
        """Per-unit variance of the linearised ratio; ``variance / n`` is Var(R) (delta method).

        ``(s_m² − 2·R·s_md + R²·s_d²) / μ_d²`` with unbiased sample (co)variances of the
        per-unit ``m`` and ``d`` (Deng, Knoblich & Lu 2018). It equals the cluster-robust
        (CR0) variance of the row-level mean times ``n / (n − 1)``. 0 when ``n < 2`` or
        ``sum(d) == 0``.
        """
        n = self.n
        if n < 2 or self.d_sum == 0.0:
            return 0.0
        mu_m, mu_d = self.m_sum / n, self.d_sum / n
        var_m = (self.m_sum_squares - self.m_sum * self.m_sum / n) / (n - 1)
        var_d = (self.d_sum_squares - self.d_sum * self.d_sum / n) / (n - 1)
        cov = (self.m_d_sum_product - self.m_sum * self.d_sum / n) / (n - 1)
        ratio = mu_m / mu_d
        return max((var_m - 2.0 * ratio * cov + ratio * ratio * var_d) / mu_d**2, 0.0)

    def __add__(self, other: RatioStatistic) -> RatioStatistic:
        return RatioStatistic(
            self.n + other.n,
            self.m_sum + other.m_sum,
            self.m_sum_squares + other.m_sum_squares,
            self.d_sum + other.d_sum,
            self.d_sum_squares + other.d_sum_squares,
            self.m_d_sum_product + other.m_d_sum_product,
        )


@dataclass(frozen=True, slots=True)
class RegressionAdjustmentStatistic:
    """A metric ``y`` with a pre-period covariate ``x`` (for CUPED), per arm."""

    n: int
    y_sum: float
    y_sum_squares: float
    x_sum: float
    x_sum_squares: float
    xy_sum_product: float

    @property
    def y(self) -> SampleMeanStatistic:
        return SampleMeanStatistic(self.n, self.y_sum, self.y_sum_squares)

    @property
    def x(self) -> SampleMeanStatistic:
        return SampleMeanStatistic(self.n, self.x_sum, self.x_sum_squares)

    @property
    def covariance(self) -> float:
        """Unbiased sample covariance of x and y; 0 when n < 2."""
        if self.n < 2:
            return 0.0
        return (self.xy_sum_product - self.x_sum * self.y_sum / self.n) / (self.n - 1)

    def __add__(self, other: RegressionAdjustmentStatistic) -> RegressionAdjustmentStatistic:
        return RegressionAdjustmentStatistic(
            self.n + other.n,
            self.y_sum + other.y_sum,
            self.y_sum_squares + other.y_sum_squares,
            self.x_sum + other.x_sum,
            self.x_sum_squares + other.x_sum_squares,
            self.xy_sum_product + other.xy_sum_product,
        )


__all__ = [
    "ProportionStatistic",
    "RatioStatistic",
    "RegressionAdjustmentStatistic",
    "SampleMeanStatistic",
]
