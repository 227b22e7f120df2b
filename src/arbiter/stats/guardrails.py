"""Guardrails: limits a challenger must respect whatever the primary metric says, and the one
rule that decides, from counts, whether a limit is breached, met or not yet clear.

The A/B and A/B/n analyses (:mod:`arbiter.analysis`), the interleaving analysis and the
canary checkpoints (:mod:`arbiter.canary.measure`) all judge their guardrails here, so a
challenger's error rate is breached by the same evidence wherever it is measured.

Why the bounds are time-uniform
-------------------------------
A breached guardrail rolls a serving challenger back at once, and the rule is applied at
**every look**: every ``arbiter analyze`` of a running experiment, every interleaving or
bandit analysis and every canary checkpoint (hundreds of them). A bound that is right 95 % of
the time at one look is crossed by chance sooner or later when it is looked at again and
again: with the true error rate exactly at the limit, a one-look test at 5 % checked at 30
looks rolls back about a fifth of such challengers (21.6 % in the issue's analysis). So a
**rate** is judged by a **binomial confidence sequence**, valid simultaneously over every
look and any data-dependent stopping:

* the evidence that the rate is above ``p0`` is the beta-binomial mixture likelihood ratio
  (Robbins 1970; Howard, Ramdas, McAuliffe & Sekhon 2021, *Ann. Statist.* 49(2), §3)

      M_n(p0) = ∫_{p0}^1 p^S (1 − p)^(n−S) dπ(p) / [π([p0, 1]) · p0^S (1 − p0)^(n−S)]

  with ``S`` events in ``n`` trials and a uniform prior π truncated to ``[p0, 1]``. For every
  ``p ≥ p0`` the single-trial likelihood ratio has expectation ≤ 1 whenever the true rate is
  ``≤ p0``, so ``M_n`` is a non-negative supermartingale under the whole null "rate ≤ p0", and
  Ville's inequality gives ``P(sup_n M_n(p0) ≥ 1/a) ≤ a``: **the chance that the bound ever
  crosses the limit, over any number of looks, is at most a**. The "below ``p0``" evidence is
  the mirror image (prior truncated to ``[0, p0]``);
  :func:`rate_log_evalue` computes both, :func:`rate_confidence_bound` inverts them;
* ``breached`` only when **both** the time-uniform lower bound at level :data:`BREACH_ALPHA`
  = 0.001 exceeds the limit (so with the true rate at or below the limit, the chance of
  *ever* a false breach is at most 0.001, however often it is checked) **and**, where the
  champion's rate is known, the challenger's rate is significantly above the champion's
  (one-sided Fisher exact test at the same level), so a champion whose own baseline is above
  the limit does not get an identical challenger rolled back. With no champion count (a
  canary stage at 100 %, a shadow discrepancy, an interleaving's failures) the absolute bound
  alone decides. A clearly broken release is still caught fast: a 20 %-error challenger
  crosses a 1 % limit after about 20 requests;
* ``met`` when the time-uniform **upper** bound at level ``alpha`` is at or below the limit
  (so with the true rate above the limit, the chance of ever a wrong "met" is at most
  ``alpha``); with no error at all that takes about 450 requests for a 1 % limit at
  ``alpha = 0.05`` (a fixed-sample Wilson bound: about 380);
* ``inconclusive`` otherwise: too little data to tell, which blocks promotion but does not
  roll back; ``no_data`` with no request at all.

The guarantee is per guardrail and per challenger; a caller judging several challengers at
once divides the levels (Bonferroni), as the A/B/n analysis does. Trials are taken as
independent: requests of one user that fail together (a user whose inputs always crash the
model) make the sequence anti-conservative, as they would any binomial bound.

The **p99 latency** compares point estimates (no error guarantee), and only once both arms
have :data:`MIN_LATENCY_REQUESTS` successful requests, where the p99 rests on at least 10
tail requests.

The decision functions (:func:`arbiter.stats.verdict.decide` and the others) take the
conclusive results as :class:`GuardrailObservation` (:attr:`GuardrailCheck.observation`) or
the checks themselves.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from scipy import optimize as _opt
from scipy import special as _sp
from scipy import stats as _st
from statsmodels.stats.proportion import proportion_confint

from arbiter.errors import InvalidInputError

#: Level of the one-sided tests that declare a rate breached (see the module docstring).
BREACH_ALPHA = 0.001
#: Successful requests per arm before the p99 latency guardrail is judged.
MIN_LATENCY_REQUESTS = 1000

GuardrailStatus = Literal["met", "breached", "inconclusive", "no_data"]


@dataclass(frozen=True, slots=True)
class Guardrail:
    """A limit the challenger must respect, whatever the primary metric says.

    Parameters
    ----------
    name : str
        Identifier matched against :class:`GuardrailObservation` names (e.g.
        ``"error_rate"``, ``"latency_p99_ms"``, ``"shadow_discrepancy_rate"``, ``"psi"``).
    threshold : float
        Absolute limit, or with ``relative_to_champion`` the allowed relative degradation
        versus the champion (0.1 = 10 % worse).
    comparison : {"max", "min"}
        ``"max"``: the challenger must stay at or below the limit (error rate, latency);
        ``"min"``: at or above it (throughput, accuracy).
    relative_to_champion : bool, default=False
        Limit is ``champion + threshold * |champion|`` for ``"max"`` and
        ``champion - threshold * |champion|`` for ``"min"``.
    """

    name: str
    threshold: float
    comparison: Literal["max", "min"] = "max"
    relative_to_champion: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidInputError("Guardrail.name must be non-empty", field="name")
        if self.comparison not in ("max", "min"):
            raise InvalidInputError(
                f"Guardrail {self.name!r}: comparison must be 'max' or 'min', "
                f"got {self.comparison!r}",
                field="comparison",
            )
        if not math.isfinite(self.threshold):
            raise InvalidInputError(
                f"Guardrail {self.name!r}: threshold must be finite, got {self.threshold!r}",
                field="threshold",
            )
        if self.relative_to_champion and self.threshold < 0:
            raise InvalidInputError(
                f"Guardrail {self.name!r}: a relative threshold is an allowed degradation "
                f"and must be >= 0, got {self.threshold!r}",
                field="threshold",
            )


@dataclass(frozen=True, slots=True)
class GuardrailObservation:
    """Observed guardrail value for the challenger (and the champion, for relative limits)."""

    name: str
    challenger: float
    champion: float | None = None


@dataclass(frozen=True, slots=True)
class GuardrailCheck:
    """One guardrail judged from the data (see the module docstring for the rules).

    Attributes
    ----------
    name : str
    status : {"met", "breached", "inconclusive", "no_data"}
    challenger, champion : float or None
        Observed values (a rate, or a p99 in ms); None when not observed.
    limit : float or None
        The limit the challenger is held to (for the p99: champion p99 times the allowed ratio).
    ci_low, ci_high : float or None
        A rate's time-uniform confidence sequence at level ``alpha`` (each side one-sided at
        ``alpha``; ``ci_high`` decides ``met``).
    breach_bound : float or None
        A rate's time-uniform lower bound at level ``breach_alpha`` (decides ``breached``).
    excess_p_value : float or None
        One-sided Fisher p-value of "challenger rate > champion rate"; None without a champion
        count.
    alpha : float or None
        Level of the confidence sequence that decides ``met`` (None for the p99).
    breach_alpha : float or None
        Level of the breach bound and excess test (None for the p99).
    """

    name: str
    status: GuardrailStatus
    challenger: float | None = None
    champion: float | None = None
    limit: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    breach_bound: float | None = None
    excess_p_value: float | None = None
    alpha: float | None = None
    breach_alpha: float | None = None

    @property
    def conclusive(self) -> bool:
        """Whether the data tell (``met`` or ``breached``)."""
        return self.status in ("met", "breached")

    @property
    def observation(self) -> GuardrailObservation | None:
        """What :func:`arbiter.stats.verdict.decide` compares, only when conclusive.

        An inconclusive guardrail has "no observation", which blocks promotion without
        rolling back.
        """
        if not self.conclusive or self.challenger is None:
            return None
        return GuardrailObservation(self.name, self.challenger, self.champion)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values (a display row)."""
        return asdict(self)


