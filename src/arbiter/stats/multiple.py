"""Multiple-testing corrections: Holm (family-wise error), Benjamini–Hochberg and
Benjamini–Yekutieli (false discovery rate).

Use Holm when any false "winner" is costly (e.g. promoting one of several challengers); it
holds under any dependence between the tests. Benjamini–Hochberg when screening many metrics
and a controlled fraction of false discoveries is acceptable: it bounds the FDR by ``alpha``
when the p-values are independent or **positively regression dependent** (PRDS; Benjamini &
Yekutieli 2001, Theorem 1.2), not under arbitrary dependence. Benjamini–Yekutieli
(``"by"``) bounds it under any dependence at the price of a factor ``Σ_{i≤m} 1/i`` (about
``ln m + 0.58``) in the threshold. Tests on correlated features (drift checks) are dependent,
and positive dependence is plausible but not guaranteed there, so ``"by"`` is the choice that
needs no assumption. Both are computed by ``statsmodels.stats.multitest.multipletests``.
Holm is written out here (three lines of numpy, checked against
``multipletests(method="holm")`` in the tests) because statsmodels' Holm branch runs a full
``gc.collect()`` on every call: about 50 ms in a small process and a second in a gateway or
notebook holding large heaps, for a computation that takes microseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from statsmodels.stats.multitest import multipletests

from arbiter.errors import InvalidInputError
from arbiter.stats.means import check_alpha
from arbiter.stats.results import MultipleTestingResult

Correction = Literal["holm", "bh", "by"]
_STATSMODELS_METHOD = {"holm": "holm", "bh": "fdr_bh", "by": "fdr_by"}
_METHOD_NAME = {
    "holm": "Holm step-down (Holm 1979)",
    "bh": "Benjamini-Hochberg step-up FDR (Benjamini & Hochberg 1995; independent or PRDS)",
    "by": "Benjamini-Yekutieli step-up FDR (Benjamini & Yekutieli 2001; any dependence)",
}


def adjust_p_values(
    p_values: Sequence[float], *, method: Correction = "holm", alpha: float = 0.05
) -> MultipleTestingResult:
    """Adjust a family of p-values and report which hypotheses are rejected.

    Parameters
    ----------
    p_values : sequence of float
        Raw p-values in [0, 1]; the result keeps their order. An empty family is allowed.
    method : {"holm", "bh", "by"}, default "holm"
        ``"holm"``: Holm (1979), adjusted ``p_(i) = max_{j≤i} min(1, (m − j + 1)·p_(j))``,
        controls the family-wise error rate under any dependence. ``"bh"``: Benjamini &
        Hochberg (1995), adjusted ``p_(i) = min_{j≥i} min(1, m·p_(j)/j)``, controls the false
        discovery rate under independence or positive regression dependence (PRDS) only.
        ``"by"``: Benjamini & Yekutieli (2001), the BH adjustment times
        ``c(m) = Σ_{i≤m} 1/i``, controls it under any dependence.
    alpha : float, default 0.05
        Level at which ``reject`` is decided (``adjusted_p <= alpha``).

    Returns
    -------
    MultipleTestingResult
    """
    if method not in _STATSMODELS_METHOD:
        raise InvalidInputError(
            f"method must be one of {', '.join(_STATSMODELS_METHOD)}; got {method!r}",
            field="method",
        )
    alpha = check_alpha(alpha)
    raw = tuple(float(p) for p in p_values)
    for i, p in enumerate(raw):
        if math.isnan(p) or not 0.0 <= p <= 1.0:
            raise InvalidInputError(
                f"p_values[{i}] must be in [0, 1], got {p!r}", field=f"p_values[{i}]"
            )
    if not raw:
        return MultipleTestingResult((), (), (), alpha, _METHOD_NAME[method])
    if method == "holm":
        adjusted = _holm_adjusted(np.asarray(raw))
        reject = adjusted <= alpha
    else:
        reject, adjusted, _, _ = multipletests(
            np.asarray(raw), alpha=alpha, method=_STATSMODELS_METHOD[method]
        )
    return MultipleTestingResult(
        raw,
        tuple(float(p) for p in adjusted),
        tuple(bool(r) for r in reject),
        alpha,
        _METHOD_NAME[method],
    )


def _holm_adjusted(p: np.ndarray) -> np.ndarray:
    """Holm (1979): sorted ascending, ``p_(i) -> max_{j<=i} min(1, (m - j + 1) p_(j))``."""
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(m, 0, -1)))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted


def holm(p_values: Sequence[float], *, alpha: float = 0.05) -> MultipleTestingResult:
    """Holm step-down adjustment (family-wise error rate); see :func:`adjust_p_values`."""
    return adjust_p_values(p_values, method="holm", alpha=alpha)


def benjamini_hochberg(p_values: Sequence[float], *, alpha: float = 0.05) -> MultipleTestingResult:
    """Benjamini–Hochberg step-up adjustment (controls the FDR); see :func:`adjust_p_values`."""
    return adjust_p_values(p_values, method="bh", alpha=alpha)


__all__ = ["adjust_p_values", "benjamini_hochberg", "holm"]
