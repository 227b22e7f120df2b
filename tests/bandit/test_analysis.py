"""Bandit analysis on synthetic event logs: reward SQL, P(best), decision, history, report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from scipy import integrate, stats

from arbiter.analysis.bandit import (
    ADJUSTED_INFERENCE_WARNING,
    P_BEST_THRESHOLD,
    allocation_history,
    analyze_bandit,
    bandit_rewards,
    bandit_state,
    p_best,
)
from arbiter.analysis.kinds import Analysis
from arbiter.config import ModelConfig
from arbiter.events import PREDICTIONS_SCHEMA, EventStore
from arbiter.events.segments import write_segment
from arbiter.report.html import html_section
from arbiter.routing.bandit import BanditConfig, BanditState
from arbiter.stats.verdict import Verdict, decide_bandit

T0_US = 1_790_000_000_000_000
EXP = "m-bandit"


def write_predictions(store: EventStore, rows: list[dict[str, Any]]) -> None:
    """One segment of served prediction rows; unspecified columns get gateway-like values."""
    defaults: dict[str, Any] = {
        "row_index": 0,
        "model": "m",
        "experiment": EXP,
        "strategy": "bandit",
        "role": "served",
        "forced": False,
        "unit_random": True,
        "protocol": "arbiter",
    }
    full = [{**defaults, **r} for r in rows]
    for i, r in enumerate(full):
        r.setdefault("ts", T0_US + i * 1_000_000)
        r.setdefault("alias", r["arm"])
    cols = {f.name: pa.array([r.get(f.name) for r in full], f.type) for f in PREDICTIONS_SCHEMA}
    write_segment(store.predictions_dir, pa.table(cols, schema=PREDICTIONS_SCHEMA))


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    return EventStore(tmp_path / "home")


def test_rewards_sql_counts_only_this_experiments_served_rows(store: EventStore) -> None:
    rows = [
        {"request_id": "a1", "arm": "champion"},
        {"request_id": "a2", "arm": "champion"},
        {"request_id": "a3", "arm": "champion"},  # unlabelled
        {"request_id": "b1", "arm": "challenger"},
        {"request_id": "b1", "arm": "challenger", "row_index": 1},  # a batch row
        {"request_id": "b2", "arm": "challenger", "forced": True},  # forced: left out
        {"request_id": "b3", "arm": "challenger", "role": "shadow"},  # not served: left out
        {"request_id": "c1", "arm": "challenger", "experiment": "other"},
        {"request_id": "d1", "arm": "challenger", "model": "other"},
        {"request_id": "e1", "arm": "champion"},
        {"request_id": "e2", "arm": "champion"},
        {"request_id": "e3", "arm": "champion"},
    ]
    write_predictions(store, rows)
    ts = T0_US + 100_000_000
    store.write_feedback(
        [
            {"request_id": "a1", "row_index": 0, "label": 0, "ts": ts},
            {"request_id": "a1", "row_index": 0, "label": 1, "ts": ts + 1},  # latest wins
            {"request_id": "a2", "row_index": 0, "label": 0},
            {"request_id": "b1", "row_index": 0, "label": 1},
            {"request_id": "b1", "row_index": 1, "label": 1},
            {"request_id": "b2", "row_index": 0, "label": 1},
            {"request_id": "b3", "row_index": 0, "label": 1},
            {"request_id": "c1", "row_index": 0, "label": 1},
            {"request_id": "d1", "row_index": 0, "label": 1},
            {"request_id": "e1", "row_index": 0, "label": 0.5},
            {"request_id": "e2", "row_index": 0, "label": 1.5},
            {"request_id": "e3", "row_index": 0, "label": "good"},
        ]
    )
    arms = ["champion", "challenger", "idle"]
    with store.connect() as con:
        binary = bandit_rewards(con, "m", EXP, arms, "binary")
        bounded = bandit_rewards(con, "m", EXP, arms, "bounded")
    champ = binary["champion"]
    # a1 → 1 (latest), a2 → 0; e1 (0.5), e2 (1.5), e3 (text) are not binary rewards.
    assert (champ.served, champ.rewarded, champ.reward_sum, champ.invalid) == (6, 2, 1.0, 3)
    chall = binary["challenger"]
    assert (chall.served, chall.rewarded, chall.reward_sum, chall.invalid) == (2, 2, 2.0, 0)
    assert binary["idle"].served == 0 and math.isnan(binary["idle"].mean)
    b = bounded["champion"]  # 0.5 is a valid bounded reward; 1.5 and text are not
    assert (b.rewarded, b.reward_sum, b.invalid) == (3, 1.5, 2)
    assert list(binary) == arms


def test_nan_reward_is_invalid(store: EventStore) -> None:
    write_predictions(store, [{"request_id": "n1", "arm": "champion"}])
    store.write_feedback([{"request_id": "n1", "row_index": 0, "label": float("nan")}])
    with store.connect() as con:
        r = bandit_rewards(con, "m", EXP, ["champion"], "bounded")["champion"]
    assert (r.rewarded, r.invalid) == (0, 1)


def _p_best_quad(params: np.ndarray) -> np.ndarray:
    """P(arm i best) = ∫ f_i(x) Π_{j≠i} F_j(x) dx, by adaptive quadrature (scipy)."""
    out = []
    for i in range(len(params)):
        others = [j for j in range(len(params)) if j != i]

        def f(x: float, i: int = i, others: list[int] = others) -> float:
            below = [stats.beta.cdf(x, *params[j]) for j in others]
            return float(stats.beta.pdf(x, *params[i]) * np.prod(below))

        out.append(integrate.quad(f, 0.0, 1.0, limit=200)[0])
    return np.array(out)


@pytest.mark.parametrize(
    "counts",
    [
        [(30, 70), (40, 60)],  # two arms: P(p_B > p_A) for Beta posteriors
        [(5, 5), (6, 4)],
        [(120, 880), (130, 870), (100, 900)],
    ],
)
def test_p_best_matches_numerical_integration(counts: list[tuple[int, int]]) -> None:
    arms = [f"a{i}" for i in range(len(counts))]
    state = BanditState(
        tuple(arms),
        tuple(float(s) for s, _ in counts),
        tuple(float(f) for _, f in counts),
        tuple(s + f for s, f in counts),
    )
    got = p_best(state, np.random.default_rng(1))
    exact = _p_best_quad(state.posterior_params)
    assert np.all(np.abs(got - exact) < 0.005), (got, exact)  # MC SE ≤ 0.0011
    if len(counts) == 2:
        # Closed form for integer alpha_B (Evan Miller 2015, "Formulas for Bayesian A/B
        # testing"): P(p_B > p_A) = Σ_{i<α_B} B(α_A+i, β_A+β_B) / ((β_B+i) B(1+i, β_B) B(α_A, β_A)).
        (aa, ba), (ab, bb) = state.posterior_params

        def lbeta(x: float, y: float) -> float:
            return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)

        closed = sum(
            math.exp(lbeta(aa + i, ba + bb) - math.log(bb + i) - lbeta(1 + i, bb) - lbeta(aa, ba))
            for i in range(int(ab))
        )
        assert closed == pytest.approx(exact[1], abs=1e-7)
        assert abs(got[1] - closed) < 0.005


def _state(n: tuple[int, ...], s: tuple[float, ...], warmup: int = 10) -> BanditState:
    arms = ("champion", "challenger")[: len(n)]
    failures = tuple(float(k) - v for k, v in zip(n, s, strict=True))
    return BanditState(arms, s, failures, n, BanditConfig(n_warmup=warmup, floor=0.05))


def _decide(state: BanditState, p: dict[str, float]) -> Verdict:
    n = dict(zip(state.arms, state.n, strict=True))
    return decide_bandit(p, n, warmup=state.config.n_warmup)


def test_decision_rules() -> None:
    warm = _state((5, 50), (1.0, 25.0))
    assert _decide(warm, {"champion": 0.0, "challenger": 1.0}).decision == "continue"
    tie = _state((100, 100), (50.0, 52.0))
    v = _decide(tie, {"champion": 0.4, "challenger": 0.6})
    assert (v.decision, v.winner) == ("continue", None)
    assert "highest: challenger" in v.reasons[-1].detail and not v.reasons[-1].met
    done = _state((100, 100), (80.0, 20.0))
    v = _decide(done, {"champion": 0.999, "challenger": 0.001})
    assert (v.decision, v.winner) == ("keep_champion", "champion")
    v = _decide(done, {"champion": 1 - P_BEST_THRESHOLD, "challenger": P_BEST_THRESHOLD})
    assert (v.decision, v.winner) == ("confirm_with_ab", "challenger")
    assert "fixed-split A/B" in v.reasons[-1].detail


def test_history_counts_requests_not_rows(store: EventStore) -> None:
    rows = [
        {"request_id": f"r{i}", "arm": "champion" if i < 10 else "challenger"} for i in range(20)
    ]
    rows.append({"request_id": "r19", "arm": "challenger", "row_index": 1, "ts": T0_US})
    write_predictions(store, rows)
    with store.connect() as con:
        h = allocation_history(con, "m", EXP, ["champion", "challenger"], buckets=4)
    assert sum(h.requests["champion"]) == 10 and sum(h.requests["challenger"]) == 10
    assert len(h.elapsed_s) == 4 and h.bucket_s == pytest.approx(19 / 4, abs=1e-5)  # 19 s span
    shares = h.shares()
    assert shares["champion"][0] == 1.0 and shares["challenger"][-1] == 1.0


def test_analysis_without_config_and_escaped_html(store: EventStore) -> None:
    rng = np.random.default_rng(0)
    exp = "m-<b>bandit</b>"
    rows = [
        {"request_id": f"r{i}", "arm": ("champion", "challenger")[i % 2], "experiment": exp}
        for i in range(400)
    ]
    write_predictions(store, rows)
    p = {"champion": 0.3, "challenger": 0.6}
    store.write_feedback(
        [
            {
                "request_id": r["request_id"],
                "row_index": 0,
                "label": int(rng.random() < p[r["arm"]]),
            }
            for r in rows
        ]
    )
    with store.connect() as con:
        a = analyze_bandit(con, "m", exp, model_config=ModelConfig())
    assert isinstance(a, Analysis)
    assert a.reward == "bounded" and "configuration is not this experiment's" in a.notes[0]
    assert a.leader == "challenger" and a.decision == "confirm_with_ab"
    d = a.to_dict()
    assert d["warning"] == ADJUSTED_INFERENCE_WARNING and d["in_warmup"] is False
    assert [row["arm"] for row in d["arms"]] == ["champion", "challenger"]
    fragment = html_section(a)
    assert "<b>bandit</b>" not in fragment and "&lt;b&gt;bandit&lt;/b&gt;" in fragment
    assert fragment.count("data:image/png;base64,") == 2


def test_configured_experiment_uses_its_settings(store: EventStore) -> None:
    config = ModelConfig.model_validate(
        {"experiment": {"strategy": "bandit", "bandit": {"warmup": 500, "floor": 0.1}}}
    )
    rows = [{"request_id": f"r{i}", "arm": ("champion", "challenger")[i % 2]} for i in range(50)]
    write_predictions(store, rows)
    store.write_feedback(
        [{"request_id": r["request_id"], "row_index": 0, "label": 1} for r in rows]
    )
    with store.connect() as con:
        a = analyze_bandit(con, "m", EXP, model_config=config)
    assert a.aliases == {"champion": "champion", "challenger": "challenger"}
    assert a.state.in_warmup and a.decision == "continue" and "warm-up" in a.reasons[0]
    assert a.current_allocation == {"champion": 0.5, "challenger": 0.5}
    assert a.state.config.floor == 0.1 and a.reward == "binary"


def test_bandit_state_from_rewards_matches_core_updates() -> None:
    from arbiter.analysis.bandit import ArmRewards

    rewards = {"champion": ArmRewards("champion", 10, 8, 3.0, 2)}
    state = bandit_state(rewards, BanditConfig(floor=0.0))
    assert state.successes == (3.0,) and state.failures == (5.0,) and state.n == (8,)


def test_failed_rows_earn_no_reward(store: EventStore) -> None:
    """A label posted for a failed request is no reward of that arm (controller and report)."""
    rows = [
        {"request_id": "ok1", "arm": "champion"},
        {"request_id": "ok2", "arm": "champion"},
        {"request_id": "bad1", "arm": "champion", "error": "boom"},
        {"request_id": "bad2", "arm": "challenger", "error": "boom"},
        {"request_id": "bad3", "arm": "challenger", "error": "boom"},
        {"request_id": "ok3", "arm": "challenger"},
    ]
    write_predictions(store, rows)
    store.write_feedback(
        [
            {"request_id": "ok1", "row_index": 0, "label": 1},
            {"request_id": "ok2", "row_index": 0, "label": 0},
            {"request_id": "bad1", "row_index": 0, "label": 1},  # ignored: the arm failed
            {"request_id": "bad2", "row_index": 0, "label": 1},
            {"request_id": "bad3", "row_index": 0, "label": "junk"},  # not counted invalid
            {"request_id": "ok3", "row_index": 0, "label": 0},
        ]
    )
    with store.connect() as con:
        r = bandit_rewards(con, "m", EXP, ["champion", "challenger"], "binary")
        a = analyze_bandit(con, "m", EXP, model_config=ModelConfig())
    champ, chall = r["champion"], r["challenger"]
    assert (champ.served, champ.rewarded, champ.reward_sum, champ.invalid) == (2, 2, 1.0, 0)
    assert (chall.served, chall.rewarded, chall.reward_sum, chall.invalid) == (1, 1, 0.0, 0)
    assert (champ.failed, chall.failed) == (1, 2)
    # The posterior (what the controller allocates from) sees only the successful rows.
    assert a.state.successes == (1.0, 0.0) and a.state.n == (2, 1)
    assert any("failed rows earn no reward" in n for n in a.notes)
    assert {row["arm"]: row["failed"] for row in a.to_dict()["arms"]} == {
        "champion": 1,
        "challenger": 2,
    }


def test_a_config_of_another_strategy_under_the_same_name_is_not_used(store: EventStore) -> None:
    """The experiment was a bandit; the home now runs an A/B test under the same name."""
    config = ModelConfig.model_validate({"experiment": {"strategy": "ab", "name": EXP}})
    rows = [{"request_id": f"r{i}", "arm": ("champion", "challenger")[i % 2]} for i in range(50)]
    write_predictions(store, rows)
    with store.connect() as con:
        a = analyze_bandit(con, "m", EXP, model_config=config)
    assert a.aliases == {} and a.reward == "bounded"  # the log's arms, default settings


def test_impossible_default_floor_without_configuration_becomes_uniform(
    store: EventStore,
) -> None:
    """The home config rejects floor · k > 1, but an experiment analysed without its
    configuration takes its arms from the log and the default floor 0.05: 25 arms cannot
    each get 5 %, so 1/25 is used and noted."""
    rows = [{"request_id": f"r{i}", "arm": f"arm{i % 25:02d}"} for i in range(100)]
    write_predictions(store, rows)
    with store.connect() as con:
        a = analyze_bandit(con, "m", EXP, model_config=ModelConfig())
    assert a.state.config.floor == pytest.approx(1 / 25)
    assert any("impossible for 25 arms" in n for n in a.notes)
    assert sum(a.current_allocation.values()) == pytest.approx(1.0)