def wilson_interval(successes: int, n: int, alpha: float) -> tuple[float, float]:
    """Two-sided Wilson score interval of a proportion at level ``1 - alpha`` (statsmodels').

    Near nominal coverage even for rates near 0, unlike the Wald interval, which collapses to a
    point at 0 events. (statsmodels rather than ``scipy.stats.binomtest(...).proportion_ci``:
    the same numbers, ten times faster, and a canary checkpoint runs inside a serving process.)
    """
    _check_counts(successes, n, "successes")
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return float(low), float(high)


def exact_lower_bound(successes: int, n: int, alpha: float) -> float:
    """One-sided exact (Clopper–Pearson) lower confidence bound of a proportion at ``1 - alpha``.

    Exact: its coverage is at least ``1 - alpha`` for every true rate and sample size, which a
    rule applied at a tiny ``alpha`` needs (an approximate bound's error is largest in the
    tail it is used in).
    """
    _check_counts(successes, n, "successes")
    # The one-sided bound at 1 - alpha is the lower end of the two-sided interval at 1 - 2 alpha.
    low, _ = proportion_confint(successes, n, alpha=2.0 * alpha, method="beta")
    return float(low)


def excess_p_value(
    challenger_events: int, challenger_n: int, champion_events: int, champion_n: int
) -> float:
    """One-sided Fisher exact p-value of "the challenger's rate is above the champion's"."""
    _check_counts(challenger_events, challenger_n, "challenger_events")
    _check_counts(champion_events, champion_n, "champion_events")
    table = [
        [challenger_events, challenger_n - challenger_events],
        [champion_events, champion_n - champion_events],
    ]
    return float(_st.fisher_exact(table, alternative="greater").pvalue)


