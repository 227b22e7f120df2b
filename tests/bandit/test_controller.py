"""The bandit controller on a real gateway: warm-up, convergence, floor, bad rewards, report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from scipy import integrate, stats
from typer.testing import CliRunner

from arbiter.analysis.bandit import ADJUSTED_INFERENCE_WARNING
from arbiter.cli import app
from tests.bandit.conftest import ARMS, REWARD_P, bandit_status, serve_round, wait_for_rewards

FLOOR = 0.05
WARMUP = 30


def test_warmup_then_allocation_converges_to_best_arm(
    bandit_gateway: Callable[..., Any],
    client_for: Callable[[str], httpx.Client],
    fraud_rows: list[dict[str, float]],
) -> None:
    server, home = bandit_gateway(warmup=WARMUP, floor=FLOOR)
    client = client_for(server.url)
    rng = np.random.default_rng(7)

    start = bandit_status(client)  # primed before the first request
    assert start["in_warmup"] and start["shares"] == dict.fromkeys(ARMS, 1 / 3)

    # Round 1: about 15 rewards per arm, fewer than the warm-up: the allocation stays uniform.
    served, feedback = serve_round(client, fraud_rows, 45, rng)
    assert client.post("/feedback", json=feedback).json() == {"stored": 45}
    status = wait_for_rewards(client, 45)
    assert status["in_warmup"] and status["shares"] == dict.fromkeys(ARMS, 1 / 3)
    assert min(served.values()) > 0  # uniform routing reached every arm

    # More rounds until the warm-up is over and the posterior has moved the traffic. Each
    # round waits for the controller to count every reward, so the allocation a round is
    # served with depends on the rewards so far, never on how fast this machine is: the
    # rounds are bounded by count, not by the clock (two rounds suffice in practice).
    total, offset = 45, 45
    for _ in range(8):
        _, feedback = serve_round(client, fraud_rows, 90, rng, offset=offset)
        client.post("/feedback", json=feedback).raise_for_status()
        total, offset = total + 90, offset + 90
        status = wait_for_rewards(client, total)
        if not status["in_warmup"] and status["shares"]["challenger"] > 0.8:
            break
    else:
        raise AssertionError(f"no convergence after {total} requests: {status}")
    assert min(status["shares"].values()) >= FLOOR - 1e-9  # every arm keeps its floor
    assert sum(status["shares"].values()) == pytest.approx(1.0)
    means = status["posterior_mean"]
    assert means["challenger"] > max(means["champion"], means["third"])

    # Routing follows the new allocation: most of the next requests go to the challenger.
    served, _ = serve_round(client, fraud_rows, 200, rng, offset=offset)
    assert served["challenger"] >= 120, served

    metrics = client.get("/metrics").text
    assert 'arbiter_bandit_share{arm="challenger",model="fraud"}' in metrics

    server.stop()
    # The report: allocation over time, P(best) and the adjusted-inference warning.
    html = home.root / "reports" / "bandit.html"
    result = CliRunner().invoke(
        app,
        ["analyze", "--home", str(home.root), "--model", "fraud", "--json", "--html", str(html)],
    )
    assert result.exit_code == 0, (result.output, result.exception)
    (exp,) = json.loads(result.stdout)["experiments"]
    assert exp["strategy"] == "bandit" and exp["warning"] == ADJUSTED_INFERENCE_WARNING
    assert "Hadad" in exp["warning"] and "Kasy" in exp["warning"]
    arms = {a["arm"]: a for a in exp["arms"]}
    assert set(arms) == set(ARMS)
    assert sum(a["served"] for a in arms.values()) == total + 200
    assert exp["leader"] == "challenger" and exp["decision"] == "confirm_with_ab"
    assert any("fixed-split A/B" in r for r in exp["reasons"])
    history = exp["allocation_over_time"]["requests"]
    assert {a: sum(v) for a, v in history.items()} == {a: arms[a]["served"] for a in ARMS}
    # Uniform at first, then the challenger's, measured by request order in the log (not by
    # wall-clock buckets, whose content depends on machine speed): the first 45 requests were
    # served during the warm-up (share 1/3), the last 200 after convergence (share > 0.8).
    from arbiter.events import EventStore

    with EventStore(home.root).connect() as con:
        order = [
            r[0]
            for r in con.execute(
                "SELECT arm FROM predictions WHERE model = 'fraud' AND role = 'served' "
                "AND row_index = 0 ORDER BY ts, request_id"
            ).fetchall()
        ]
    assert len(order) == total + 200
    early = order[:45].count("challenger") / 45
    late = order[-200:].count("challenger") / 200
    # Binomial(45, 1/3) exceeds 0.6 with probability < 1e-3; Binomial(200, > 0.8) falls
    # below 0.6 with probability < 1e-9.
    assert early < 0.6 < late, (early, late)
    # Reduced regret check through the gateway: pseudo-regret Σ n_arm (μ* − μ_arm) of what was
    # served, against uniform allocation's expected regret on the same number of requests.
    gaps = {a: max(REWARD_P.values()) - p for a, p in REWARD_P.items()}
    regret = sum(arms[a]["served"] * gaps[a] for a in ARMS)
    uniform = (total + 200) * float(np.mean(list(gaps.values())))
    assert regret < 0.75 * uniform, (regret, uniform)
    # P(best) against an independent computation: P(arm i best) = ∫ f_i(x) Π_j F_j(x) dx.
    for arm, row in arms.items():
        others = [a for a in arms.values() if a["arm"] != arm]

        def integrand(x: float, row: dict[str, Any] = row, others: list[Any] = others) -> float:
            density = stats.beta.pdf(x, row["posterior_alpha"], row["posterior_beta"])
            below = [stats.beta.cdf(x, o["posterior_alpha"], o["posterior_beta"]) for o in others]
            return float(density * np.prod(below))

        exact, _ = integrate.quad(integrand, 0.0, 1.0, limit=200)
        assert abs(row["p_best"] - exact) < 0.005, (arm, row["p_best"], exact)
    page = html.read_text(encoding="utf-8")
    assert "allocation over time" in page and "Hadad" in page and "data:image/png" in page


def test_bad_rewards_are_counted_and_the_controller_keeps_running(
    bandit_gateway: Callable[..., Any],
    client_for: Callable[[str], httpx.Client],
    fraud_rows: list[dict[str, float]],
) -> None:
    server, _ = bandit_gateway(warmup=5, floor=FLOOR)
    client = client_for(server.url)
    rng = np.random.default_rng(3)
    _, feedback = serve_round(client, fraud_rows, 12, rng)
    # Numbers that are no 0/1 reward (a word or text is refused by /feedback itself: the
    # fraud classifier's classes are numbers, tests/reliability/test_feedback_validation.py).
    bad = [2, 0.5, -1, 3, 1.5]
    for row, label in zip(feedback, bad, strict=False):
        row["label"] = label
    good = len(feedback) - len(bad)
    r = client.post("/feedback", json=feedback)
    assert r.status_code == 200, r.text
    status = wait_for_rewards(client, good)
    deadline = time.monotonic() + 30  # generous: only a failing run waits this long
    while status["invalid_rewards"] < len(bad):  # the label segment may land a poll later
        assert time.monotonic() < deadline, status
        status = bandit_status(client)
    assert status["invalid_rewards"] == len(bad)
    # Still alive: later rewards are picked up by later updates.
    _, feedback = serve_round(client, fraud_rows, 6, rng, offset=12)
    client.post("/feedback", json=feedback).raise_for_status()
    status = wait_for_rewards(client, good + 6)
    assert status["invalid_rewards"] == len(bad)
    assert client.get("/readyz").status_code == 200


def test_failed_update_keeps_the_allocation_and_the_controller_recovers(
    bandit_gateway: Callable[..., Any],
    client_for: Callable[[str], httpx.Client],
    fraud_rows: list[dict[str, float]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from arbiter.events import EventStore
    from arbiter.events.segments import SEGMENT_PREFIX, SUFFIX

    server, home = bandit_gateway(warmup=5, floor=FLOOR)
    client = client_for(server.url)
    rng = np.random.default_rng(5)
    _, feedback = serve_round(client, fraud_rows, 30, rng)
    client.post("/feedback", json=feedback).raise_for_status()
    before = wait_for_rewards(client, 30)
    # An unreadable segment makes every query fail until it is gone.
    bad = EventStore(home.root).feedback_dir / f"{SEGMENT_PREFIX}zzzz-corrupt{SUFFIX}"
    bad.write_bytes(b"not parquet")

    def failures() -> int:
        return sum("allocation update failed" in r.getMessage() for r in caplog.records)

    # An update already running when the segment appeared may still succeed; wait for the
    # first failure (updates run one after another), then every later update fails too.
    deadline = time.monotonic() + 30
    while failures() == 0:
        assert time.monotonic() < deadline, "no update failed"
        time.sleep(0.05)
    kept = bandit_status(client)
    assert kept["shares"] == before["shares"]
    seen = failures()
    while failures() < seen + 2:  # two more failing updates, however slow the machine
        assert time.monotonic() < deadline, "the controller stopped updating"
        time.sleep(0.05)
    assert bandit_status(client)["updated_at"] == kept["updated_at"]  # last allocation kept
    r = client.post("/models/fraud/predict", json={"features": fraud_rows[0]})
    assert r.status_code == 200  # serving is unaffected
    bad.unlink()
    deadline = time.monotonic() + 30
    while bandit_status(client)["updated_at"] == kept["updated_at"]:
        assert time.monotonic() < deadline, "the controller did not recover"
        time.sleep(0.05)


def test_a_replica_started_later_resumes_from_the_log_and_agrees(
    bandit_gateway: Callable[..., Any],
    running: Callable[..., Any],
    client_for: Callable[[str], httpx.Client],
    fraud_rows: list[dict[str, float]],
) -> None:
    from tests.bandit.conftest import EVENTS, bandit_models

    server, _ = bandit_gateway(warmup=10, floor=FLOOR)
    client = client_for(server.url)
    rng = np.random.default_rng(11)
    _, feedback = serve_round(client, fraud_rows, 90, rng)
    client.post("/feedback", json=feedback).raise_for_status()
    first = wait_for_rewards(client, 90)
    assert not first["in_warmup"] and first["shares"]["challenger"] > 1 / 3
    # The 90 rewards counted above join the logged predictions, so those are flushed.
    # A second replica on the same home: primed from the shared log before its first request.
    replica, _ = running(bandit_models(warmup=10, floor=FLOOR), events=EVENTS)
    other = bandit_status(client_for(replica.url))
    assert other["rewards"] == first["rewards"]
    assert other["shares"] == first["shares"]  # same snapshot, same seeded allocation
