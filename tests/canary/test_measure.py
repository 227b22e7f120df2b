"""Checkpoint measurement from a hand-written event log, against numbers computed with
numpy, scipy and statsmodels directly from the same rows."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from arbiter.canary import measure_checkpoint
from arbiter.config import ModelConfig
from arbiter.events import EventStore
from arbiter.routing.canary import CanaryPlan, CanaryStage, CanaryState, DecisionRecord
from arbiter.stats.guardrails import rate_confidence_bound
from tests.canary.conftest import canary_model, write_events

T0 = 1_790_000_000.0  # seconds; the canary started here
PLAN = CanaryPlan((CanaryStage(0.2), CanaryStage(0.5), CanaryStage(1.0)))
STATE = CanaryState(
    "running",
    1,
    T0 + 100.0,
    T0,
    1,
    (DecisionRecord(T0, 0, 0, "start"), DecisionRecord(T0 + 100.0, 0, 1, "advance")),
)


def _log(rng: np.random.Generator, n: int) -> dict[str, Any]:
    """Rows of the canary (stage 0 at 20 %, stage 1 at 50 %) plus rows that must be ignored."""
    t = T0 + np.sort(rng.uniform(0.0, 200.0, n))
    # Workers follow the new share only after a poll: stage 1 starts at T0 + 100 but its
    # first 6 s still run at 20 % (the lag the SRM grace window leaves out).
    share = np.where(t < T0 + 106.0, 0.2, 0.5)
    challenger = rng.random(n) < share
    error = rng.random(n) < np.where(challenger, 0.03, 0.01)
    latency = rng.lognormal(1.0, 0.4, n) * np.where(challenger, 1.3, 1.0)
    score = np.where(challenger, rng.beta(2.5, 5.0, n), rng.beta(2.0, 5.0, n))
    y = (rng.random(n) < score).astype(int)
    labelled = (rng.random(n) < 0.7) & ~error
    rows = {
        "ts": t,
        "arm": np.where(challenger, "challenger", "champion"),
        "version": np.where(challenger, "2", "1"),
        "experiment": np.full(n, "m-canary"),
        "role": np.full(n, "served"),
        "forced": np.zeros(n, dtype=bool),
        "error": error,
        "latency": latency,
        "score": score,
        "y": np.where(labelled, y, -1),
    }
    # Rows the measurement must leave out: before the start, forced, another challenger
    # version, another experiment, shadow rows.
    k = 40
    extra = {
        "ts": np.concatenate([T0 - rng.uniform(1, 50, k), T0 + rng.uniform(0, 200, 4 * k)]),
        "arm": np.array(["challenger"] * (2 * k) + ["champion"] * k + ["challenger"] * 2 * k),
        "version": np.array(["2"] * k + ["2"] * k + ["1"] * k + ["3"] * k + ["2"] * k),
        "experiment": np.array(["m-canary"] * (4 * k) + ["m-ab"] * k),
        "role": np.array(["served"] * (2 * k) + ["shadow"] * k + ["served"] * (2 * k)),
        "forced": np.array([False] * k + [True] * k + [False] * (3 * k)),
    }
    m = 5 * k
    extra.update(
        error=np.zeros(m, dtype=bool),
        latency=np.full(m, 1000.0),
        score=np.full(m, 0.99),
        y=np.full(m, 0),
    )
    return {"kept": rows, "extra": extra}


def _write(root: Path, parts: dict[str, Any]) -> None:
    for name, p in parts.items():
        n = len(p["ts"])
        pred = np.where(p["score"] > 0.5, "1", "0")
        write_events(
            root,
            {
                "request_id": [f"{name}{i}" for i in range(n)],
                "ts": (p["ts"] * 1e6).astype(np.int64),
                "model": ["m"] * n,
                "experiment": list(p["experiment"]),
                "unit_id": [f"{name}u{i}" for i in range(n)],
                "arm": list(p["arm"]),
                "role": list(p["role"]),
                "alias": list(p["arm"]),
                "version": list(p["version"]),
                "prediction": [None if e else s for e, s in zip(p["error"], pred, strict=True)],
                "prediction_num": [
                    math.nan if e else float(s) for e, s in zip(p["error"], pred, strict=True)
                ],
                "score": np.where(p["error"], np.nan, p["score"]),
                "confidence": np.where(p["error"], np.nan, np.maximum(p["score"], 1 - p["score"])),
                "latency_ms": p["latency"],
                "error": ["boom" if e else None for e in p["error"]],
                "forced": list(p["forced"]),
            },
            labels=[None if v < 0 else int(v) for v in p["y"]],
        )


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    root = tmp_path_factory.mktemp("canary-log")
    parts = _log(np.random.default_rng(7), 4000)
    _write(root, parts)
    section = canary_model("challenger", min_sample_per_arm=50)
    section["decision"]["guardrails"] = {"max_error_rate": 0.05, "max_latency_p99_ratio": 2.0}
    config = ModelConfig.model_validate(section)
    con = EventStore(root).connect()
    try:
        result = measure_checkpoint(
            con,
            model="m",
            experiment="m-canary",
            config=config,
            plan=PLAN,
            state=STATE,
            champion_version="1",
            challenger_version="2",
        )
    finally:
        con.close()
    return result, parts["kept"]


def test_counts_errors_and_latency_match_numpy(measured: tuple[Any, dict[str, Any]]) -> None:
    result, rows = measured
    for side in ("champion", "challenger"):
        mine = rows["arm"] == side
        in_stage = mine & (rows["ts"] >= T0 + 100.0)
        arm = result.arms[side]
        assert arm.requests == int(mine.sum())
        assert result.stage_requests[side] == int(in_stage.sum())
        assert arm.errors == int((mine & rows["error"]).sum())
        ok = rows["latency"][mine & ~rows["error"]]
        assert arm.latency_p99_ms == pytest.approx(np.percentile(ok, 99), rel=1e-9)
    assert result.inputs.challenger_requests == result.stage_requests["challenger"]
    assert result.inputs.champion_requests == result.stage_requests["champion"]


def test_error_rate_guardrail_uses_the_time_uniform_bounds(
    measured: tuple[Any, dict[str, Any]],
) -> None:
    result, rows = measured
    mine = rows["arm"] == "challenger"
    k, n = int((mine & rows["error"]).sum()), int(mine.sum())
    low, high = (rate_confidence_bound(k, n, 0.05, side) for side in ("lower", "upper"))
    row = next(g for g in result.guardrails if g["name"] == "error_rate")
    assert row["challenger"] == pytest.approx(k / n)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), rel=1e-9)
    assert row["status"] == "met"  # ~3 % with the whole interval below 5 %
    latency = next(g for g in result.guardrails if g["name"] == "latency_p99_ms")
    p99 = {
        side: np.percentile(rows["latency"][(rows["arm"] == side) & ~rows["error"]], 99)
        for side in ("champion", "challenger")
    }
    assert latency["limit"] == pytest.approx(2.0 * p99["champion"])  # ratio 2 -> +100 %
    assert latency["status"] == "met" and p99["challenger"] / p99["champion"] < 2.0


def test_psi_of_predicted_classes_matches_a_numpy_computation(
    measured: tuple[Any, dict[str, Any]],
) -> None:
    """A classifier is compared on what it predicts, not on its scores (see ``_psi``)."""
    result, rows = measured
    ok = ~rows["error"]
    pred = (rows["score"] > 0.5).astype(int)
    a = pred[ok & (rows["arm"] == "champion")]
    b = pred[ok & (rows["arm"] == "challenger")]
    ca = np.bincount(a, minlength=2) / a.size
    cb = np.bincount(b, minlength=2) / b.size
    ra, rb = np.maximum(ca, 1e-4), np.maximum(cb, 1e-4)
    expected = float(np.sum((rb - ra) * np.log(rb / ra)))
    assert result.psi["basis"] == "predicted_class" and result.psi["bins"] == 2
    assert result.psi["value"] == pytest.approx(expected, rel=1e-9)
    # noise threshold of psi_test: (1/M + 1/N) * chi2_{0.95}(1), at least the limit 0.25
    noise = (1 / a.size + 1 / b.size) * stats.chi2.isf(0.05, 1)
    assert result.psi["noise_threshold"] == pytest.approx(max(0.25, noise))


def test_srm_checks_the_current_stage_after_its_grace_window(
    measured: tuple[Any, dict[str, Any]],
) -> None:
    """Only stage 1 (share 0.5), from stage start + 2 polls (5 s default) + analysis interval
    (0.5 s): the lagging first seconds at 20 % are left out. Reference: scipy's chisquare."""
    result, rows = measured
    start = T0 + 100.0 + 2 * 5.0 + 0.5
    assert result.srm["window_start"] == pytest.approx(start, abs=1e-6)
    in_window = rows["ts"] >= start
    n_b = int((in_window & (rows["arm"] == "challenger")).sum())
    n_a = int(in_window.sum()) - n_b
    assert result.srm["counts"] == [n_a, n_b]  # one request per unit in this log
    expected = stats.chisquare([n_a, n_b], f_exp=[(n_a + n_b) * 0.5, (n_a + n_b) * 0.5])
    assert result.verdict.srm_p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.expected_challenger_share == 0.5
    srm = next(c for c in result.verdict.reasons if c.name == "srm")
    assert srm.met and not result.inputs.blockers
    # The whole stage, lag included, would have been a mismatch: that is what the window avoids.
    stage = rows["ts"] >= T0 + 100.0
    m_b = int((stage & (rows["arm"] == "challenger")).sum())
    m_a = int(stage.sum()) - m_b
    assert stats.chisquare([m_a, m_b]).pvalue < expected.pvalue


