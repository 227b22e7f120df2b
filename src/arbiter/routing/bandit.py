"""Thompson sampling over k arms, with a traffic floor and a warm-up.

Each arm's mean reward has a Beta posterior. Thompson sampling (Thompson 1933; Russo, Van Roy,
Kazerouni, Osband & Wen 2018, "A Tutorial on Thompson Sampling", *Found. Trends ML* 11(1))
sends each request to an arm with the posterior probability that the arm is the best. The
gateway does not sample per request: it recomputes :func:`allocation` (a Monte-Carlo estimate
of those probabilities) every so often and routes with :class:`BanditStrategy`.

Rewards:

* ``"binary"``: a success adds one to ``alpha``, a failure one to ``beta`` (conjugate
  Beta–Bernoulli update).
* ``"bounded"`` (any reward in [0, 1]): by default the *fractional* update
  ``alpha += r, beta += 1 − r``, a pseudo-conjugate update whose posterior mean is the running
  mean of the rewards. With ``binarise=True`` each reward is replaced by a Bernoulli(r) draw
  and the binary update applied (Agrawal & Goyal 2012, "Analysis of Thompson Sampling for the
  Multi-armed Bandit Problem", COLT, Algorithm 2), which keeps the posterior exactly Beta and
  inherits their regret bound; it needs a random draw per reward.

Two guards on top of plain Thompson sampling:

* **Warm-up**: the allocation is uniform until every arm has ``n_warmup`` observations, so an
  early run of luck cannot starve an arm before its posterior means anything.
* **Floor**: every arm keeps at least ``floor`` of the traffic, so a wrongly demoted arm can
  still recover and every arm keeps producing data for the final analysis.

.. warning::
   Data collected under a bandit allocation is adaptively sampled: the share of an arm
   depends on its earlier rewards. The naive per-arm mean is biased (downwards for arms that
   got unlucky early and were then starved) and naive confidence intervals undercover.
   Analyse bandit data with adjusted inference: adaptively weighted estimators (Hadad, Hirshberg,
   Zhan, Wager & Athey 2021, "Confidence intervals for policy evaluation in adaptive
   experiments", *PNAS* 118(15)) or the approach of Kasy & Sautmann 2021 ("Adaptive treatment
   assignment in experiments for policy choice", *Econometrica* 89(1)), or run a fixed-split
   A/B test for the decision itself.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from arbiter.errors import InvalidInputError
from arbiter.routing.strategies import Route

DEFAULT_DRAWS = 10_000

Reward = Literal["binary", "bounded"]


def _check_floor(floor: float, k: int) -> float:
    if not isinstance(floor, int | float) or not float(floor) >= 0.0 or floor * k > 1.0 + 1e-12:
        raise InvalidInputError(
            f"floor must be in [0, 1/k] = [0, {1 / k:.4g}] for {k} arms, got {floor!r}",
            field="floor",
        )
    return float(floor)


def _apply_floor(p: np.ndarray, floor: float) -> np.ndarray:
    """Raise arms below ``floor`` to it and shrink the others proportionally (water-filling).

    Arms clipped to the floor stay there; the remaining mass ``1 − floor·#clipped`` is shared
    among the other arms in proportion to ``p``. Repeated until no arm is below the floor
    (at most k rounds), so the result sums to one and respects the floor exactly, while arms
    already above it keep their relative shares.
    """
    if floor <= 0.0:
        return p
    k = p.size
    clipped = np.zeros(k, dtype=bool)
    out = p
    for _ in range(k):
        free = ~clipped
        mass = 1.0 - floor * clipped.sum()
        total = p[free].sum()
        out = np.where(clipped, floor, 0.0)
        if total > 0:
            out[free] = p[free] * (mass / total)
        else:
            out[free] = mass / free.sum()
        below = free & (out < floor)
        if not below.any():
            break
        clipped |= below
    return out


def allocation(
    posterior_params: ArrayLike,
    floor: float,
    rng: np.random.Generator,
    *,
    draws: int = DEFAULT_DRAWS,
) -> np.ndarray:
    """Traffic shares: the probability each arm is best, floored and renormalised.

    Parameters
    ----------
    posterior_params : array-like, shape (k, 2)
        ``(alpha, beta)`` of each arm's Beta posterior, both positive.
    floor : float
        Minimum share of each arm, in ``[0, 1/k]``.
    rng : numpy.random.Generator
        Source of the posterior draws.
    draws : int, default 10_000
        Monte-Carlo draws. The Monte-Carlo standard error of a share ``p`` is
        ``sqrt(p(1 − p)/draws)``, at most 0.005 at the default.

    Returns
    -------
    numpy.ndarray, shape (k,)
        Shares summing to one, each at least ``floor``. Before flooring, share ``i`` is the
        fraction of joint posterior draws in which arm ``i`` has the largest mean (exact ties,
        which need identical draws, go to the lower index).
    """
    params = np.asarray(posterior_params, dtype=float)
    if params.ndim != 2 or params.shape[1] != 2 or params.shape[0] < 1:
        raise InvalidInputError(
            f"posterior_params must have shape (k, 2), got {params.shape}",
            field="posterior_params",
        )
    if not np.all(np.isfinite(params)) or np.any(params <= 0):
        raise InvalidInputError(
            "posterior Beta parameters must be finite and positive", field="posterior_params"
        )
    if isinstance(draws, bool) or not isinstance(draws, int | np.integer) or draws < 1:
        raise InvalidInputError(f"draws must be a positive integer, got {draws!r}", field="draws")
    k = params.shape[0]
    floor = _check_floor(floor, k)
    samples = rng.beta(params[:, 0], params[:, 1], size=(int(draws), k))
    best = np.argmax(samples, axis=1)
    p = np.bincount(best, minlength=k) / float(draws)
    return _apply_floor(p, floor)


@dataclass(frozen=True, slots=True)
class BanditConfig:
    """How a bandit allocates traffic.

    Parameters
    ----------
    floor : float, default 0.01
        Minimum traffic share of each arm, in ``[0, 1/k]``.
    n_warmup : int, default 100
        Uniform allocation until every arm has this many observations.
    reward : {"binary", "bounded"}, default "binary"
        Rewards in {0, 1}, or anywhere in [0, 1].
    binarise : bool, default False
        Bounded rewards only: update with a Bernoulli(r) draw (Agrawal & Goyal 2012) instead
        of the fractional update; :func:`update` then needs ``rng``.
    prior_alpha, prior_beta : float, default 1.0
        The Beta prior of every arm (uniform by default).
    draws : int, default 10_000
        Monte-Carlo draws per :func:`allocation`.
    """

    floor: float = 0.01
    n_warmup: int = 100
    reward: Reward = "binary"
    binarise: bool = False
    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    draws: int = DEFAULT_DRAWS

    def __post_init__(self) -> None:
        if not isinstance(self.floor, int | float) or not 0.0 <= self.floor < 1.0:
            raise InvalidInputError(f"floor must be in [0, 1), got {self.floor!r}", field="floor")
        if (
            isinstance(self.n_warmup, bool)
            or not isinstance(self.n_warmup, int)
            or (self.n_warmup < 0)
        ):
            raise InvalidInputError(
                f"n_warmup must be a non-negative integer, got {self.n_warmup!r}",
                field="n_warmup",
            )
        if self.reward not in ("binary", "bounded"):
            raise InvalidInputError(
                f"reward must be 'binary' or 'bounded', got {self.reward!r}", field="reward"
            )
        if self.binarise and self.reward != "bounded":
            raise InvalidInputError("binarise only applies to reward='bounded'", field="binarise")
        for name in ("prior_alpha", "prior_beta"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
                raise InvalidInputError(f"{name} must be positive, got {value!r}", field=name)
        if isinstance(self.draws, bool) or not isinstance(self.draws, int) or self.draws < 1:
            raise InvalidInputError(
                f"draws must be a positive integer, got {self.draws!r}", field="draws"
            )


@dataclass(frozen=True, slots=True)
class BanditState:
    """Posterior of every arm: the sufficient statistics of a Thompson-sampling bandit.

    Build a fresh one with :meth:`new`. ``successes`` and ``failures`` are sums of rewards
    and of ``1 − reward`` (fractional for bounded rewards); the posterior of arm ``i`` is
    ``Beta(prior_alpha + successes[i], prior_beta + failures[i])``.
    """

    arms: tuple[str, ...]
    successes: tuple[float, ...]
    failures: tuple[float, ...]
    n: tuple[int, ...]
    config: BanditConfig = field(default_factory=BanditConfig)

    def __post_init__(self) -> None:
        k = len(self.arms)
        if k < 1 or len(set(self.arms)) != k:
            raise InvalidInputError(
                f"arms must be one or more distinct names, got {list(self.arms)}", field="arms"
            )
        if not len(self.successes) == len(self.failures) == len(self.n) == k:
            raise InvalidInputError(
                "successes, failures and n need one entry per arm", field="successes"
            )
        if any(v < 0 for v in (*self.successes, *self.failures, *self.n)):
            raise InvalidInputError("bandit counts must be non-negative", field="successes")
        _check_floor(self.config.floor, k)

    @classmethod
    def new(cls, arms: Sequence[str], config: BanditConfig | None = None) -> BanditState:
        """A bandit with no observations."""
        k = len(arms)
        return cls(tuple(arms), (0.0,) * k, (0.0,) * k, (0,) * k, config or BanditConfig())

    @property
    def posterior_params(self) -> np.ndarray:
        """``(alpha, beta)`` per arm, shape (k, 2)."""
        c = self.config
        return np.column_stack(
            [c.prior_alpha + np.asarray(self.successes), c.prior_beta + np.asarray(self.failures)]
        )

    @property
    def posterior_mean(self) -> np.ndarray:
        """Posterior mean reward per arm (shrunk towards the prior; see the module warning)."""
        p = self.posterior_params
        return p[:, 0] / p.sum(axis=1)

    @property
    def in_warmup(self) -> bool:
        """Some arm has fewer than ``n_warmup`` observations."""
        return min(self.n) < self.config.n_warmup

    def index(self, arm: str) -> int:
        """Position of ``arm`` in :attr:`arms`."""
        try:
            return self.arms.index(arm)
        except ValueError:
            raise InvalidInputError(
                f"unknown arm {arm!r}; this bandit has arms {list(self.arms)}", field="arm"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; :meth:`from_dict` restores it exactly."""
        c = self.config
        return {
            "arms": list(self.arms),
            "successes": [float(v) for v in self.successes],
            "failures": [float(v) for v in self.failures],
            "n": [int(v) for v in self.n],
            "config": {
                "floor": c.floor,
                "n_warmup": c.n_warmup,
                "reward": c.reward,
                "binarise": c.binarise,
                "prior_alpha": c.prior_alpha,
                "prior_beta": c.prior_beta,
                "draws": c.draws,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BanditState:
        """Inverse of :meth:`to_dict`."""
        try:
            config = BanditConfig(**data.get("config", {}))
            return cls(
                tuple(str(a) for a in data["arms"]),
                tuple(float(v) for v in data["successes"]),
                tuple(float(v) for v in data["failures"]),
                tuple(int(v) for v in data["n"]),
                config,
            )
        except (KeyError, TypeError) as exc:
            raise InvalidInputError(f"invalid bandit state: {exc}", field="state") from exc


def state_allocation(state: BanditState, rng: np.random.Generator) -> np.ndarray:
    """The allocation to use now: uniform during warm-up, else :func:`allocation`."""
    k = len(state.arms)
    if state.in_warmup:
        return np.full(k, 1.0 / k)
    return allocation(state.posterior_params, state.config.floor, rng, draws=state.config.draws)


def choose_arm(state: BanditState, rng: np.random.Generator) -> str:
    """Draw one arm from :func:`state_allocation`.

    Costs one Monte-Carlo allocation (``config.draws × k`` Beta draws); a server should
    compute the allocation periodically and route with :class:`BanditStrategy` instead.
    """
    p = state_allocation(state, rng)
    return state.arms[int(rng.choice(len(p), p=p))]


def update(
    state: BanditState, arm: str, reward: float, *, rng: np.random.Generator | None = None
) -> BanditState:
    """The state after observing ``reward`` on ``arm`` (a new object; ``state`` is unchanged).

    Parameters
    ----------
    state : BanditState
    arm : str
    reward : float
        In {0, 1} for ``reward="binary"``, in [0, 1] for ``"bounded"``.
    rng : numpy.random.Generator, optional
        Required with ``binarise=True``: the Bernoulli(reward) draw of Agrawal & Goyal 2012.
    """
    c = state.config
    r = float(reward)
    if c.reward == "binary" and r not in (0.0, 1.0):
        raise InvalidInputError(
            f"reward must be 0 or 1 for a binary bandit, got {reward!r}", field="reward"
        )
    if not 0.0 <= r <= 1.0:
        raise InvalidInputError(f"reward must be within [0, 1], got {reward!r}", field="reward")
    if c.binarise:
        if rng is None:
            raise InvalidInputError(
                "a binarising bandit needs rng to draw the Bernoulli(reward) outcome", field="rng"
            )
        r = float(rng.random() < r)
    return update_batch(state, arm, r, 1)


def update_batch(state: BanditState, arm: str, reward_sum: float, count: int) -> BanditState:
    """The state after ``count`` rewards on ``arm`` summing to ``reward_sum``.

    The Beta update only needs sums, so the gateway can update from per-arm aggregates.
    Not available with ``binarise=True`` (each reward needs its own Bernoulli draw).
    """
    if state.config.binarise and count != 1:
        raise InvalidInputError(
            "update_batch cannot binarise aggregated rewards; call update() per reward",
            field="binarise",
        )
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
        raise InvalidInputError(f"count must be a non-negative integer, got {count!r}")
    s = float(reward_sum)
    if not 0.0 <= s <= count:
        raise InvalidInputError(
            f"reward_sum must be within [0, count] = [0, {count}], got {reward_sum!r}",
            field="reward_sum",
        )
    i = state.index(arm)
    successes = list(state.successes)
    failures = list(state.failures)
    n = list(state.n)
    successes[i] += s
    failures[i] += count - s
    n[i] += int(count)
    return replace(state, successes=tuple(successes), failures=tuple(failures), n=tuple(n))


@dataclass(frozen=True, slots=True)
class BanditStrategy:
    """Route requests over arms with given traffic shares (a :class:`Strategy`).

    The shares usually come from :func:`state_allocation`, recomputed periodically by the
    caller; this object holds no posterior and no random state.

    Assignment is **per request, not sticky per user**: the same user can be served by
    different arms on successive requests (``unit_id`` is ignored and ``Route.unit_random``
    is always ``True``). Use an :class:`~arbiter.routing.strategies.ABTest` where a
    consistent per-user experience matters.

    Bandit-allocated data needs **adjusted inference**: the allocation depends on past
    rewards, which biases naive per-arm means and makes naive intervals undercover (Hadad
    et al. 2021, *PNAS* 118(15); Kasy & Sautmann 2021, *Econometrica* 89(1)). Do not feed it
    to the fixed-split tests of :mod:`arbiter.stats` as if it were an A/B test.

    Parameters
    ----------
    arms : tuple of str
        Arm names (``champion``, ``challenger``, ...).
    aliases : tuple of str
        The registry alias serving each arm.
    shares : tuple of float
        Traffic share of each arm, non-negative, summing to one.
    """

    arms: tuple[str, ...]
    aliases: tuple[str, ...]
    shares: tuple[float, ...]
    name: str = "bandit"

    cumulative: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        k = len(self.arms)
        if k < 1 or len(set(self.arms)) != k:
            raise InvalidInputError(
                f"arms must be one or more distinct names, got {list(self.arms)}", field="arms"
            )
        if not len(self.aliases) == len(self.shares) == k:
            raise InvalidInputError("aliases and shares need one entry per arm", field="shares")
        if any(not (math.isfinite(s) and s >= 0) for s in self.shares) or not math.isclose(
            math.fsum(self.shares), 1.0, abs_tol=1e-9
        ):
            raise InvalidInputError(
                f"shares must be non-negative and sum to 1, got {list(self.shares)}",
                field="shares",
            )
        cum: list[float] = []
        total = 0.0
        for s in self.shares:
            total += s
            cum.append(total)
        object.__setattr__(self, "cumulative", tuple(cum))

    @classmethod
    def from_allocation(
        cls, aliases: Mapping[str, str], shares: Mapping[str, float] | Sequence[float]
    ) -> BanditStrategy:
        """Build from ``{arm: alias}`` and shares keyed by arm (or in the order of ``aliases``)."""
        arms = tuple(aliases)
        values = (
            tuple(float(shares[a]) for a in arms)
            if isinstance(shares, Mapping)
            else tuple(float(s) for s in shares)
        )
        return cls(arms, tuple(aliases[a] for a in arms), values)

    def route(self, unit_id: str | None, draw: float) -> Route:
        """The arm whose cumulative-share interval contains ``draw`` (uniform in [0, 1))."""
        i = bisect.bisect_right(self.cumulative, draw)
        i = min(i, len(self.arms) - 1)  # draw ≥ the float sum of the shares
        while self.shares[i] == 0.0 and i > 0:  # never route to a zero-share arm
            i -= 1
        return Route(self.arms[i], self.aliases[i], None, unit_random=True)

    def weights(self) -> dict[str, float]:
        return dict(zip(self.arms, self.shares, strict=True))


__all__ = [
    "DEFAULT_DRAWS",
    "BanditConfig",
    "BanditState",
    "BanditStrategy",
    "allocation",
    "choose_arm",
    "state_allocation",
    "update",
    "update_batch",
]
