"""Whole cycles against a real MLflow registry, event log and (where it matters) gateway."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from arbiter.demo.traffic import (
    EvidenceTimeoutError,
    send_until,
    wait_for_arms_loaded,
    wait_until,
)
from arbiter.errors import NotFoundError
from arbiter.gate import TAG_CHAMPION, TAG_PASSED
from arbiter.home import Home
from arbiter.loop import (
    CycleRecord,
    CycleStore,
    LoopContext,
    LoopOptions,
    StepOutcome,
    run_cycle,
)
from arbiter.loop.record import utc_now
from arbiter.loop.steps import CANDIDATE_ALIAS, TAG_ARCHIVED, TAG_ARCHIVED_REASON
from arbiter.registry import registry_for_home
from tests.loop.conftest import (
    LABEL,
    MODEL,
    SEARCH,
    LoopData,
    logged_rows,
    send,
    wait_for,
)

# The suite's 300 s per-test timeout is a hang guard; these real-gateway tests bound their own
# waits, and a saturated 2-core machine (`stress-ng --cpu 2` beside other runs) needs longer.
pytestmark = pytest.mark.timeout(900)


def _options(data: LoopData, **overrides: Any) -> LoopOptions:
    base = dict(data=data.train, label=LABEL, holdout=data.holdout, trials=1, cv=2,
                search=SEARCH, traffic_window=None)  # fmt: skip
    return LoopOptions(**{**base, **overrides})


def _versions(home: Home) -> list[str]:
    found = registry_for_home(home.root).client.search_model_versions(f"name='{MODEL}'")
    return sorted((str(v.version) for v in found), key=int)


@pytest.mark.integration
def test_drift_retrain_gate_shadow_promote(
    gateway: tuple[str, Home], loop_template: LoopData
) -> None:
    url, home = gateway
    # Drifted traffic; the old challenger v2 shadows it (rows the candidate must not inherit).
    wait_for_arms_loaded(url, MODEL, versions={"challenger": "2"}, shadow=True)
    send(url, n=300, seed=13, shift=1.0, labels=True)
    wait_for(lambda: logged_rows(home, role="shadow", version="2") >= 300, what="v2 shadow rows")

    first = run_cycle(home.root, MODEL, _options(loop_template))
    rec = first.record
    assert first.ran == ("drift", "retrain", "gate", "shadow", "online")
    assert rec.status == "waiting" and not first.resumed
    assert rec.evidence("drift")["drifted"] is True
    assert rec.evidence("retrain")["trigger"].startswith("drift:")
    gate = rec.evidence("gate")
    assert gate["passed"] is True and len(gate["snapshot_sha256"]) == 64
    candidate = rec.candidate_version
    assert candidate == "3"
    online = rec.evidence("online")
    assert online["decision"] == "continue" and "no request shadowed by v3" in online["summary"]
    aliases = registry_for_home(home.root).aliases(MODEL)
    assert aliases["challenger"] == candidate and CANDIDATE_ALIAS not in aliases

    # The gateway picks the new challenger up on its next poll, and its shadow workers load it
    # (shadows of a version still loading are dropped, not queued); labelled traffic follows,
    # until v3 has shadowed 500 labelled rows (a busy machine may drop a shadow: more rounds).
    wait_for_arms_loaded(url, MODEL, versions={"challenger": candidate}, shadow=True)

    def v3_rows() -> int:
        return logged_rows(home, role="shadow", version=candidate)

    def shadowed_500() -> bool:
        wait_for(lambda: logged_rows(home, role="served") >= 300 + sent[0], what="served rows")
        with contextlib.suppress(EvidenceTimeoutError):  # dropped shadows never arrive
            wait_until(lambda: v3_rows() >= 500, timeout_s=10.0, what="v3 shadow rows")
        return v3_rows() >= 500

    sent = [0]

    def labelled_round(start: int, n: int) -> None:
        send(url, n=n, seed=14 + start, shift=1.0, labels=True)
        sent[0] += n

    rounds = send_until(
        labelled_round, shadowed_500, first_round=500, round_size=100, max_requests=2_000,
        timeout_s=600.0,
    )  # fmt: skip
    assert rounds.reached, f"v3 shadowed {v3_rows()} rows of {rounds.sent}"
    shadowed = v3_rows()

    second = run_cycle(home.root, MODEL)
    rec = second.record
    assert second.resumed and second.ran == ("online", "promote")
    assert rec.status == "finished" and rec.verdict == "promoted"
    online = rec.evidence("online")
    assert online["decision"] == "promote"
    # v3's shadowed rows and the champion's rows of the same requests; v2's 300 left out.
    assert online["labelled"] == {"champion": shadowed, "challenger": shadowed}
    assert [c["decision"] for c in online["checks"]] == ["continue", "promote"]
    assert registry_for_home(home.root).aliases(MODEL) == {"champion": "3", "previous": "1"}

    # One decision record, as history lists it; a later run starts a new cycle.
    (saved,) = CycleStore(home.root).records(MODEL)
    assert saved == rec
    assert saved.to_dict()["steps"]["promote"]["evidence"]["previous"] == "1"


@pytest.mark.integration
def test_crash_after_retrain_resumes_without_retraining(
    loop_home: Callable[..., Home], loop_template: LoopData
) -> None:
    home = loop_home()

    def crash(ctx: LoopContext, record: CycleRecord, reason: str) -> StepOutcome:
        raise RuntimeError("machine lost power")

    with pytest.raises(RuntimeError, match="power"):
        run_cycle(home.root, MODEL, _options(loop_template, force=True), steps={"gate": crash})
    crashed = CycleStore(home.root).open_cycle(MODEL)
    assert crashed is not None
    assert crashed.steps["retrain"].status == "done" and crashed.candidate_version == "3"
    assert crashed.steps["gate"].status == "failed"
    assert crashed.steps["gate"].error == "RuntimeError: machine lost power"
    assert _versions(home) == ["1", "2", "3"]

    # The options of a resumed cycle are its own: a changed --trials does not restart it.
    resumed = run_cycle(home.root, MODEL, _options(loop_template, trials=5), stop_after="gate")
    assert resumed.resumed and resumed.ran == ("gate",)
    rec = resumed.record
    assert rec.cycle_id == crashed.cycle_id and rec.inputs["trials"] == 1
    assert rec.steps["retrain"].attempts == 1 and rec.steps["gate"].attempts == 2
    assert rec.steps["gate"].status == "done" and rec.steps["retrain"] == crashed.steps["retrain"]
    assert _versions(home) == ["1", "2", "3"]
    assert resumed.next is not None and resumed.next.startswith("shadow")


@pytest.mark.integration
def test_no_drift_means_no_retrain(gateway: tuple[str, Home], loop_template: LoopData) -> None:
    url, home = gateway
    send(url, n=300, seed=21, shift=0.0, labels=False)
    wait_for(lambda: logged_rows(home, role="served") >= 300, what="served rows")
    result = run_cycle(home.root, MODEL, _options(loop_template))
    rec = result.record
    assert result.ran == ("drift",)
    assert rec.verdict == "no_action" and rec.status == "finished"
    drift = rec.evidence("drift")
    assert drift["drifted"] is False and drift["rows"] == 300 and drift["n_tested"] == 8
    assert "retrain" not in rec.steps
    assert _versions(home) == ["1", "2"]


# --- with canned evidence where the real step is not the point --------------------------------


def _canned(candidate: str, *, gate_passed: bool = True, decision: str = "promote") -> dict:
    """Drift/retrain/gate/online steps that record evidence without training anything."""

    def drift(ctx: LoopContext, record: CycleRecord, reason: str) -> StepOutcome:
        return StepOutcome({"drifted": True, "summary": "canned drift"})

    def retrain(ctx: LoopContext, record: CycleRecord, reason: str) -> StepOutcome:
        return StepOutcome({"version": candidate, "trigger": reason})

    def gate(ctx: LoopContext, record: CycleRecord, reason: str) -> StepOutcome:
        champion = record.aliases_at_start["champion"]
        ctx.registry.set_model_version_tags(
            MODEL, candidate, {TAG_PASSED: str(gate_passed).lower(), TAG_CHAMPION: champion}
        )
        return StepOutcome({"passed": gate_passed, "summary": "canned gate"})

    def online(ctx: LoopContext, record: CycleRecord, reason: str) -> StepOutcome:
        return StepOutcome({"decision": decision}, waiting=decision == "continue")

    return {"drift": drift, "retrain": retrain, "gate": gate, "online": online}


def test_promotion_refused_when_the_champion_moved(loop_home: Callable[..., Home]) -> None:
    home = loop_home()
    registry = registry_for_home(home.root)
    steps = _canned("2")
    first = run_cycle(home.root, MODEL, steps=steps, stop_after="shadow")
    assert first.record.aliases_at_start["champion"] == "1"
    # Someone promotes by hand while the shadow test runs.
    registry.set_alias(MODEL, "champion", "2")
    registry.set_alias(MODEL, "challenger", "2")
    rec = run_cycle(home.root, MODEL, steps=steps).record
    assert rec.verdict == "aborted"
    assert rec.reason == "champion moved from v1 to v2 since the cycle started"
    assert rec.evidence("promote")["aliases_now"]["champion"] == "2"
    assert registry.aliases(MODEL) == {"champion": "2", "challenger": "2"}  # left alone


def test_promotion_refused_when_the_challenger_moved(loop_home: Callable[..., Home]) -> None:
    home = loop_home()
    registry = registry_for_home(home.root)
    steps = _canned("2")
    run_cycle(home.root, MODEL, steps=steps, stop_after="shadow")
    registry.set_alias(MODEL, "challenger", "1")
    rec = run_cycle(home.root, MODEL, steps=steps).record
    assert rec.verdict == "aborted" and "not at the candidate v2" in (rec.reason or "")
    assert registry.aliases(MODEL)["champion"] == "1"


def test_gate_failure_archives_the_candidate(loop_home: Callable[..., Home]) -> None:
    home = loop_home()
    registry = registry_for_home(home.root)
    registry.set_alias(MODEL, CANDIDATE_ALIAS, "2")
    rec = run_cycle(home.root, MODEL, steps=_canned("2", gate_passed=False)).record
    assert rec.verdict == "archived" and list(rec.steps) == ["drift", "retrain", "gate", "archive"]
    assert rec.reason == "offline gate failed: canned gate"
    assert rec.evidence("archive")["aliases_removed"] == ["challenger", CANDIDATE_ALIAS]
    tags = registry.model_version_tags(MODEL, "2")
    assert tags[TAG_ARCHIVED] == "true" and tags[TAG_ARCHIVED_REASON] == rec.reason
    assert registry.aliases(MODEL) == {"champion": "1"}


def test_online_test_without_verdict_is_archived_after_max_wait(
    loop_home: Callable[..., Home],
) -> None:
    home = loop_home()
    now = [utc_now()]

    def clock() -> datetime:
        return now[0]

    steps = _canned("2", decision="continue")
    options = LoopOptions(max_wait_s=3600.0)
    first = run_cycle(home.root, MODEL, options, steps=steps, clock=clock)
    assert first.record.status == "waiting" and first.ran[-1] == "online"
    now[0] += timedelta(minutes=30)
    again = run_cycle(home.root, MODEL, steps=steps, clock=clock)
    assert again.ran == ("online",) and again.record.steps["online"].attempts == 2
    now[0] += timedelta(minutes=31)
    last = run_cycle(home.root, MODEL, steps=steps, clock=clock)
    assert last.ran == ("archive",) and last.record.verdict == "archived"
    assert last.record.reason == "no online verdict after 1h1m (max wait 1h)"


def test_unknown_model_and_missing_champion(loop_home: Callable[..., Home]) -> None:
    home = loop_home()
    with pytest.raises(NotFoundError):
        run_cycle(home.root, "nope")
    registry_for_home(home.root).delete_alias(MODEL, "champion")
    with pytest.raises(NotFoundError, match="no 'champion' alias"):
        run_cycle(home.root, MODEL)
    assert CycleStore(home.root).records() == []


def test_shadow_step_requires_a_shadow_experiment(
    loop_home: Callable[..., Home], tmp_path: Path
) -> None:
    from arbiter.errors import ConfigError

    home = loop_home({MODEL: {}})
    with pytest.raises(ConfigError, match="strategy: shadow"):
        run_cycle(home.root, MODEL, steps=_canned("2"))
    rec = CycleStore(home.root).open_cycle(MODEL)
    assert rec is not None and rec.steps["shadow"].status == "failed"


def test_retrain_step_passes_column_kinds_and_time_column(
    loop_home: Callable[..., Home], loop_template: LoopData, tmp_path: Path
) -> None:
    """`loop run --time-column/--categorical` reach the retrain: time-ordered folds, a tag."""
    import pandas as pd

    from arbiter.retrain.search import TAG_TIME_COLUMN

    frame = pd.read_csv(loop_template.train)
    frame["seen_at"] = pd.date_range("2026-11-01", periods=len(frame), freq="min")
    frame["channel"] = ["web" if i % 3 else "app" for i in range(len(frame))]
    train = tmp_path / "train-with-time.parquet"
    frame.to_parquet(train)
    home = loop_home()
    options = _options(
        LoopData(loop_template.root, train, loop_template.holdout),
        force=True,
        time_column="seen_at",
        categorical=("channel",),
        search="sklearn",  # the built-in spaces encode a categorical column; the factory does not
    )
    result = run_cycle(home.root, MODEL, options, stop_after="retrain")
    assert result.record.inputs["time_column"] == "seen_at"
    assert result.record.inputs["categorical"] == ["channel"]
    version = result.record.steps["retrain"].evidence["version"]
    tags = registry_for_home(home.root).client.get_model_version(MODEL, version).tags
    assert tags[TAG_TIME_COLUMN] == "seen_at"