RateSide = Literal["above", "below"]


def rate_log_evalue(events: int, n: int, p0: float, side: RateSide) -> float:
    """Log of the beta-binomial mixture e-value that the rate is ``side`` of ``p0``.

    ``side="above"``: evidence against "rate ≤ p0" (uniform prior on ``[p0, 1]``);
    ``"below"``: against "rate ≥ p0" (uniform prior on ``[0, p0]``). Each is a non-negative
    supermartingale under its whole null, so ``P(ever ≥ log(1/a)) ≤ a`` over any number of
    looks (module docstring). ``+inf`` when the data rule the null out (an event with
    ``p0 = 0`` for "above"), ``-inf`` when the null cannot be rejected (``p0 ≥ 1`` for
    "above").
    """
    _check_counts(events, n, "events")
    s, f = float(events), float(n - events)
    if side == "above":
        if p0 >= 1.0:
            return -math.inf
        if p0 <= 0.0:
            return math.inf if events else 0.0
        tail = _sp.betaincc(s + 1.0, f + 1.0, p0)
        prior = math.log1p(-p0)
    else:
        if p0 <= 0.0:
            return -math.inf
        if p0 >= 1.0:
            return math.inf if events < n else 0.0
        tail = _sp.betainc(s + 1.0, f + 1.0, p0)
        prior = math.log(p0)
    if tail <= 0.0:  # the posterior puts no mass on the alternative: no evidence
        return -math.inf
    log_null = s * math.log(p0) + f * math.log1p(-p0)
    return float(_sp.betaln(s + 1.0, f + 1.0) + math.log(tail) - prior - log_null)


def rate_confidence_bound(
    events: int, n: int, alpha: float, side: Literal["lower", "upper"]
) -> float:
    """Time-uniform one-sided bound of a rate at level ``1 - alpha`` (module docstring).

    The ``"lower"`` bound is the smallest ``p0`` that :func:`rate_log_evalue` does not reject
    as "rate ≤ p0" at ``alpha``; with probability at least ``1 - alpha`` it stays at or below
    the true rate at **every** ``n`` simultaneously (likewise the ``"upper"`` bound). Found by
    root finding: the e-value is monotone in ``p0``.
    """
    _check_counts(events, n, "events")
    if not n:
        return 0.0 if side == "lower" else 1.0
    level = math.log(1.0 / alpha)
    which: RateSide = "above" if side == "lower" else "below"
    rate = events / n

    def gap(p0: float) -> float:
        return rate_log_evalue(events, n, p0, which) - level

    eps = 1e-12
    if side == "lower":
        # Rejected below the bound, not above; the observed rate itself is never rejected.
        if rate <= eps or gap(eps) < 0.0:
            return 0.0
        return float(_opt.brentq(gap, eps, max(rate, eps), xtol=1e-10))
    if rate >= 1.0 - eps or gap(1.0 - eps) < 0.0:
        return 1.0
    return float(_opt.brentq(gap, min(rate, 1.0 - eps), 1.0 - eps, xtol=1e-10))


