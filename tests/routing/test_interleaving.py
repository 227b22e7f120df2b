"""Tests for team-draft and balanced interleaving and their credit assignment."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbiter.errors import InvalidInputError
from arbiter.routing.interleaving import (
    BALANCED,
    TEAM_A,
    TEAM_B,
    TEAM_DRAFT,
    Credit,
    Interleaving,
    balanced,
    count_outcomes,
    credit,
    interleave,
    outcomes_by_user,
    team_draft,
)
from arbiter.stats.interleaving import clustered_interleaving_test, interleaving_test

ALPHA = 0.05


class _Coins:
    """Scripted 'uniform draws' standing in for a Generator: < 0.5 means A, else B."""

    def __init__(self, *values: float) -> None:
        self._values = list(values)

    def random(self) -> float:
        return self._values.pop(0)


rankings = st.lists(st.integers(0, 15), unique=True, max_size=12)


# --- properties of the merged list -------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    a=rankings,
    b=rankings,
    k=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
    method=st.sampled_from([TEAM_DRAFT, BALANCED]),
)
def test_merged_list_properties(a: list[int], b: list[int], k: int, seed: int, method) -> None:
    il = interleave(a, b, np.random.default_rng(seed), method=method, k=k)
    assert len(il.items) == min(k, len(set(a) | set(b)))
    assert len(set(il.items)) == len(il.items)
    assert set(il.items) <= set(a) | set(b)
    assert len(il.teams) == len(il.items)
    for item, team in zip(il.items, il.teams, strict=True):
        assert item in (a if team == TEAM_A else b)
    # each ranker's contributions appear in that ranker's relative order
    for team, ranking in ((TEAM_A, a), (TEAM_B, b)):
        ranks = [ranking.index(x) for x, t in zip(il.items, il.teams, strict=True) if t == team]
        assert ranks == sorted(ranks)


@settings(max_examples=300, deadline=None)
@given(a=rankings, b=rankings, k=st.integers(1, 30), seed=st.integers(0, 2**32 - 1))
def test_team_draft_balance(a: list[int], b: list[int], k: int, seed: int) -> None:
    """While both rankings have unshown items, team sizes differ by at most one."""
    il = team_draft(a, b, np.random.default_rng(seed), k=k)
    for m in range(len(il.items) + 1):
        shown = set(il.items[:m])
        if set(a) - shown and set(b) - shown:
            n_a = il.teams[:m].count(TEAM_A)
            assert abs(n_a - (m - n_a)) <= 1


@settings(max_examples=200, deadline=None)
@given(a=st.permutations(list(range(10))), seed=st.integers(0, 2**32 - 1))
def test_team_draft_same_items_is_balanced_throughout(a: list[int], seed: int) -> None:
    b = list(np.random.default_rng(seed).permutation(a))
    il = team_draft(a, b, np.random.default_rng(seed + 1))
    assert abs(il.teams.count(TEAM_A) - il.teams.count(TEAM_B)) <= 1
    assert sorted(il.items) == sorted(a)


@settings(max_examples=200, deadline=None)
@given(a=rankings, b=rankings, seed=st.integers(0, 2**32 - 1))
def test_balanced_prefixes_are_top_k_unions(a: list[int], b: list[int], seed: int) -> None:
    """Joachims 2002: each prefix is top-k_a of A ∪ top-k_b of B with |k_a − k_b| ≤ 1."""
    il = balanced(a, b, np.random.default_rng(seed))
    for m in range(len(il.items) + 1):
        prefix = set(il.items[:m])
        if set(a) - prefix and set(b) - prefix:  # both rankings still going
            assert any(
                prefix == set(a[:ka]) | set(b[:kb])
                for ka in range(len(a) + 1)
                for kb in range(max(0, ka - 1), min(len(b), ka + 1) + 1)
            )


def test_deterministic_with_seeded_generator() -> None:
    a, b = list("abcdefgh"), list("hgfedcba")
    for method in (TEAM_DRAFT, BALANCED):
        first = interleave(a, b, np.random.default_rng(7), method=method, k=6)
        again = interleave(a, b, np.random.default_rng(7), method=method, k=6)
        assert first == again


def test_team_draft_picks_first_with_equal_probability() -> None:
    a, b = ["a1", "a2"], ["b1", "b2"]
    rng = np.random.default_rng(1)
    firsts = [team_draft(a, b, rng).teams[0] == TEAM_A for _ in range(4000)]
    # binomial(4000, 1/2): SE 0.0079, 4 SE tolerance
    assert abs(np.mean(firsts) - 0.5) < 0.032


def test_empty_and_short_rankings() -> None:
    rng = np.random.default_rng(0)
    assert team_draft([], [], rng).items == ()
    il = team_draft(["a"], ["b", "c", "d"], rng, k=3)
    # A runs out after one pick; B fills the rest
    assert sorted(il.items) == ["a", "b", "c"]
    assert il.teams.count(TEAM_A) == 1
    assert balanced(["x"], [], rng, k=5).items == ("x",)


def test_bad_input_raises() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InvalidInputError, match="more than once"):
        team_draft(["a", "a"], ["b"], rng)
    with pytest.raises(InvalidInputError, match="k must be"):
        balanced(["a"], ["b"], rng, k=0)
    with pytest.raises(InvalidInputError, match="method"):
        interleave(["a"], ["b"], rng, method="probabilistic")  # type: ignore[arg-type]
    il = team_draft(["a"], ["b"], rng)
    with pytest.raises(InvalidInputError, match="not shown"):
        credit(il, ["zzz"])


# --- worked examples -----------------------------------------------------------------------------

A = ("a", "b", "c", "d")
B = ("b", "e", "a", "f")


def test_team_draft_worked_example() -> None:
    # Round 1: teams tied (0-0), coin 0.9 -> B picks its best, b.
    # Round 2: A has fewer -> A picks its best unshown: a.
    # Round 3: tied (1-1), coin 0.1 -> A picks c (b shown).
    # Round 4: B has fewer -> B picks e (b shown).
    il = team_draft(A, B, _Coins(0.9, 0.1), k=4)  # type: ignore[arg-type]
    assert il.items == ("b", "a", "c", "e")
    assert il.teams == (TEAM_B, TEAM_A, TEAM_A, TEAM_B)
    assert not il.a_first
    # clicks on a (team A) and e (team B): 1-1, a tie
    assert credit(il, ["a", "e"]) == Credit(1, 1, 2)
    assert credit(il, ["a", "e"]).outcome == 0
    # a click on c only: A wins
    assert credit(il, ["c"]).outcome == 1
    # b and e, both team B: B wins 2-0
    assert credit(il, ["e", "b", "b"]) == Credit(0, 2, 2)
    assert credit(il, ["e", "b"]).outcome == -1
    assert credit(il, []) == Credit(0, 0, 0)


def test_balanced_worked_example() -> None:
    # Coin 0.1 -> A leads. Pointers (k_a, k_b) start at (0, 0):
    #   tie, A leads: A[0]=a added      (1, 0)
    #   k_b behind:   B[0]=b added      (1, 1)
    #   tie, A leads: A[1]=b shown      (2, 1)
    #   k_b behind:   B[1]=e added      (2, 2)
    #   tie, A leads: A[2]=c added      (3, 2)   -> four items, stop.
    il = balanced(A, B, _Coins(0.1), k=4)  # type: ignore[arg-type]
    assert il.items == ("a", "b", "e", "c")
    assert il.teams == (TEAM_A, TEAM_B, TEAM_B, TEAM_A)
    assert il.a_first

    # Clicked {e}: lowest clicked e; rank in A ∞, in B 2 -> cutoff 2.
    #   h_a = |{e} ∩ {a, b}| = 0, h_b = |{e} ∩ {b, e}| = 1 -> B wins.
    assert credit(il, ["e"]) == Credit(0, 1, 1, cutoff=2)
    # Clicked {a, c}: lowest clicked c (position 4); rank in A 3, in B ∞ -> cutoff 3.
    #   h_a = |{a, c} ∩ {a, b, c}| = 2, h_b = |{a, c} ∩ {b, e, a}| = 1 -> A wins.
    assert credit(il, ["c", "a"]) == Credit(2, 1, 2, cutoff=3)
    assert credit(il, ["c", "a"]).outcome == 1
    # Clicked {b}: rank 2 in A, 1 in B -> cutoff 1; h_a = |{b} ∩ {a}| = 0, h_b = 1 -> B wins,
    # although A "added" nothing B did not also rank: b is B's top item and only A's second.
    assert credit(il, ["b"]).outcome == -1
    # Clicked {a, b}: lowest clicked b -> cutoff 1; h_a = 1 (a), h_b = 1 (b) -> tie.
    assert credit(il, ["a", "b"]) == Credit(1, 1, 2, cutoff=1)


def test_balanced_identical_rankers_always_tie() -> None:
    """With A = B every cutoff prefix is the same set, so Joachims' rule cannot prefer either."""
    rng = np.random.default_rng(3)
    r = list(range(8))
    for _ in range(50):
        il = balanced(r, r, rng)
        clicked = [x for x in il.items if rng.random() < 0.3]
        assert credit(il, clicked).outcome == 0