def test_primary_metric_is_accuracy_on_labelled_rows(
    measured: tuple[Any, dict[str, Any]],
) -> None:
    result, rows = measured
    labelled = rows["y"] >= 0
    pred = (rows["score"] > 0.5).astype(int)
    acc = {}
    for side in ("champion", "challenger"):
        mine = labelled & (rows["arm"] == side)
        assert result.arms[side].labelled == int(mine.sum())
        acc[side] = float((pred[mine] == rows["y"][mine]).mean())
    primary = result.verdict.primary
    assert primary is not None
    assert primary.estimate == pytest.approx(acc["challenger"] - acc["champion"], rel=1e-9)
    # the always-valid interval is wider than the fixed-horizon Wald interval
    n_a, n_b = result.arms["champion"].labelled, result.arms["challenger"].labelled
    se = math.sqrt(
        acc["champion"] * (1 - acc["champion"]) / n_a
        + acc["challenger"] * (1 - acc["challenger"]) / n_b
    )
    assert primary.ci_high - primary.ci_low > 2 * stats.norm.isf(0.025) * se
    assert result.inputs.primary_sample_reached is True
    assert result.verdict.decision != "rollback"
    evidence = result.evidence()
    assert evidence["primary"]["estimate"] == primary.estimate
    assert set(evidence["arms"]) == {"champion", "challenger"}