def check_rate(
    name: str,
    events: int,
    n: int,
    limit: float,
    *,
    champion_events: int | None = None,
    champion_n: int | None = None,
    alpha: float = 0.05,
    breach_alpha: float = BREACH_ALPHA,
) -> GuardrailCheck:
    """Judge a rate guardrail (error rate, discrepancy rate) with time-uniform bounds.

    Safe to call at every look: with the true rate at or below ``limit`` the chance that any
    call ever returns ``breached`` is at most ``breach_alpha``, and with the true rate above it
    the chance that any call ever returns ``met`` is at most ``alpha`` (module docstring).

    Parameters
    ----------
    name : str
        The guardrail's name.
    events, n : int
        The challenger's events (errors, disagreements) out of ``n`` trials.
    limit : float
        Largest acceptable rate.
    champion_events, champion_n : int, optional
        The champion's counts; when given (``champion_n > 0``) a breach also needs the
        challenger to be significantly above the champion.
    alpha : float, default=0.05
        Level of the time-uniform upper bound that decides ``met``.
    breach_alpha : float, default=BREACH_ALPHA
        Level of the time-uniform lower bound and the excess test that decide ``breached``;
        small because a breach rolls back at once. Divide it by the number of
        challengers judged at once (Bonferroni), as the A/B/n analysis does.

    Returns
    -------
    GuardrailCheck
        ``no_data`` when ``n`` is 0.
    """
    for label, level in (("alpha", alpha), ("breach_alpha", breach_alpha)):
        if not (0.0 < level < 1.0):
            raise InvalidInputError(f"{label} must be in (0, 1), got {level!r}", field=label)
    has_champion = champion_n is not None and champion_n > 0
    champion_rate = (champion_events or 0) / champion_n if has_champion else None  # type: ignore[operator]
    if not n:
        return GuardrailCheck(
            name, "no_data", None, champion_rate, limit, alpha=alpha, breach_alpha=breach_alpha
        )
    low = rate_confidence_bound(events, n, alpha, "lower")
    high = rate_confidence_bound(events, n, alpha, "upper")
    bound = rate_confidence_bound(events, n, breach_alpha, "lower")
    excess = (
        excess_p_value(events, n, champion_events or 0, champion_n)  # type: ignore[arg-type]
        if has_champion
        else None
    )
    # Decided on the e-values at the limit (the bounds above are for display: the same
    # sequence inverted, up to root-finding tolerance).
    above = rate_log_evalue(events, n, limit, "above") >= math.log(1.0 / breach_alpha)
    # A limit of 1 or more cannot be exceeded: met whatever the data.
    below = limit >= 1.0 or rate_log_evalue(events, n, limit, "below") >= math.log(1.0 / alpha)
    if above and (excess is None or excess < breach_alpha):
        status: GuardrailStatus = "breached"
    elif below:
        status = "met"
    else:
        status = "inconclusive"
    return GuardrailCheck(
        name,
        status,
        events / n,
        champion_rate,
        limit,
        low,
        high,
        bound,
        excess,
        alpha,
        breach_alpha,
    )


def check_latency(
    name: str,
    challenger_p99: float,
    champion_p99: float,
    allowed_degradation: float,
    *,
    challenger_ok: int,
    champion_ok: int,
    min_requests: int = MIN_LATENCY_REQUESTS,
) -> GuardrailCheck:
    """Judge a latency guardrail relative to the champion (point estimates; module docstring).

    Parameters
    ----------
    name : str
        The guardrail's name.
    challenger_p99, champion_p99 : float
        The arms' p99 latency (NaN when not measured).
    allowed_degradation : float
        Allowed relative increase: the limit is ``champion_p99 * (1 + allowed_degradation)``.
    challenger_ok, champion_ok : int
        Successful requests per arm, which the p99 rests on.
    min_requests : int, default=MIN_LATENCY_REQUESTS
        Below this on either arm the check is ``inconclusive``.

    Returns
    -------
    GuardrailCheck
    """
    if not (math.isfinite(challenger_p99) and math.isfinite(champion_p99)):
        return GuardrailCheck(name, "no_data")
    limit = champion_p99 * (1.0 + allowed_degradation)
    status: GuardrailStatus = "met" if challenger_p99 <= limit else "breached"
    if min(challenger_ok, champion_ok) < min_requests:
        status = "inconclusive"
    return GuardrailCheck(name, status, challenger_p99, champion_p99, limit)


def _check_counts(events: int, n: int, field: str) -> None:
    if not (0 <= events <= n):
        raise InvalidInputError(f"{field} must be in [0, n], got {events} of {n}", field=field)


__all__ = [
    "BREACH_ALPHA",
    "MIN_LATENCY_REQUESTS",
    "Guardrail",
    "GuardrailCheck",
    "GuardrailObservation",
    "GuardrailStatus",
    "RateSide",
    "check_latency",
    "check_rate",
    "exact_lower_bound",
    "excess_p_value",
    "rate_confidence_bound",
    "rate_log_evalue",
    "wilson_interval",
]
