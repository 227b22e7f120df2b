"""Traffic splits: which arm serves a unit.

Each challenger owns a fixed **slot** of the bucket space, laid out once per experiment by
:func:`slot_layout` from the configured shares: challenger *i*'s slot starts at
``start_i`` and holds ``capacity_i = share_i + (1 - sum of shares) / n``, so every challenger
can grow into an equal part of the champion's remainder. The challenger serves the buckets
``[start_i, start_i + share_i)`` of its slot; the champion serves everything else.

Why slots: a share change must not shuffle units between arms that did not change
(*monotonic assignment*). Growing challenger *i* only extends its range from its own start
point, so the units that move come from the champion and go to challenger *i*; shrinking it
moves units from challenger *i* back to the champion. No unit ever moves between two
challengers, whatever set of shares changes at once, and the units that move when a share
grows are exactly those that move back when it shrinks to the same value. What is *not*
monotonic: a challenger cannot grow beyond its slot (refused: a larger share needs a new
experiment, i.e. a new salt), and when one share falls while another rises, the units that
leave the first go to the champion and the units that join the second come from the
champion: the two sets are different units. With one challenger the slot is the whole space
from bucket 0, so an A/B test (and a canary ramp) routes exactly as consecutive ranges did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from arbiter.errors import InvalidInputError
from arbiter.routing.hashing import DEFAULT_BUCKETS, unit_bucket


@dataclass(frozen=True, slots=True)
class Arm:
    """An arm of an experiment: a name (``champion``, ``challenger``...) and its traffic share."""

    name: str
    share: float


@dataclass(frozen=True, slots=True)
class Assignment:
    """The arm chosen for one request, and how it was chosen."""

    arm: str
    bucket: int
    random: bool  # True when there was no unit id and the bucket was drawn at random


#: ``(start, capacity)`` of each challenger's slot, as fractions of the bucket space.
Layout = tuple[tuple[float, float], ...]

_EPS = 1e-9


def slot_layout(shares: Sequence[float]) -> Layout:
    """The slots of challengers whose configured shares are ``shares`` (in order).

    Each slot holds its configured share plus an equal part of what the champion keeps, and
    the slots are laid out one after the other from 0. The layout is fixed for the lifetime
    of an experiment (it depends on the configured shares only); later share changes move
    units only within each slot.

    Examples
    --------
    >>> slot_layout([0.5])
    ((0.0, 1.0),)
    >>> slot_layout([0.25, 0.25])
    ((0.0, 0.5), (0.5, 0.5))
    """
    n = len(shares)
    if n == 0:
        return ()
    spare = max(0.0, 1.0 - sum(shares)) / n
    out: list[tuple[float, float]] = []
    start = 0.0
    for share in shares:
        capacity = share + spare
        out.append((start, capacity))
        start += capacity
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Split:
    """A deterministic, sticky split of units across arms.

    Each challenger serves the first ``share`` of its slot (see :func:`slot_layout`; by
    default the layout of the challengers' own shares); the ``champion`` takes what is left.
    Shares are fractions of all units and must sum to at most 1.

    Parameters
    ----------
    layout : tuple of (start, capacity), optional
        The experiment's slots (from its *configured* shares), so that a changed share keeps
        every other arm's units in place. Default: :func:`slot_layout` of ``challengers``.
    """

    salt: str
    champion: str
    challengers: tuple[Arm, ...]
    buckets: int = DEFAULT_BUCKETS
    layout: Layout | None = None
    _ranges: tuple[tuple[str, int, int], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        total = 0.0
        for arm in self.challengers:
            if not 0.0 <= arm.share <= 1.0:
                raise InvalidInputError(
                    f"share of arm {arm.name!r} must be within [0, 1], got {arm.share}",
                    field=f"challengers.{arm.name}.share",
                )
            total += arm.share
        if total > 1.0 + 1e-12:
            raise InvalidInputError(
                f"challenger shares sum to {total:.4f}, more than 1", field="challengers"
            )
        names = [self.champion, *(a.name for a in self.challengers)]
        if len(set(names)) != len(names):
            raise InvalidInputError(f"arm names must be unique, got {names}", field="arms")
        if self.buckets < 1:
            raise InvalidInputError("buckets must be positive", field="buckets")
        layout = self.layout
        if layout is None:
            layout = slot_layout([a.share for a in self.challengers])
        if len(layout) != len(self.challengers):
            raise InvalidInputError(
                f"layout has {len(layout)} slots for {len(self.challengers)} challengers",
                field="layout",
            )
        ranges: list[tuple[str, int, int]] = []
        for arm, (start, capacity) in zip(self.challengers, layout, strict=True):
            if arm.share > capacity + _EPS:
                raise InvalidInputError(
                    f"share of arm {arm.name!r} can grow to at most {capacity:.4g} in this "
                    f"experiment without moving other arms' units, got {arm.share}; start a "
                    "new experiment (a new name) for a larger share",
                    field=f"challengers.{arm.name}.share",
                )
            # round() rather than int(): 0.29 * 10_000 is 2899.9999999999995 in binary floats.
            lower = round(start * self.buckets)
            upper = min(self.buckets, round((start + arm.share) * self.buckets))
            ranges.append((arm.name, lower, max(lower, upper)))
        object.__setattr__(self, "_ranges", tuple(ranges))

    @property
    def boundaries(self) -> tuple[tuple[str, int, int], ...]:
        """``(arm, first bucket, end bucket exclusive)`` for each challenger, in order."""
        return self._ranges

    def arm_for_bucket(self, bucket: int) -> str:
        """The arm that owns ``bucket``."""
        for name, lower, upper in self._ranges:
            if lower <= bucket < upper:
                return name
        return self.champion

    def assign(self, unit_id: str | None, draw: float) -> Assignment:
        """Assign a request to an arm.

        Parameters
        ----------
        unit_id
            The randomisation unit (user id). Requests from the same unit always get the same
            arm. ``None`` or ``""`` means there is no unit: the bucket comes from ``draw``.
        draw
            A uniform random number in ``[0, 1)`` supplied by the caller (the core does no I/O
            and holds no random state), used only when there is no unit id.
        """
        if unit_id:
            bucket = unit_bucket(self.salt, unit_id, self.buckets)
            return Assignment(self.arm_for_bucket(bucket), bucket, random=False)
        bucket = min(int(draw * self.buckets), self.buckets - 1)
        return Assignment(self.arm_for_bucket(bucket), bucket, random=True)

    def weights(self) -> dict[str, float]:
        """Expected share of traffic per arm (what an SRM check compares against)."""
        out: dict[str, float] = {}
        taken = 0
        for name, lower, upper in self._ranges:
            out[name] = (upper - lower) / self.buckets
            taken += upper - lower
        out[self.champion] = (self.buckets - taken) / self.buckets
        return out


def sample_shadow(rate: float, draw: float) -> bool:
    """Whether to mirror a request to the shadow model, given a uniform ``draw`` in [0, 1)."""
    return draw < rate
