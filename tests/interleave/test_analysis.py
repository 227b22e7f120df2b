"""The interleaving analysis on synthetic logs: credit, the test, the decision, A/A error rate."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from rich.console import Console
from scipy import stats

from arbiter.analysis.interleave import InterleaveAnalysis, analyze_interleave, decode_impression
from arbiter.analysis.kinds import Analysis
from arbiter.config import DecisionConfig
from arbiter.gateway.ranking import encode_impression
from arbiter.report.html import html_section
from arbiter.report.terminal import print_analysis
from arbiter.routing.interleaving import (
    Credit,
    Interleaving,
    balanced,
    credit,
    for_credit,
    interleave,
    team_draft,
)
from arbiter.stats.interleaving import clustered_interleaving_test

from .synthetic import EXPERIMENT, ITEMS, MODEL, Log, by_taste, fixed, simulate, simulate_outcomes

ALPHA = 0.05


class Coin:
    """A stand-in for numpy's Generator whose ``random()`` always returns ``value``."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def analyze(log: Log, **policy: object) -> InterleaveAnalysis:
    """Analyse with ``min_sample_per_arm=20`` and, unless given, a 10 % failure-rate limit.

    The default 1 % limit is met only after about 450 error-free ranking calls (time-uniform
    bound, arbiter.stats.guardrails); these logs have a few hundred, and the tests are about
    the preference (``test_a_one_percent_limit_needs_about_450_clean_calls`` covers the
    default).
    """
    policy.setdefault("guardrails", {"max_error_rate": 0.1})
    with log.connect() as con:
        return analyze_interleave(
            con, MODEL, EXPERIMENT, policy=DecisionConfig(min_sample_per_arm=20, **policy)
        )


def test_impression_round_trip_keeps_credit_inputs() -> None:
    a, b = ["x", "y", 3], ["y", 3, "z"]
    il = team_draft(a, b, np.random.default_rng(1), k=4)
    teams = ["champion" if t == "A" else "challenger" for t in il.teams]
    back = decode_impression(encode_impression(il, teams, 4))
    assert back.items == tuple(str(i) for i in il.items)  # item ids compare as text
    assert back.teams == il.teams
    assert back.ranking_a == () and back.method == "team_draft"  # team-draft needs no rankings
    assert back.a_first == il.a_first
    a, b = ["x", "y", "w", "v", "u"], ["y", "w", "z", "t", "s"]
    il = balanced(a, b, Coin(0.1), k=3)  # type: ignore[arg-type]
    back = decode_impression(encode_impression(il, list(il.teams), 3))
    assert il.items == ("x", "y", "w")  # w is rank 2 of B: nothing below rank 2 is read
    assert back.ranking_a == ("x", "y") and back.ranking_b == ("y", "w")


@pytest.mark.parametrize("method", ["team_draft", "balanced"])
def test_cut_rankings_give_the_same_credit_for_every_click_set(method: str) -> None:
    rng = np.random.default_rng(5)
    for _ in range(300):
        n_a, n_b = (int(x) for x in rng.integers(1, 12, 2))
        a = [ITEMS[i] for i in rng.choice(15, n_a, replace=False)]
        b = [ITEMS[i] for i in rng.choice(15, n_b, replace=False)]
        il = interleave(a, b, rng, method=method, k=int(rng.integers(1, 12)))  # type: ignore[arg-type]
        cut = for_credit(il)
        assert cut.items == il.items and len(cut.ranking_a) <= len(il.ranking_a)
        for _ in range(5):
            clicked = [i for i in il.items if rng.random() < 0.3]
            assert credit(cut, clicked) == credit(il, clicked)


