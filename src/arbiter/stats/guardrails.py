"""Guardrails: limits a challenger must respect whatever the primary metric says, and the one
rule that decides, from counts, whether a limit is breached, met or not yet clear.

The A/B and A/B/n analyses (:mod:`arbiter.analysis`), the interleaving analysis and the
canary checkpoints (:mod:`arbiter.canary.measure`) all judge their guardrails here, so a
challenger's error rate is breached by the same evidence wherever it is measured.

Why the breach rule is strict
-----------------------------
A breached guardrail rolls a serving challenger back at once, and the rule is applied at
**every look**: every ``arbiter analyze`` of a running experiment and every canary
checkpoint (hundreds of them). A bound that is right 95 % of the time at one look is crossed
by chance sooner or later when it is looked at again and again: with the true error rate
exactly at the limit, a 95 % bound checked at 30 looks rolls back about a fifth of such
challengers (16–23 % in simulations with limits of 1–5 % and 100 requests per look; about
21.6 % in the issue's analysis). So a **rate** guardrail counts as

* ``breached`` only when **both** its one-sided exact (Clopper–Pearson) lower bound at level
  :data:`BREACH_ALPHA` = 0.001 exceeds the limit **and**, where the champion's rate is known,
  the challenger's rate is significantly above the champion's (one-sided Fisher exact test
  at the same level): a champion whose own baseline is above the limit does not get an
  identical challenger rolled back. With no champion count (a canary stage at 100 %, a shadow
  discrepancy, an interleaving's failures) the absolute bound alone decides. At 0.001 the
  chance of a false breach over 30 looks stays well under 5 % (``tests/stats/
  test_guardrails.py`` measures it), while a clearly broken release is still caught fast: a
  20 %-error challenger crosses a 1 % limit after about 20 requests;
* ``met`` when the two-sided Wilson interval at level ``alpha`` lies wholly at or below the
  limit (a wrong "met" only lets promotion proceed, which the primary test still gates);
* ``inconclusive`` otherwise: too little data to tell, which blocks promotion but does not
  roll back; ``no_data`` with no request at all.

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
        A rate's Wilson interval at level ``alpha`` (decides ``met``).
    breach_bound : float or None
        A rate's one-sided exact lower bound at level ``breach_alpha`` (decides ``breached``).
    excess_p_value : float or None
        One-sided Fisher p-value of "challenger rate > champion rate"; None without a champion
        count.
    alpha : float or None
        Level of the Wilson interval (None for the p99).
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
    """Judge a rate guardrail (error rate, discrepancy rate) with the one breach rule.

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
        Level of the Wilson interval that decides ``met``.
    breach_alpha : float, default=BREACH_ALPHA
        Level of the exact bound and the excess test that decide ``breached``; small because
        the rule is applied at every look (module docstring). Divide it by the number of
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
    low, high = wilson_interval(events, n, alpha)
    bound = exact_lower_bound(events, n, breach_alpha)
    excess = (
        excess_p_value(events, n, champion_events or 0, champion_n)  # type: ignore[arg-type]
        if has_champion
        else None
    )
    if bound > limit and (excess is None or excess < breach_alpha):
        status: GuardrailStatus = "breached"
    elif high <= limit:
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
    "check_latency",
    "check_rate",
    "exact_lower_bound",
    "excess_p_value",
    "wilson_interval",
]