def test_checkpoint_is_fast(measured: tuple[Any, dict[str, Any]]) -> None:
    result, _ = measured
    assert result.duration_s < 2.0


# --- SRM by unit, relative error-rate guardrail -------------------------------------------


def _simple_log(
    root: Path,
    *,
    ts: np.ndarray,
    arm: np.ndarray,
    unit: list[str | None],
    error: np.ndarray,
    unit_random: np.ndarray | None = None,
) -> None:
    n = ts.size
    pred = ["1" if i % 3 == 0 else "0" for i in range(n)]
    write_events(
        root,
        {
            "request_id": [f"r{i}" for i in range(n)],
            "ts": (ts * 1e6).astype(np.int64),
            "model": ["m"] * n,
            "experiment": ["m-canary"] * n,
            "unit_id": unit,
            "unit_random": list(unit_random) if unit_random is not None else [False] * n,
            "arm": list(arm),
            "alias": list(arm),
            "version": np.where(arm == "challenger", "2", "1").tolist(),
            "prediction": [None if e else p for e, p in zip(error, pred, strict=True)],
            "prediction_num": [
                math.nan if e else float(p) for e, p in zip(error, pred, strict=True)
            ],
            "latency_ms": np.full(n, 2.0),
            "error": ["boom" if e else None for e in error],
        },
    )


def _measure(root: Path, state: CanaryState, plan: CanaryPlan, **section: Any) -> Any:
    model = canary_model("challenger", max_prediction_psi=None, min_sample_per_arm=50)
    model["decision"].update(section)
    con = EventStore(root).connect()
    try:
        return measure_checkpoint(
            con,
            model="m",
            experiment="m-canary",
            config=ModelConfig.model_validate(model),
            plan=plan,
            state=state,
            champion_version="1",
            challenger_version="2",
            poll_interval_s=1.0,
        )
    finally:
        con.close()