def test_tallies_match_stats_inputs() -> None:
    credits = [Credit(1, 0, 1), Credit(0, 2, 2), Credit(1, 1, 2), Credit(0, 0, 0), Credit(3, 1, 4)]
    users = ["u1", "u2", "u1", "u2", "u3"]
    assert count_outcomes(credits) == (2, 1, 1)
    assert count_outcomes(credits, include_unclicked=True) == (2, 1, 2)
    ids, wa, wb, ties = outcomes_by_user(users, credits)
    assert ids == ["u1", "u2", "u3"]
    assert wa.tolist() == [1, 0, 1] and wb.tolist() == [0, 1, 0] and ties.tolist() == [1, 0, 0]
    *_, ties2 = outcomes_by_user(users, credits, include_unclicked=True)
    assert ties2.tolist() == [1, 1, 0]
    res = clustered_interleaving_test(wa, wb, ties)
    assert (res.wins_a, res.wins_b, res.ties, res.n_clusters) == (2, 1, 1, 3)
    assert interleaving_test(*count_outcomes(credits)).n_impressions == 4
    with pytest.raises(InvalidInputError, match="one user id per impression"):
        outcomes_by_user(users[:2], credits)
    empty = outcomes_by_user([], [])
    assert empty[0] == [] and empty[1].shape == (0,)


