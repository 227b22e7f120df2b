"""The shape every decision of arbiter takes: a :class:`Verdict` listing its :class:`Criterion`.

Every strategy's decision function (:mod:`arbiter.stats.verdict`) returns one, so reports,
decision records and the canary's state machine read one type whatever was tested.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

Decision = Literal["promote", "keep_champion", "continue", "rollback", "confirm_with_ab"]
"""What to do with the challenger(s).

``confirm_with_ab`` comes only from a bandit (:func:`arbiter.stats.verdict.decide_bandit`): a
challenger leads, and a fixed-split A/B test must confirm it before any promotion, because
bandit-allocated data support no frequentist test.
"""


def reason_number(value: float | None) -> str:
    """A number inside a criterion's ``detail`` sentence: four significant digits written
    out (``12346``, ``0.003004``), ``< 0.0001`` below that, ``–`` when missing or NaN,
    infinities signed.

    The core writes its reasons as text, so it needs this one formatter of its own; tables and
    pages use :func:`arbiter.report.format.format_number` (the core cannot import the
    presentation layer).
    """
    if value is None:
        return "–"
    v = float(value)
    if math.isnan(v):
        return "–"
    # Never scientific notation beside plain decimals ("p=7.28e-06" next to "0.006099"):
    # below 10⁻⁴ the exact value decides nothing, so the sentence gives the bound.
    if 0 < abs(v) < 1e-4:
        return "< 0.0001" if v > 0 else "> -0.0001"
    if math.isfinite(v) and 1e-4 <= abs(v) < 1e15:
        decimals = max(3 - math.floor(math.log10(abs(v))), 0)
        text = f"{v:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{v:.4g}"


@dataclass(frozen=True, slots=True)
class PrimarySummary:
    """The primary test in a common shape (estimate = challenger − champion)."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str
    status: str = "ok"


@dataclass(frozen=True, slots=True)
class Criterion:
    """One check behind a verdict. ``met`` is True when the check passes (is satisfied)."""

    name: str
    met: bool
    observed: float | None
    threshold: float | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON output, decision records)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision and its reasons.

    Attributes
    ----------
    decision : {"promote", "keep_champion", "continue", "rollback", "confirm_with_ab"}
        ``confirm_with_ab`` only from :func:`~arbiter.stats.verdict.decide_bandit`.
    reasons : tuple of Criterion
        Every criterion evaluated, in rule order.
    estimated_remaining_sample : int or None
        Additional observations per arm expected to be needed (only when continuing; for
        A/B/n the largest of :attr:`remaining_per_arm`).
    primary : PrimarySummary or None
        The primary test (None when a rule before it decided, or for strategies whose test
        has another shape).
    srm_p_value : float or None
        Chi-square SRM p-value.
    winner : str or None
        The arm promoted (A/B/n, interleaving: ``"challenger"``) or leading (bandit; also with
        ``keep_champion`` when the champion leads).
    rolled_back : tuple of str
        The harmful arms a ``rollback`` names (A/B/n: possibly several).
    remaining_per_arm : dict of str to int or None
        Additional observations each arm needs (A/B/n, only when continuing).
    """

    decision: Decision
    reasons: tuple[Criterion, ...]
    estimated_remaining_sample: int | None = None
    primary: PrimarySummary | None = None
    srm_p_value: float | None = None
    winner: str | None = None
    rolled_back: tuple[str, ...] = ()
    remaining_per_arm: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a dict of plain Python values (nested dataclasses too)."""
        return asdict(self)


__all__ = ["Criterion", "Decision", "PrimarySummary", "Verdict"]
