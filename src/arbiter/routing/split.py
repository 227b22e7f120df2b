"""Traffic splits: which arm serves a unit.

Arms own consecutive ranges of buckets, challengers first from bucket 0 and the champion
last. Growing a challenger's share only extends its range, so a unit can move from the
champion to a challenger but never back: a ramp is monotonic by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Split:
    """A deterministic, sticky split of units across arms.

    ``challengers`` are given bucket ranges in order starting at 0; the ``champion`` takes what
    is left. Shares are fractions of all units and must sum to at most 1.
    """

    salt: str
    champion: str
    challengers: tuple[Arm, ...]
    buckets: int = DEFAULT_BUCKETS

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

    @property
    def boundaries(self) -> tuple[tuple[str, int], ...]:
        """``(arm, upper bucket bound, exclusive)`` for each challenger, in order."""
        out: list[tuple[str, int]] = []
        cumulative = 0.0
        for arm in self.challengers:
            cumulative += arm.share
            # round() rather than int(): 0.29 * 10_000 is 2899.9999999999995 in binary floats.
            out.append((arm.name, min(self.buckets, round(cumulative * self.buckets))))
        return tuple(out)

    def arm_for_bucket(self, bucket: int) -> str:
        """The arm that owns ``bucket``."""
        for name, upper in self.boundaries:
            if bucket < upper:
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
        bounds = self.boundaries
        out: dict[str, float] = {}
        lower = 0
        for name, upper in bounds:
            out[name] = (upper - lower) / self.buckets
            lower = upper
        out[self.champion] = (self.buckets - lower) / self.buckets
        return out


def sample_shadow(rate: float, draw: float) -> bool:
    """Whether to mirror a request to the shadow model, given a uniform ``draw`` in [0, 1)."""
    return draw < rate