# --- simulation --------------------------------------------------------------------------------


def _simulate(
    rng: np.random.Generator,
    method: str,
    n_users: int,
    per_user: int,
    *,
    identical: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-user outcomes of an interleaving experiment under a cascade-style click model.

    Each query has 12 candidate items; A and B each rank 6 of them (overlapping). The user
    finds B's top 3 items relevant (B is the better ranker) — or, with ``identical``, both
    rankers return the same list and relevance is random. The user examines position i with
    probability 0.9 · 0.8^i and clicks an examined item with probability 0.6 if relevant and
    0.1 otherwise, scaled by a per-user propensity (so a user's impressions are correlated).
    """
    users: list[int] = []
    credits: list[Credit] = []
    for u in range(n_users):
        propensity = rng.uniform(0.4, 1.0)
        for _ in range(per_user):
            pool = rng.permutation(12)
            a = pool[:6].tolist()
            b = a if identical else rng.permutation(pool)[:6].tolist()
            relevant = set(rng.choice(12, 3, replace=False).tolist()) if identical else set(b[:3])
            il = interleave(a, b, rng, method=method, k=6)  # type: ignore[arg-type]
            p_click = np.array([0.6 if x in relevant else 0.1 for x in il.items])
            examine = 0.9 * 0.8 ** np.arange(len(il.items))
            hits = rng.random(len(il.items)) < propensity * examine * p_click
            users.append(u)
            credits.append(credit(il, [x for x, h in zip(il.items, hits, strict=True) if h]))
    _, wa, wb, ties = outcomes_by_user(users, credits)
    return wa, wb, ties


@pytest.mark.parametrize("method", [TEAM_DRAFT, BALANCED])
def test_users_preferring_b_make_b_win(method: str) -> None:
    wa, wb, ties = _simulate(np.random.default_rng(2026), method, 150, 4, identical=False)
    res = clustered_interleaving_test(wa, wb, ties, alpha=ALPHA)
    assert res.delta < 0  # negative = B preferred
    assert res.p_value < 0.001
    assert res.ci_high < 0


def _false_positive_rate(runs: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    rejections = 0
    for _ in range(runs):
        wa, wb, ties = _simulate(rng, TEAM_DRAFT, 60, 3, identical=True)
        rejections += clustered_interleaving_test(wa, wb, ties, alpha=ALPHA).p_value < ALPHA
    rate = rejections / runs
    return rate, math.sqrt(ALPHA * (1 - ALPHA) / runs)


def test_identical_rankers_false_positive_rate() -> None:
    """Team-draft with A = B: the clustered test rejects at most alpha (+3 MC SE) of the time."""
    rate, se = _false_positive_rate(200, seed=11)
    assert rate <= ALPHA + 3 * se, (rate, se)


@pytest.mark.slow
def test_identical_rankers_false_positive_rate_full() -> None:
    rate, se = _false_positive_rate(2000, seed=12)
    assert rate <= ALPHA + 3 * se, (rate, se)


def test_interleaving_is_frozen() -> None:
    il = team_draft(["a"], ["b"], np.random.default_rng(0))
    assert isinstance(il, Interleaving)
    with pytest.raises(AttributeError):
        il.items = ()  # type: ignore[misc]