def test_mixed_id_types_are_one_item_in_merge_and_credit() -> None:
    """A ranker answering [1, 2, 3] and one answering ['1', '2', '3'] rank the same items."""
    from arbiter.gateway.ranking import as_ranking

    a, b = as_ranking([1, 2, 3], _servable()), as_ranking(["1", "2", "3"], _servable())
    assert a == b == ["1", "2", "3"]
    for seed in range(20):
        il = team_draft(a, b, np.random.default_rng(seed))
        assert il.items == ("1", "2", "3")  # not six items
        c = credit(decode_impression(encode_impression(il, list(il.teams), None)), ["1"])
        assert c.n_clicks == 1 and {c.clicks_a, c.clicks_b} == {0, 1}
    il = balanced(a, b, Coin(0.1))  # type: ignore[arg-type]
    assert credit(il, ["1"]) == Credit(1, 1, 1, 1)  # both rank '1' first: a tie, not A


def test_team_draft_credit_and_counts_match_a_hand_count() -> None:
    """Wins counted by hand from the teams, and the p-values from scipy's binomtest."""
    rng = np.random.default_rng(3)
    log = Log.empty()
    wins_a = wins_b = ties = 0
    for j in range(120):  # one impression per user: the unclustered case
        il = interleave(list(ITEMS[:10]), list(ITEMS[5:15]), rng, k=8)
        clicked = [i for i in il.items if rng.random() < (0.35 if i >= "item-5" else 0.15)]
        on_a = sum(il.teams[il.items.index(c)] == "A" for c in clicked)
        on_b = len(clicked) - on_a
        if clicked:
            wins_a += on_a > on_b
            wins_b += on_b > on_a
            ties += on_a == on_b
        log.add(f"r{j}", f"u{j}", 1_700_000_000_000_000 + j, il, clicked)
    a = analyze(log)
    assert a.wins == {"champion": wins_a, "challenger": wins_b, "ties": ties}
    n = wins_a + wins_b + ties
    assert a.counts["with_clicks"] == n and a.counts["impressions"] == 120
    assert a.preference["delta"] == pytest.approx((wins_b - wins_a) / n, abs=1e-12)
    binom = stats.binomtest(wins_b, wins_a + wins_b, 0.5).pvalue
    assert a.test.sign_test_p_value == pytest.approx(binom, rel=1e-9)  # one user, one vote
    assert a.unclustered.sign_test_p_value == pytest.approx(binom, rel=1e-9)
    # Outcome o in {+1, -1, 0}: z-test with the sample variance, by hand.
    o = np.array([1] * wins_a + [-1] * wins_b + [0] * ties, dtype=float)
    z = o.mean() / (o.std(ddof=1) / math.sqrt(n))
    assert a.unclustered.statistic == pytest.approx(z, rel=1e-9)
    assert a.unclustered.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)


def test_balanced_credit_uses_rank_cutoffs() -> None:
    """Joachims' rule on a worked example: the click on 'd' sets the cutoff at rank 2 of B."""
    a, b = ["a", "b", "c", "d"], ["b", "d", "a", "c"]
    il = balanced(a, b, Coin(0.1), k=4)  # type: ignore[arg-type]  # A leads
    assert il.items == ("a", "b", "d", "c")
    log = Log.empty()
    log.add("r0", "u0", 1_700_000_000_000_000, il, ["d"])  # top-2 of B holds d, of A not: B
    log.add("r1", "u1", 1_700_000_000_000_001, il, ["a", "c"])  # cutoff 3: A 2, B 1 -> A
    log.add("r2", "u2", 1_700_000_000_000_002, il, ["b"])  # cutoff 1: B (b is B's first)
    log.add("r3", "u3", 1_700_000_000_000_003, il, [])  # no clicks: no preference
    a_ = analyze(log)
    assert a_.wins == {"champion": 1, "challenger": 2, "ties": 0}
    assert a_.counts["with_feedback"] == 4 and a_.counts["with_clicks"] == 3


