"""The in-process API logs to the same store and reports the same metrics as the gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arbiter import ABExperiment, ShadowExperiment
from arbiter.routing import Arm, Split


class Broken:
    def predict(self, x: Any) -> Any:
        raise RuntimeError("boom")


def _models() -> tuple[Any, Any, Any, np.ndarray]:
    from arbiter.demo.data import make_transactions
    from arbiter.demo.train import train_challenger, train_champion

    data = make_transactions(3_000, seed=3)
    test = make_transactions(400, seed=4)
    return (
        train_champion(data.features, data.labels),
        train_challenger(data.features, data.labels),
        test.features,
        test.labels,
    )


def test_shadow_experiment_reports_agreement_and_accuracy(tmp_path: Path) -> None:
    champion, challenger, x, y = _models()
    with ShadowExperiment(champion, challenger, home=tmp_path, model="fraud") as exp:
        answers = [
            exp.predict(x.iloc[i : i + 50].to_numpy(), unit_id=f"u{i}") for i in range(0, 400, 50)
        ]
        for k, answer in enumerate(answers):
            assert answer.arm == "champion" and len(answer.predictions) == 50
            exp.feedback(answer.request_id, y[k * 50 : (k + 1) * 50])
        summary = exp.report()
    shadow = summary["experiments"][0]["shadow"]
    champion_accuracy = float(np.mean(champion.predict(x.to_numpy()) == y))
    challenger_accuracy = float(np.mean(challenger.predict(x.to_numpy()) == y))
    assert shadow["paired_rows"] == 400 and shadow["labeled_rows"] == 400
    assert shadow["champion_accuracy"] == pytest.approx(champion_accuracy)
    assert shadow["challenger_accuracy"] == pytest.approx(challenger_accuracy)


def test_failing_shadow_never_reaches_the_caller(tmp_path: Path) -> None:
    champion, _, x, _ = _models()
    with ShadowExperiment(champion, Broken(), home=tmp_path, model="m") as exp:
        answer = exp.predict(x.head(3).to_numpy())
        assert len(answer.predictions) == 3
        summary = exp.report()
    assert summary["experiments"][0]["shadow"]["shadow_error_rows"] == 3


def test_ab_experiment_uses_the_gateway_split(tmp_path: Path) -> None:
    champion, challenger, x, _ = _models()
    split = Split("m-ab", "champion", (Arm("challenger", 0.3),))
    with ABExperiment(champion, challenger, home=tmp_path, model="m", share=0.3) as exp:
        for i in range(100):
            answer = exp.predict(x.iloc[[i]].to_numpy(), unit_id=f"user-{i}")
            assert answer.arm == split.assign(f"user-{i}", 0.0).arm
        arms = {a["arm"]: a["requests"] for a in exp.report()["experiments"][0]["arms"]}
    assert sum(arms.values()) == 100
