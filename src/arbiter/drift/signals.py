"""A column's drift signals beside its distribution: missing-value rate, and for text columns
the vocabulary, the length and the out-of-vocabulary rate.

* **missing rate** (every kind): share of rows without a value, reference vs current, as
  Cohen's h with a pooled two-proportion z-test (:func:`~arbiter.drift.methods.rate_test`),
  floored by ``DriftConfig.missing_min``. Not tested when neither side has a missing value.
* **vocabulary** (text; the column's distribution test, method ``js``): Jensen–Shannon
  distance between the token frequencies over the reference vocabulary (its
  ``vocabulary_size`` most frequent tokens) plus one out-of-vocabulary bin
  (:func:`~arbiter.drift.methods.vocabulary_test`), floored by ``js_min``.
* **length** (text): tokens per value, tested like a numeric column (KS or PSI by the default
  rule) against the profile's length sketch.
* **oov rate** (text): share of current tokens outside the reference vocabulary against the
  reference's own share, Cohen's h floored by ``oov_min``.

Token tests use Kish's effective number of rows (:func:`~arbiter.drift.methods.kish_n`), not
the token count: tokens of one row are not independent draws. A raw reference text column is
profiled first (:func:`~arbiter.drift.profile.text_profile`) and tested like a stored profile,
so both give the same result.
"""

from __future__ import annotations

import math

import numpy as np

from arbiter.drift import methods
from arbiter.drift._frame import tokenize
from arbiter.drift.config import DriftConfig, default_method
from arbiter.drift.detectors import DETECTORS, category_histogram
from arbiter.drift.profile import ColumnProfile
from arbiter.drift.results import DriftResult, Method, Signal, SignalName


def _signal(
    name: SignalName,
    method: str,
    outcome: methods.Outcome,
    reference: float,
    current: float,
    min_effect: float,
    alpha: float,
) -> Signal:
    drifted = (
        outcome.p_value is not None and outcome.p_value <= alpha and outcome.statistic >= min_effect
    )
    return Signal(
        name,
        method,
        outcome.statistic,
        outcome.p_value,
        outcome.threshold,
        bool(drifted),
        reference,
        current,
        min_effect,
    )


def missing_signal(
    n_reference: int,
    n_reference_missing: int,
    n_current: int,
    n_current_missing: int,
    config: DriftConfig,
) -> Signal | None:
    """The missing-rate signal; None when there are no rows, or no missing value on either side."""
    m, n = n_reference + n_reference_missing, n_current + n_current_missing
    if m == 0 or n == 0 or (n_reference_missing == 0 and n_current_missing == 0):
        return None
    p_ref, p_cur = n_reference_missing / m, n_current_missing / n
    outcome = methods.rate_test(p_ref, m, p_cur, n, alpha=config.alpha, min_h=config.missing_min)
    return _signal(
        "missing_rate", "two_proportion", outcome, p_ref, p_cur, config.missing_min, config.alpha
    )


def _median(profile: ColumnProfile) -> float:
    q = np.asarray(profile.quantiles)
    if q.size == 0:
        return math.nan
    return float(np.interp(0.5, np.linspace(0.0, 1.0, q.size), q))


def check_text(
    name: str,
    reference: ColumnProfile,
    texts: list[str],
    config: DriftConfig,
    *,
    approximate: bool,
) -> DriftResult:
    """Vocabulary drift of a text column (the result), with its length and OOV-rate signals.

    ``reference`` is the column's text profile; ``texts`` the current non-missing values.
    """
    n_cur = len(texts)
    s = reference
    if s.n == 0 or n_cur == 0 or s.length is None:
        return DriftResult(
            name, "text", "js", math.nan, None, math.nan, False, s.n, n_cur,
            approximate=approximate, status="empty",
        )  # fmt: skip
    counts, lengths = tokenize(texts)
    vocabulary = s.categories
    cur_known = [counts.get(t, 0) for t in vocabulary]
    n_tokens = int(lengths.sum())
    ref_counts = np.asarray([*s.category_counts, s.other_count], dtype=float)
    cur_counts = np.asarray([*cur_known, n_tokens - sum(cur_known)], dtype=float)
    length = s.length
    m_eff = methods.kish_n(s.n, length.mean, length.std)
    n_eff = methods.kish_n(n_cur, float(lengths.mean()), float(lengths.std()))
    vocab = methods.vocabulary_test(
        ref_counts, cur_counts, m=m_eff, n=n_eff, alpha=config.alpha, min_distance=config.js_min
    )
    signals: list[Signal] = []
    method: Method = default_method("numeric", length.n, n_cur, config.exact_max_n)
    detector = DETECTORS[method].from_config(config)
    detector.histogram = False
    length_result = detector.fit(length, name=name).test_prepared(lengths)
    signals.append(
        Signal(
            "length",
            method,
            length_result.statistic,
            length_result.p_value,
            length_result.threshold,
            length_result.drifted,
            _median(length),
            float(np.median(lengths)),
            detector.min_effect,
        )
    )
    if s.n_tokens > 0 and n_tokens > 0:
        p_ref, p_cur = s.other_count / s.n_tokens, float(cur_counts[-1]) / n_tokens
        oov = methods.rate_test(
            p_ref, m_eff, p_cur, n_eff, alpha=config.alpha, min_h=config.oov_min
        )
        signals.append(
            _signal("oov_rate", "two_proportion", oov, p_ref, p_cur, config.oov_min, config.alpha)
        )
    ok = math.isfinite(vocab.statistic)
    drifted = ok and vocab.p_value is not None and vocab.p_value <= config.alpha
    drifted = drifted and vocab.statistic >= config.js_min
    histogram = None
    if ok and config.histograms:
        histogram = category_histogram(ref_counts, cur_counts, [*vocabulary, "(out of vocabulary)"])
    return DriftResult(
        name,
        "text",
        "js",
        vocab.statistic,
        vocab.p_value,
        vocab.threshold,
        bool(drifted) or any(x.drifted for x in signals),
        s.n,
        n_cur,
        approximate=approximate,
        status="ok" if ok else "empty",
        histogram=histogram,
        signals=tuple(signals),
    )


__all__ = ["check_text", "missing_signal"]
