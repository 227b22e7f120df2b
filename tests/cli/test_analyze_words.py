"""What ``analyze`` and ``export`` say about what they did (issue 17 items 8 and 9).

``analyze --model fraud`` left the demo's canary out without a word, a wrong model name did
not list the known ones, the SRM note called the demo's own A/B test undescribed, and
``export`` wrote into the current directory without saying where.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from arbiter import ABExperiment, ShadowExperiment
from arbiter.cli import app
from tests.canary.conftest import canary_model, write_events


@pytest.fixture
def home(make_home: Any) -> Any:
    """``fraud`` ran a shadow test, an A/B test and then a canary, which arbiter.yaml now
    configures (as the demo leaves its home)."""
    from arbiter.demo.data import make_transactions
    from arbiter.demo.train import train_challenger, train_champion

    h = make_home({"fraud": canary_model("challenger")})
    data = make_transactions(1_000, seed=5)
    test = make_transactions(300, seed=6)
    champion = train_champion(data.features, data.labels)
    challenger = train_challenger(data.features, data.labels)
    for kind in (ShadowExperiment, ABExperiment):
        with kind(champion, challenger, home=h.root, model="fraud", seed=3) as exp:
            for i in range(0, 300, 5):
                answer = exp.predict(test.features.iloc[i : i + 5].to_numpy(), unit_id=f"u{i}")
                exp.feedback(answer.request_id, test.labels[i : i + 5])
    n = 40
    arm = np.array(["champion", "challenger"] * (n // 2))
    write_events(
        h.root,
        {
            "request_id": [f"canary-{i}" for i in range(n)],
            "ts": (np.arange(n) * 1e6 + 2e15).astype(np.int64),
            "model": ["fraud"] * n,
            "experiment": ["fraud-canary"] * n,
            "unit_id": [f"c{i}" for i in range(n)],
            "arm": list(arm),
            "alias": list(arm),
            "version": np.where(arm == "challenger", "2", "1").tolist(),
            "prediction": ["0"] * n,
            "prediction_num": [0.0] * n,
            "latency_ms": np.full(n, 2.0),
        },
    )
    return h


def test_analyze_names_what_it_left_out_and_why(home: Any) -> None:
    args = ["analyze", "--home", str(home.root), "-m", "fraud", "--no-html"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "analysed: fraud-shadow (shadow), fraud-ab (ab)" in result.stdout
    assert "left out: fraud-canary (canary)" in result.stdout
    assert "arbiter canary status" in result.stdout
    data = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout)
    (left,) = data["left_out"]
    assert left["experiment"] == "fraud-canary" and left["strategy"] == "canary"


def test_srm_note_names_the_configured_experiment(home: Any) -> None:
    args = ["analyze", "--home", str(home.root), "-m", "fraud", "-e", "fraud-ab", "--json"]
    result = CliRunner().invoke(app, [*args, "--no-html"])
    assert result.exit_code == 0, result.output
    (analysis,) = json.loads(result.stdout)["experiments"]
    (note,) = [n for n in analysis["notes"] if "SRM" in n]
    assert "does not describe" not in note
    assert "'fraud-canary'" in note and "50/50" in note


def test_analyze_of_an_unknown_model_lists_the_known_ones(home: Any) -> None:
    result = CliRunner().invoke(
        app, ["analyze", "--home", str(home.root), "-m", "frud", "--no-html"]
    )
    # ``app`` raises the error that ``arbiter.cli.main`` prints as one line.
    assert result.exit_code != 0 and result.exception is not None
    message = str(result.exception)
    assert message == "no events logged for model 'frud'; models in the event log: fraud"


def test_export_says_where_it_wrote(
    home: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "somewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(app, ["export", "--home", str(home.root), "-m", "fraud"])
    assert result.exit_code == 0, result.output
    written = cwd / "fraud-events.csv"
    assert written.exists()
    out = " ".join(result.stdout.split())
    assert str(written) in result.stdout and "current directory" in out
