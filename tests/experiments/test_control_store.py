"""The experiment control in a real (SQLite) MLflow registry: A/B/n shares, refusals, history."""

from __future__ import annotations

from typing import Any

import pytest

from arbiter.errors import InvalidInputError
from arbiter.experiments import ExperimentConflictError, ExperimentControl
from arbiter.registry import registry_for_home
from arbiter.registry.history import experiment_changes


def _abn(make_home: Any) -> tuple[ExperimentControl, Any]:
    home = make_home(
        {
            "fraud": {
                "experiment": {
                    "strategy": "ab",
                    "challengers": [
                        {"alias": "challenger", "share": 0.2},
                        {"alias": "c2", "share": 0.2},
                    ],
                }
            },
            "faulty": {"experiment": {"strategy": "shadow", "challenger_alias": "raising"}},
        }
    )
    registry = registry_for_home(home.root)
    config = home.config()
    control = ExperimentControl(registry, "fraud", config.models["fraud"], poll_interval_s=1.0)
    return control, (registry, config)


def test_abn_share_change_is_monotonic_and_recorded(make_home: Any) -> None:
    control, (registry, _config) = _abn(make_home)
    before = control.strategy(control.read())
    result = control.set_split({"c2": 0.45}, reason="c2 looks fine", actor="carol")
    assert result["shares"] == {"challenger": 0.2, "c2": 0.45}
    after = control.strategy(control.read())
    assert after.weights() == pytest.approx({"challenger": 0.2, "c2": 0.45, "champion": 0.35})
    moved = 0
    for i in range(5_000):
        a = before.route(f"user-{i}", 0.0).arm
        b = after.route(f"user-{i}", 0.0).arm
        if a != b:
            moved += 1
            assert (a, b) == ("champion", "c2")  # only champion units move, only into c2
    assert moved > 0
    (change,) = experiment_changes(registry, "fraud")
    assert (change.actor, change.reason, change.grace_s) == ("carol", "c2 looks fine", 3.0)
    assert change.shares_before == {"challenger": 0.2, "c2": 0.2}


def test_refusals(make_home: Any) -> None:
    control, (registry, config) = _abn(make_home)
    with pytest.raises(InvalidInputError) as info:  # beyond c2's slot (0.2 + 0.6 / 2)
        control.set_split({"c2": 0.55})
    assert info.value.field == "challengers.c2.share" and "new experiment" in str(info.value)
    with pytest.raises(InvalidInputError) as info:
        control.set_split({"lr": 0.1})
    assert info.value.field == "shares.lr"
    shadow = ExperimentControl(registry, "faulty", config.models["faulty"], poll_interval_s=1.0)
    with pytest.raises(ExperimentConflictError, match="strategy 'shadow'"):
        shadow.stop()
    assert experiment_changes(registry, "fraud") == []  # nothing written by a refusal
    control.stop(reason="incident")
    with pytest.raises(ExperimentConflictError, match="stopped"):
        control.set_split({"c2": 0.3})
    with pytest.raises(InvalidInputError) as info:
        control.start(name="x-stopped")
    assert info.value.field == "name"
    assert control.start()["status"] == "running"
    assert [c.action for c in experiment_changes(registry, "fraud")] == ["stop", "start"]