@pytest.mark.parametrize("coin", [0.1, 0.9])
def test_balanced_bias_on_a_shifted_ranking_is_as_documented(coin: float) -> None:
    """A = (d1, d2, d3), B = (d2, d3, d4): B wins 3 of the 4 single clicks, whoever leads."""
    il = balanced(["d1", "d2", "d3"], ["d2", "d3", "d4"], Coin(coin))  # type: ignore[arg-type]
    outcomes = [credit(il, [d]).outcome for d in il.items]
    assert sorted(outcomes) == [-1, -1, -1, 1]


def test_clicks_accumulate_and_unshown_clicks_are_reported() -> None:
    il = team_draft(["a", "b"], ["c", "d"], Coin(0.9), k=4)  # type: ignore[arg-type]
    assert il.teams == ("B", "A", "B", "A")
    log = Log.empty()
    log.add("r0", "u0", 1_700_000_000_000_000, il, ["c"])
    log.add("r0-again", "u0", 1_700_000_000_000_001, il, None)  # an impression never clicked
    log.click("r0", ["a", "zzz"], 1_700_000_000_000_009)  # a second post adds clicks
    a = analyze(log)
    assert a.wins == {"champion": 0, "challenger": 0, "ties": 1}  # c (B) and a (A): a tie
    assert a.counts["clicks"] == 2 and a.counts["unshown_clicks"] == 1
    assert a.counts["with_feedback"] == 1
    assert any("not in their impression" in n for n in a.notes)
    assert any("no clicks feedback" in n for n in a.notes)


@pytest.mark.parametrize("method", ["team_draft", "balanced"])
def test_users_preferring_b_promote_the_challenger(method: str) -> None:
    rng = np.random.default_rng(11)
    log = simulate(60, 5, rng, ranker_a=fixed(ITEMS), ranker_b=by_taste(0.05, rng), method=method)
    a = analyze(log)
    assert a.winner == "challenger" and a.decision == "promote"
    assert a.preference["delta"] > 0 and a.preference["ci_low"] > 0
    assert a.test.n_clusters == 60 and a.methods == {method: 300}


def test_users_preferring_a_roll_back() -> None:
    rng = np.random.default_rng(12)
    log = simulate(60, 5, rng, ranker_a=by_taste(0.05, rng), ranker_b=fixed(ITEMS))
    a = analyze(log)
    assert a.winner == "champion" and a.decision == "rollback"
    assert a.preference["ci_high"] < 0


def test_small_sample_continues_even_when_significant() -> None:
    rng = np.random.default_rng(13)
    log = simulate(60, 5, rng, ranker_a=fixed(ITEMS), ranker_b=by_taste(0.05, rng))
    with log.connect() as con:
        a = analyze_interleave(
            con,
            MODEL,
            EXPERIMENT,
            # Fixed-sample test: the sequence tuned to 10,000 is too wide at 300 impressions.
            policy=DecisionConfig(min_sample_per_arm=10_000, sequential=False),
        )
    assert a.winner == "challenger" and a.decision == "continue"
    assert not next(c for c in a.criteria if c.name == "sample").met


def test_no_impressions_is_a_result_not_an_error() -> None:
    a = analyze(Log.empty())
    assert a.decision == "continue" and a.counts["impressions"] == 0
    assert a.test.status == "insufficient_data" and a.winner is None
    json.dumps(a.to_dict(), allow_nan=True)
    assert "<h2>" in html_section(a)


def test_a_failing_challenger_blocks_promotion_and_clearly_failing_rolls_back() -> None:
    rng = np.random.default_rng(14)
    log = simulate(60, 5, rng, ranker_a=fixed(ITEMS), ranker_b=by_taste(0.05, rng))
    il = interleave(list(ITEMS[:5]), list(ITEMS[5:10]), rng, k=6)
    for j in range(30):  # 30 of 330 challenger calls failed: 9 % against a 1 % limit
        log.add(f"f{j}", f"user-{j}", 1_700_000_001_000_000 + j, il, None, challenger_error="boom")
    a = analyze(log, guardrails={"max_error_rate": 0.01})
    assert a.counts["fallbacks"] == 30 and a.counts["challenger_failures"] == 30
    assert a.winner == "challenger" and a.decision == "rollback"
    rail = next(c for c in a.criteria if c.name == "guardrail:error_rate")
    assert not rail.met and rail.observed == pytest.approx(30 / 330)
    # Just above the limit is not clearly above it: blocks promotion, no rollback.
    relaxed = analyze(log, guardrails={"max_error_rate": 0.085})
    assert relaxed.decision == "continue"


