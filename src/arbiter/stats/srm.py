"""Sample-ratio mismatch (SRM): are arm counts consistent with the configured traffic split?

An SRM means assignment or logging is broken (bots filtered in one arm, a crashing variant
dropping events, a redirect losing users), and every other result of the test is suspect.
It is checked with Pearson's chi-square goodness-of-fit test against the configured weights.
The default alarm threshold ``p < 0.001`` is deliberately strict because the check runs
continuously on every test (Fabijan et al. 2019, "Diagnosing Sample Ratio Mismatch in Online
Controlled Experiments", KDD; Kohavi, Tang & Xu 2020, *Trustworthy Online Controlled
Experiments*).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _st

from arbiter.errors import InvalidInputError
from arbiter.stats.means import NAN
from arbiter.stats.results import STATUS_NO_DATA, STATUS_OK, SRMResult

DEFAULT_SRM_THRESHOLD = 0.001


def srm_test(
    counts: Sequence[int],
    weights: Sequence[float] | None = None,
    *,
    threshold: float = DEFAULT_SRM_THRESHOLD,
) -> SRMResult:
    """Chi-square goodness-of-fit test of observed arm counts against configured weights.

    Parameters
    ----------
    counts : sequence of int
        Units (users, requests) assigned to each arm; at least two arms.
    weights : sequence of float, optional
        Configured traffic weights, any positive scale (``[95, 5]`` or ``[0.5, 0.5]``).
        Defaults to an equal split.
    threshold : float, default 0.001
        ``mismatch`` is ``p_value < threshold``.

    Returns
    -------
    SRMResult
        ``expected`` are the counts the weights imply for the observed total. With a zero
        total the status is ``"no_data"``, ``p_value`` is nan and ``mismatch`` is False.

    Notes
    -----
    ``χ² = Σ (O_i − E_i)²/E_i`` with ``E_i = N·w_i/Σw`` and ``k − 1`` degrees of freedom
    (Pearson 1900); equals ``scipy.stats.chisquare(counts, expected)``.
    """
    observed = tuple(counts)
    k = len(observed)
    if k < 2:
        raise InvalidInputError(f"need counts for at least two arms, got {k}", field="counts")
    for i, c in enumerate(observed):
        if not isinstance(c, int | float | np.integer) or isinstance(c, bool) or c < 0 or c % 1:
            raise InvalidInputError(
                f"counts[{i}] must be a non-negative integer, got {c!r}", field=f"counts[{i}]"
            )
    observed = tuple(int(c) for c in observed)
    if weights is None:
        w = np.full(k, 1.0 / k)
    else:
        w = np.asarray([float(x) for x in weights], dtype=float)
        if w.shape != (k,):
            raise InvalidInputError(
                f"got {k} counts but {len(w)} weights; give one weight per arm", field="weights"
            )
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise InvalidInputError(
                f"weights must be positive and finite, got {list(w)}", field="weights"
            )
        w = w / w.sum()
    if not 0.0 < threshold < 1.0:
        raise InvalidInputError(
            f"threshold must be in (0, 1), got {threshold!r}", field="threshold"
        )
    method = "Pearson chi-square goodness of fit"
    total = sum(observed)
    expected = w * total
    if total == 0:
        return SRMResult(
            NAN, NAN, False, k - 1, observed, tuple(expected.tolist()), tuple(w.tolist()),
            threshold, method, STATUS_NO_DATA,
        )  # fmt: skip
    obs = np.asarray(observed, dtype=float)
    statistic = float(np.sum((obs - expected) ** 2 / expected))
    p_value = float(_st.chi2.sf(statistic, k - 1))
    return SRMResult(
        statistic,
        p_value,
        bool(p_value < threshold) and not math.isnan(p_value),
        k - 1,
        observed,
        tuple(expected.tolist()),
        tuple(w.tolist()),
        threshold,
        method,
        STATUS_OK,
    )


__all__ = ["DEFAULT_SRM_THRESHOLD", "srm_test"]