def test_srm_counts_distinct_units_and_random_requests(tmp_path: Path) -> None:
    """Sticky units with very different request counts (one crawler): the requests are far
    from 30/70, the units (what is randomised) are not. Rows without a unit count one each."""
    rng = np.random.default_rng(3)
    units = 400
    unit_arm = np.where(rng.random(units) < 0.3, "challenger", "champion")
    per_unit = rng.geometric(0.02, units)  # 1 to a few hundred requests per unit
    per_unit[np.flatnonzero(unit_arm == "champion")[0]] = 5000  # and one crawler
    ids = np.repeat(np.arange(units), per_unit)
    k = 300  # requests without a unit id, drawn at random per request
    n = ids.size + k
    ts = T0 + 10.0 + rng.uniform(0.0, 100.0, n)  # all after the grace window (2 * 1 + 0.5 s)
    rand_arm = np.where(rng.random(k) < 0.3, "challenger", "champion")
    arm = np.concatenate([unit_arm[ids], rand_arm])
    unit: list[str | None] = [f"u{i}" for i in ids] + [None] * k
    is_random = np.concatenate([np.zeros(ids.size, bool), np.ones(k, bool)])
    _simple_log(tmp_path, ts=ts, arm=arm, unit=unit, error=np.zeros(n, bool), unit_random=is_random)
    plan = CanaryPlan((CanaryStage(0.3), CanaryStage(1.0)))
    state = CanaryState.start(T0)
    result = _measure(tmp_path, state, plan)

    chall = int((unit_arm == "challenger").sum()) + int((rand_arm == "challenger").sum())
    champ = units + k - chall
    assert result.srm["counts"] == [champ, chall]
    assert result.srm["random_requests"] == {
        "champion": int((rand_arm == "champion").sum()),
        "challenger": int((rand_arm == "challenger").sum()),
    }
    ref = stats.chisquare([champ, chall], f_exp=[(champ + chall) * 0.7, (champ + chall) * 0.3])
    assert result.verdict.srm_p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert ref.pvalue > 0.001 and not result.inputs.blockers
    by_request = np.array([(arm == "champion").sum(), (arm == "challenger").sum()])
    assert stats.chisquare(by_request, f_exp=by_request.sum() * np.array([0.7, 0.3])).pvalue < 1e-6