def test_a_one_percent_limit_needs_about_450_clean_calls() -> None:
    """The failure-rate guardrail is met by its time-uniform upper bound, not the observed
    rate: 300 clean calls cannot show a rate below 1 % (continue); 600 can (promote)."""
    rng = np.random.default_rng(11)
    few = simulate(60, 5, rng, ranker_a=fixed(ITEMS), ranker_b=by_taste(0.05, rng))
    a = analyze(few, guardrails={"max_error_rate": 0.01})
    rail = next(c for c in a.criteria if c.name == "guardrail:error_rate")
    assert a.winner == "challenger" and a.decision == "continue" and not rail.met
    assert "inconclusive" in rail.detail
    rng = np.random.default_rng(11)
    many = simulate(60, 10, rng, ranker_a=fixed(ITEMS), ranker_b=by_taste(0.05, rng))
    b = analyze(many, guardrails={"max_error_rate": 0.01})
    assert b.decision == "promote"


def test_render_html_and_protocol() -> None:
    rng = np.random.default_rng(15)
    log = simulate(30, 4, rng, ranker_a=fixed(ITEMS), ranker_b=by_taste(0.05, rng))
    a = analyze(log)
    assert isinstance(a, Analysis)
    console = Console(record=True, width=120)
    print_analysis(console, a)
    text = console.export_text()
    assert "impressions won" in text and f"verdict: {a.decision}" in text
    section = html_section(a)
    assert section.startswith("<h2>") and section.count("data:image/png;base64,") == 2
    d = a.to_dict()
    assert d["decision"] == a.decision and d["kind"] == "interleave"
    assert d["test"]["challenger_delta"] == pytest.approx(a.preference["delta"])
    json.dumps(d, allow_nan=True)


def _aa_rejections(runs: int, seed: int, method: str, setting: str, *, via_log: bool) -> int:
    """How many of ``runs`` A/A experiments (40 users x 6 impressions) end significant.

    ``identical``: B answers A's list for every request (only the coin decides the teams).
    ``equal``: A and B are independent rankers of the same quality (taste plus noise of the
    same size): they differ on every list, but neither is better. Users are clustered: each
    has their own tastes. The fixed-sample test (``sequential: false``) decides at the end:
    the level of the sequential one is checked with many looks in test_decision.py.
    ``via_log`` runs each experiment through the event log and :func:`analyze_interleave`;
    otherwise the same merge, clicks and credit feed the clustered test directly.
    """
    rejections = 0
    for r in range(runs):
        rng = np.random.default_rng([seed, r])
        ranker_b = None if setting == "identical" else by_taste(0.3, rng)
        kw = {"ranker_a": by_taste(0.3, rng), "ranker_b": ranker_b, "method": method}
        if via_log:
            rejections += analyze(simulate(40, 6, rng, **kw), sequential=False).winner is not None
        else:
            test = clustered_interleaving_test(*simulate_outcomes(40, 6, rng, **kw), alpha=ALPHA)
            p = test.p_value if test.status == "ok" else test.sign_test_p_value
            rejections += bool(p < ALPHA)
    return rejections


def _assert_rate_at_most_alpha(rejections: int, runs: int) -> None:
    # The observed rate must not be significantly above alpha (one-sided exact test at 1 %).
    test = stats.binomtest(rejections, runs, ALPHA, alternative="greater")
    assert test.pvalue > 0.01, f"{rejections}/{runs} A/A runs significant (alpha {ALPHA})"


