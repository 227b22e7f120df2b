"""Tests for Thompson-sampling allocation, its state, and the bandit routing strategy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import integrate, stats

from arbiter.errors import InvalidInputError
from arbiter.routing.bandit import (
    BanditConfig,
    BanditState,
    BanditStrategy,
    allocation,
    choose_arm,
    state_allocation,
    update,
    update_batch,
)
from arbiter.routing.strategies import Strategy

ARMS = ("champion", "challenger_1", "challenger_2")


def _run(rates: list[float], config: BanditConfig, seed: int, batches: int, batch: int):
    """Simulate Bernoulli arms, updating the allocation after every batch of requests."""
    rng = np.random.default_rng(seed)
    state = BanditState.new(ARMS[: len(rates)], config)
    shares = []
    for _ in range(batches):
        p = state_allocation(state, rng)
        shares.append(p)
        counts = rng.multinomial(batch, p)
        for arm, n, rate in zip(state.arms, counts, rates, strict=True):
            state = update_batch(state, arm, int(rng.binomial(n, rate)), int(n))
    return state, np.array(shares)


def test_warmup_is_uniform() -> None:
    state = BanditState.new(ARMS, BanditConfig(n_warmup=10))
    # arm 2 is clearly best but arm 0 has only 9 observations: still uniform
    state = update_batch(state, ARMS[0], 0, 9)
    state = update_batch(state, ARMS[1], 0, 50)
    state = update_batch(state, ARMS[2], 50, 50)
    assert state.in_warmup
    np.testing.assert_allclose(state_allocation(state, np.random.default_rng(0)), [1 / 3] * 3)
    state = update(state, ARMS[0], 0)
    assert not state.in_warmup
    assert state_allocation(state, np.random.default_rng(0))[2] > 0.9


@pytest.mark.parametrize("floor", [0.0, 0.02, 0.1, 1 / 3])
def test_floor_respected(floor: float) -> None:
    params = [[1, 200], [200, 1], [2, 100], [1, 1000]]
    if floor * 4 > 1:
        floor = 0.25
    p = allocation(params, floor, np.random.default_rng(1), draws=5000)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(p >= floor - 1e-12)
    if floor == 0.0:
        assert p[1] == 1.0


def test_floor_keeps_relative_shares_above_it() -> None:
    # Two near-equal good arms and two hopeless ones: the hopeless ones get exactly the floor
    # and the good ones keep their ratio.
    params = [[500, 500], [505, 495], [1, 1000], [1, 1000]]
    raw = allocation(params, 0.0, np.random.default_rng(5))
    floored = allocation(params, 0.05, np.random.default_rng(5))
    np.testing.assert_allclose(floored[2:], 0.05)
    assert floored[0] / floored[1] == pytest.approx(raw[0] / raw[1])


def test_allocation_matches_exact_probability_of_being_best() -> None:
    """Two arms: P(X_1 > X_0) by numerical integration of the Beta densities."""
    a0, b0, a1, b1 = 12, 30, 15, 28
    exact, _ = integrate.quad(lambda x: stats.beta.pdf(x, a1, b1) * stats.beta.cdf(x, a0, b0), 0, 1)
    p = allocation([[a0, b0], [a1, b1]], 0.0, np.random.default_rng(3), draws=200_000)
    # MC SE = sqrt(p(1-p)/draws) ≈ 0.0011; 4 SE tolerance
    assert p[1] == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / 200_000))


def test_allocation_converges_to_best_arm() -> None:
    config = BanditConfig(floor=0.01, n_warmup=50, draws=2000)
    state, shares = _run([0.10, 0.15, 0.25], config, seed=20261124, batches=60, batch=100)
    assert shares[0] == pytest.approx([1 / 3] * 3)  # warm-up
    assert shares[-1][2] > 0.95
    assert shares[-1].min() >= 0.01 - 1e-12
    assert state.n[2] > state.n[0] + state.n[1]
    assert int(np.argmax(state.posterior_mean)) == 2


def test_bounded_rewards_fractional_and_binarised() -> None:
    rng = np.random.default_rng(0)
    frac = BanditState.new(ARMS[:2], BanditConfig(reward="bounded", n_warmup=0))
    binar = BanditState.new(ARMS[:2], BanditConfig(reward="bounded", binarise=True, n_warmup=0))
    for _ in range(2000):
        arm = ARMS[int(rng.integers(2))]
        r = float(rng.beta(2, 6) if arm == ARMS[0] else rng.beta(4, 4))  # means 0.25 and 0.5
        frac = update(frac, arm, r)
        binar = update(binar, arm, r, rng=rng)
    for s in (frac, binar):
        np.testing.assert_allclose(s.posterior_mean, [0.25, 0.5], atol=0.04)
        assert state_allocation(s, rng)[1] == pytest.approx(0.99)  # the best arm, less the floor
    assert all(float(v).is_integer() for v in binar.successes)  # binarised: whole counts
    with pytest.raises(InvalidInputError, match="needs rng"):
        update(binar, ARMS[0], 0.3)
    with pytest.raises(InvalidInputError, match="cannot binarise"):
        update_batch(binar, ARMS[0], 3.0, 5)


def test_update_is_pure_and_validates() -> None:
    state = BanditState.new(ARMS)
    new = update(state, ARMS[1], 1)
    assert state.n == (0, 0, 0) and new.n == (0, 1, 0)
    assert new.posterior_params.tolist() == [[1, 1], [2, 1], [1, 1]]
    with pytest.raises(InvalidInputError, match="0 or 1"):
        update(state, ARMS[0], 0.5)
    with pytest.raises(InvalidInputError, match="unknown arm"):
        update(state, "nope", 1)
    with pytest.raises(InvalidInputError, match="reward_sum"):
        update_batch(state, ARMS[0], 6, 5)
    with pytest.raises(InvalidInputError, match="floor"):
        BanditState.new(ARMS, BanditConfig(floor=0.4))
    with pytest.raises(InvalidInputError, match="floor"):
        allocation([[1, 1], [1, 1]], 0.6, np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match="shape"):
        allocation([1, 1], 0.0, np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match="positive"):
        allocation([[0, 1], [1, 1]], 0.0, np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match="binarise"):
        BanditConfig(binarise=True)
    with pytest.raises(InvalidInputError, match="distinct"):
        BanditState.new(["a", "a"])


def test_state_json_round_trip() -> None:
    config = BanditConfig(floor=0.05, n_warmup=20, reward="bounded", prior_alpha=0.5)
    state = BanditState.new(ARMS, config)
    state = update(update(state, ARMS[0], 0.25), ARMS[2], 1.0)
    restored = BanditState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state
    with pytest.raises(InvalidInputError, match="invalid bandit state"):
        BanditState.from_dict({"arms": ["a"]})


def test_deterministic_with_seeded_generator() -> None:
    config = BanditConfig(n_warmup=5, draws=500)
    a = _run([0.2, 0.3, 0.4], config, seed=9, batches=10, batch=20)
    b = _run([0.2, 0.3, 0.4], config, seed=9, batches=10, batch=20)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    state = a[0]
    picks = [choose_arm(state, np.random.default_rng(4)) for _ in range(3)]
    assert len(set(picks)) == 1


def test_choose_arm_follows_allocation() -> None:
    state = BanditState.new(ARMS[:2], BanditConfig(n_warmup=0, floor=0.2, draws=200))
    state = update_batch(update_batch(state, ARMS[0], 0, 100), ARMS[1], 100, 100)
    rng = np.random.default_rng(8)
    picks = [choose_arm(state, rng) for _ in range(2000)]
    # allocation is (0.2, 0.8); binomial SE 0.009, 4 SE tolerance
    assert picks.count(ARMS[0]) / 2000 == pytest.approx(0.2, abs=0.036)


def test_strategy_routes_by_cumulative_share() -> None:
    strategy = BanditStrategy(ARMS, ("champion", "c1", "c2"), (0.5, 0.0, 0.5))
    typed: Strategy = strategy  # satisfies the routing protocol
    assert typed.name == "bandit"
    assert strategy.route("user-1", 0.0).arm == ARMS[0]
    assert strategy.route("user-1", 0.4999).arm == ARMS[0]
    assert strategy.route("user-1", 0.5).arm == ARMS[2]  # the zero-share arm is skipped
    assert strategy.route(None, 0.9999999999).alias == "c2"
    route = strategy.route("user-1", 0.7)
    assert route.unit_random and route.shadow_alias is None
    assert strategy.weights() == {ARMS[0]: 0.5, ARMS[1]: 0.0, ARMS[2]: 0.5}

    draws = np.random.default_rng(2).random(20_000)
    routed = [strategy.route(None, float(d)).arm for d in draws]
    assert routed.count(ARMS[0]) / len(routed) == pytest.approx(0.5, abs=0.015)


def test_strategy_from_state_allocation() -> None:
    state = BanditState.new(ARMS, BanditConfig(n_warmup=0))
    shares = state_allocation(state, np.random.default_rng(0))
    strategy = BanditStrategy.from_allocation(
        {ARMS[0]: "champion", ARMS[1]: "challenger", ARMS[2]: "challenger-2"}, shares
    )
    assert strategy.aliases == ("champion", "challenger", "challenger-2")
    assert sum(strategy.weights().values()) == pytest.approx(1.0)
    with pytest.raises(InvalidInputError, match="sum to 1"):
        BanditStrategy(ARMS[:2], ("x", "y"), (0.5, 0.6))