def test_srm_alarm_in_the_stage_holds_the_canary(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n = 4000
    ts = T0 + 10.0 + rng.uniform(0.0, 100.0, n)
    arm = np.where(rng.random(n) < 0.2, "challenger", "champion")  # planned: 30 %
    _simple_log(tmp_path, ts=ts, arm=arm, unit=[f"u{i}" for i in range(n)], error=np.zeros(n, bool))
    plan = CanaryPlan((CanaryStage(0.3), CanaryStage(1.0)))
    result = _measure(tmp_path, CanaryState.start(T0), plan)
    b = int((arm == "challenger").sum())
    ref = stats.chisquare([n - b, b], f_exp=[n * 0.7, n * 0.3])
    assert result.verdict.srm_p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert ref.pvalue < 0.001
    assert result.inputs.blockers and result.inputs.blockers[0].startswith("srm")
    from arbiter.routing.canary import advance

    assert advance(CanaryState.start(T0), plan, result.inputs, T0 + 200.0)[1] == "hold"


def test_no_srm_check_at_full_share_or_in_a_tiny_window(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 200
    ts = T0 + 10.0 + rng.uniform(0.0, 100.0, n)
    arm = np.where(rng.random(n) < 0.5, "challenger", "champion")
    _simple_log(tmp_path, ts=ts, arm=arm, unit=[f"u{i}" for i in range(n)], error=np.zeros(n, bool))
    full = CanaryPlan((CanaryStage(1.0),))
    result = _measure(tmp_path, CanaryState.start(T0), full)
    assert "srm" not in {c.name for c in result.verdict.reasons}
    assert result.verdict.srm_p_value is None and "skipped" in result.srm
    # 1 % stage: 200 units expect 2 on the challenger, below MIN_SRM_EXPECTED
    small = CanaryPlan((CanaryStage(0.01), CanaryStage(1.0)))
    result = _measure(tmp_path, CanaryState.start(T0), small)
    assert "srm" not in {c.name for c in result.verdict.reasons}
    assert "skipped" in result.srm and not result.inputs.blockers
    # a stage started 1 s ago: its grace window has not even begun to count
    late = CanaryState.start(T0 + 109.0)
    result = _measure(tmp_path, late, CanaryPlan((CanaryStage(0.5), CanaryStage(1.0))))
    assert result.srm["counts"] == [0, 0] and "srm" not in {c.name for c in result.verdict.reasons}


def _errors_log(root: Path, rate_a: float, rate_b: float) -> tuple[int, int, int, int]:
    rng = np.random.default_rng(6)
    n_a, n_b = 20_000, 5_000
    arm = np.array(["champion"] * n_a + ["challenger"] * n_b)
    error = rng.random(n_a + n_b) < np.where(arm == "challenger", rate_b, rate_a)
    ts = T0 + 10.0 + rng.uniform(0.0, 100.0, n_a + n_b)
    _simple_log(root, ts=ts, arm=arm, unit=[f"u{i}" for i in range(arm.size)], error=error)
    k_a, k_b = int(error[:n_a].sum()), int(error[n_a:].sum())
    return k_a, n_a, k_b, n_b


@pytest.mark.parametrize(("rate_b", "breached"), [(0.02, False), (0.06, True)])
def test_error_rate_breach_is_relative_to_the_champion(
    tmp_path: Path, rate_b: float, breached: bool
) -> None:
    """A champion at 2 % errors and a 1 % limit: an identical challenger is above the limit
    (exact lower bound > 1 %) but not above the champion, so it is not rolled back; a 6 %
    challenger is both. Reference: scipy's one-sided Fisher exact test and statsmodels'
    time-uniform lower bound (arbiter.stats.guardrails, checked there against quadrature)."""
    k_a, n_a, k_b, n_b = _errors_log(tmp_path, 0.02, rate_b)
    plan = CanaryPlan((CanaryStage(0.2), CanaryStage(1.0)))
    result = _measure(tmp_path, CanaryState.start(T0), plan, guardrails={"max_error_rate": 0.01})
    row = next(g for g in result.guardrails if g["name"] == "error_rate")
    low = rate_confidence_bound(k_b, n_b, 0.001, "lower")
    assert row["breach_bound"] == pytest.approx(low, rel=1e-9)
    assert row["breach_bound"] > 0.01  # above the absolute limit in both cases
    fisher = stats.fisher_exact([[k_b, n_b - k_b], [k_a, n_a - k_a]], alternative="greater")
    assert row["excess_p_value"] == pytest.approx(fisher.pvalue, rel=1e-9)
    assert row["champion"] == pytest.approx(k_a / n_a)
    assert (row["status"] == "breached") is breached
    assert bool(result.inputs.guardrail_breaches) is breached
    if not breached:
        assert row["status"] == "inconclusive" and result.verdict.decision != "rollback"


def test_accuracy_uses_the_latest_label_of_each_row(tmp_path: Path) -> None:
    """Labels are looked up for the canary's rows only; a relabel posted later wins, as in
    the ``labeled`` view. Reference: the same accuracy computed with numpy."""
    rng = np.random.default_rng(8)
    n = 600
    ts = T0 + 10.0 + np.sort(rng.uniform(0.0, 100.0, n))
    arm = np.where(rng.random(n) < 0.5, "challenger", "champion")
    _simple_log(tmp_path, ts=ts, arm=arm, unit=[f"u{i}" for i in range(n)], error=np.zeros(n, bool))
    pred = np.array([1 if i % 3 == 0 else 0 for i in range(n)])
    first = rng.integers(0, 2, n)
    relabel = rng.random(n) < 0.3
    store = EventStore(tmp_path)

    def us(after_s: float) -> int:
        return round((T0 + after_s) * 1e6)

    store.write_feedback(
        [
            {"request_id": f"r{i}", "row_index": 0, "label": int(first[i]), "ts": us(200.0)}
            for i in range(n)
        ]
    )
    later = [
        {"request_id": f"r{i}", "row_index": 0, "label": int(1 - first[i]), "ts": us(500.0)}
        for i in np.flatnonzero(relabel)
    ]
    store.write_feedback(later)
    latest = np.where(relabel, 1 - first, first)
    plan = CanaryPlan((CanaryStage(0.5), CanaryStage(1.0)))
    result = _measure(tmp_path, CanaryState.start(T0), plan)
    for side in ("champion", "challenger"):
        mine = arm == side
        assert result.arms[side].labelled == int(mine.sum())
        expected = float((pred[mine] == latest[mine]).mean())
        assert result.arms[side].metric.mean == pytest.approx(expected, rel=1e-12)