AA_CASES = [(m, s) for m in ("team_draft", "balanced") for s in ("identical", "equal")]


@pytest.mark.parametrize(("method", "setting"), AA_CASES)
def test_aa_false_positive_rate_is_at_most_alpha(method: str, setting: str) -> None:
    """250 runs per case: a rate above about 9 % fails (binomial test at 1 %), ~2 s each."""
    runs = 250
    rejections = _aa_rejections(runs, 2026, method, setting, via_log=False)
    _assert_rate_at_most_alpha(rejections, runs)


@pytest.mark.parametrize(("method", "setting"), AA_CASES)
def test_aa_through_the_log_is_at_most_alpha(method: str, setting: str) -> None:
    runs = 25  # the log path is the same credit (checked above); this guards the wiring
    assert _aa_rejections(runs, 2027, method, setting, via_log=True) <= 5


@pytest.mark.slow
@pytest.mark.parametrize(("method", "setting"), AA_CASES)
def test_aa_false_positive_rate_is_at_most_alpha_full(method: str, setting: str) -> None:
    runs = 1_000
    rejections = _aa_rejections(runs, 7, method, setting, via_log=True)
    _assert_rate_at_most_alpha(rejections, runs)
    assert rejections / runs <= ALPHA + 0.015


def test_interleaving_dataclass_is_what_the_analysis_rebuilds() -> None:
    il = Interleaving(("a",), ("A",), "balanced", ("a",), ("b",), True)
    teams = ["champion"]
    assert decode_impression(encode_impression(il, teams, 1)) == il
    il = Interleaving(("a",), ("A",), "team_draft", ("a",), ("b",), True)
    assert decode_impression(encode_impression(il, teams, 1)) == for_credit(il)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (["a", "b", 3], ["a", "b", "3"]),
        (np.array(["x", "y"]), ["x", "y"]),
        ([np.int64(4), np.int64(2)], ["4", "2"]),
        (np.array([7, 8]), ["7", "8"]),
        (("a",), ["a"]),
        ([], []),
    ],
)
def test_as_ranking_accepts_lists_of_ids(output: object, expected: list[object]) -> None:
    from arbiter.gateway.ranking import as_ranking

    model = _servable()
    assert as_ranking(output, model) == expected


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (3, "must return a list"),
        ({"a": 1}, "must return a list"),
        (["a", "a"], "more than once"),
        ([1, "1"], "more than once"),  # one id as text
        (["a", 1.5], "strings or integers"),
        ([True], "strings or integers"),
        ([None], "strings or integers"),
    ],
)
def test_as_ranking_rejects_what_is_not_a_ranking(output: object, message: str) -> None:
    from arbiter.errors import ModelError
    from arbiter.gateway.ranking import as_ranking

    with pytest.raises(ModelError, match=message):
        as_ranking(output, _servable())


def _servable() -> object:
    from arbiter.servable import ServableModel

    return ServableModel("ranker", "1", pyfunc=None, schema=None)


def test_unanimous_users_fall_back_on_the_per_user_sign_test() -> None:
    """Every impression won by B: zero variance, no z-test, the sign test still decides."""
    log = Log.empty()
    for j in range(60):
        il = team_draft(["a", "b", "c"], ["x", "y", "z"], np.random.default_rng(j), k=6)
        liked = [i for i, t in zip(il.items, il.teams, strict=True) if t == "B"][:1]
        log.add(f"r{j}", f"user-{j % 30}", 1_700_000_000_000_000 + j, il, liked)
    a = analyze(log)
    assert a.test.status == "zero_variance" and a.wins["challenger"] == 60
    assert a.test.sign_test_p_value == pytest.approx(stats.binomtest(30, 30, 0.5).pvalue)
    assert a.decision == "promote" and a.winner == "challenger"
