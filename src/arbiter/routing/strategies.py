"""Experiment strategies: for one request, which alias answers and which alias shadows.

Each strategy is a small frozen object with one method, :meth:`route`, and no I/O. The gateway
builds one per served model from the home's configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from arbiter.routing.split import Arm, Layout, Split, sample_shadow

if TYPE_CHECKING:  # interleaving imports numpy; routing a request does not need it
    from arbiter.routing.interleaving import Method

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True, slots=True)
class Route:
    """Where one request goes."""

    arm: str  # the arm whose model answers (champion, challenger)
    alias: str  # the registry alias of that model
    shadow_alias: str | None  # an alias to score the same input off the request path
    unit_random: bool  # the arm was drawn at random (no unit id)


class Strategy(Protocol):
    name: str

    def route(self, unit_id: str | None, draw: float) -> Route:
        """Decide for one request; ``draw`` is a uniform random number in [0, 1)."""
        ...

    def weights(self) -> dict[str, float]:
        """Expected share of served traffic per arm."""
        ...


@dataclass(frozen=True, slots=True)
class ChampionOnly:
    """No experiment: the champion answers everything."""

    champion_alias: str
    name: str = "none"

    def route(self, unit_id: str | None, draw: float) -> Route:
        return Route(CHAMPION, self.champion_alias, None, unit_random=not unit_id)

    def weights(self) -> dict[str, float]:
        return {CHAMPION: 1.0}


@dataclass(frozen=True, slots=True)
class Interleave:
    """Interleaving of two rankers: the champion answers every request outside ``/rank``.

    ``/rank`` scores both rankers and merges their lists with ``method`` (at most ``length``
    items); this object carries those settings and routes every other protocol to the
    champion alone, so those requests are logged under strategy ``interleave``.
    """

    champion_alias: str
    challenger_alias: str
    method: Method = "team_draft"
    length: int | None = 10
    name: str = "interleave"

    def route(self, unit_id: str | None, draw: float) -> Route:
        return Route(CHAMPION, self.champion_alias, None, unit_random=not unit_id)

    def weights(self) -> dict[str, float]:
        return {CHAMPION: 1.0}


@dataclass(frozen=True, slots=True)
class Shadow:
    """The champion answers; a sample of requests is mirrored to the challenger."""

    champion_alias: str
    challenger_alias: str
    sample_rate: float
    name: str = "shadow"

    def route(self, unit_id: str | None, draw: float) -> Route:
        shadow = self.challenger_alias if sample_shadow(self.sample_rate, draw) else None
        return Route(CHAMPION, self.champion_alias, shadow, unit_random=not unit_id)

    def weights(self) -> dict[str, float]:
        return {CHAMPION: 1.0}


@dataclass(frozen=True, slots=True)
class ABTest:
    """Units are split between champion and challenger by a sticky hash."""

    champion_alias: str
    challenger_alias: str
    challenger_share: float
    salt: str
    name: str = "ab"

    split: Split = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Built once: route() runs on every request.
        split = Split(self.salt, CHAMPION, (Arm(CHALLENGER, self.challenger_share),))
        object.__setattr__(self, "split", split)

    def route(self, unit_id: str | None, draw: float) -> Route:
        assignment = self.split.assign(unit_id, draw)
        alias = self.challenger_alias if assignment.arm == CHALLENGER else self.champion_alias
        return Route(assignment.arm, alias, None, unit_random=assignment.random)

    def weights(self) -> dict[str, float]:
        return self.split.weights()


@dataclass(frozen=True, slots=True)
class MultiArmTest:
    """A/B/n: units are split between the champion and several challengers by a sticky hash.

    Each challenger's arm is named after its alias (``arms`` maps arm name -> share); the
    champion takes what is left. With one challenger named ``challenger`` this routes exactly
    like :class:`ABTest` with the same salt.

    ``layout`` fixes each challenger's slot of the hash space (see
    :func:`~arbiter.routing.split.slot_layout`): built from the *configured* shares, it keeps
    assignment monotonic when an operator changes shares while the experiment runs. Default:
    the layout of ``challengers``' own shares.
    """

    champion_alias: str
    challengers: tuple[tuple[str, str, float], ...]  # (arm, alias, share)
    salt: str
    name: str = "ab"
    layout: Layout | None = None

    split: Split = field(init=False, repr=False, compare=False)
    _aliases: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        arms = tuple(Arm(arm, share) for arm, _alias, share in self.challengers)
        object.__setattr__(self, "split", Split(self.salt, CHAMPION, arms, layout=self.layout))
        aliases = {CHAMPION: self.champion_alias}
        aliases.update({arm: alias for arm, alias, _share in self.challengers})
        object.__setattr__(self, "_aliases", aliases)

    def route(self, unit_id: str | None, draw: float) -> Route:
        assignment = self.split.assign(unit_id, draw)
        return Route(
            assignment.arm, self._aliases[assignment.arm], None, unit_random=assignment.random
        )

    def weights(self) -> dict[str, float]:
        return self.split.weights()


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "ABTest",
    "ChampionOnly",
    "Interleave",
    "MultiArmTest",
    "Route",
    "Shadow",
    "Strategy",
]
