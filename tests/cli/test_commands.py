"""`arbiter report`, `arbiter export` and error handling, through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from arbiter import ShadowExperiment
from arbiter.cli import app, main


@pytest.fixture
def home_with_events(tmp_path: Path) -> Path:
    from arbiter.demo.data import make_transactions
    from arbiter.demo.train import train_challenger, train_champion

    data = make_transactions(2_000, seed=5)
    test = make_transactions(200, seed=6)
    champion = train_champion(data.features, data.labels)
    challenger = train_challenger(data.features, data.labels)
    with ShadowExperiment(champion, challenger, home=tmp_path, model="fraud") as exp:
        for i in range(0, 200, 20):
            answer = exp.predict(test.features.iloc[i : i + 20].to_numpy(), unit_id=f"u{i}")
            exp.feedback(answer.request_id, test.labels[i : i + 20])
    return tmp_path


def test_report_json_and_markdown(home_with_events: Path) -> None:
    out = home_with_events / "r.md"
    result = CliRunner().invoke(
        app, ["report", "--home", str(home_with_events), "-m", "fraud", "--json", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    section = summary["experiments"][0]
    assert section["strategy"] == "shadow" and section["requests"] == 10
    assert section["shadow"]["labeled_rows"] == 200
    assert [c["name"] for c in section["shadow_criteria"]] == [
        "discrepancy_rate",
        "challenger_more_confident_on_disagreements",
        "challenger_more_accurate",
    ]
    assert "Classic shadow criteria" in out.read_text()


def test_report_shows_the_shadow_verdict(home_with_events: Path) -> None:
    out = home_with_events / "r.md"
    args = ["report", "--home", str(home_with_events), "-m", "fraud", "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    (section,) = json.loads(result.stdout)["experiments"]
    verdict = section["verdict"]
    assert verdict["decision"] in ("promote", "keep_champion", "continue")
    names = [c["name"] for c in section["shadow_criteria"]]
    assert [c["name"] for c in verdict["criteria"]] == names
    assert verdict["decision"] == ("promote" if all(c["met"] for c in verdict["criteria"]) else
                                   "keep_champion")  # fmt: skip
    assert f"### Verdict: **{verdict['decision']}**" in out.read_text()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"verdict: {verdict['decision']}" in result.output


def test_report_shadow_thresholds_follow_the_decision_config(home_with_events: Path) -> None:
    from arbiter.config import HomeConfig, dump_config

    def criteria() -> dict[str, dict[str, object]]:
        result = CliRunner().invoke(
            app, ["report", "--home", str(home_with_events), "-m", "fraud", "--json"]
        )
        assert result.exit_code == 0, result.output
        (section,) = json.loads(result.stdout)["experiments"]
        return {c["name"]: c for c in section["verdict"]["criteria"]}

    rate = criteria()["discrepancy_rate"]["observed"]
    assert isinstance(rate, float) and 0.0 < rate < 0.30
    config = HomeConfig.model_validate(
        {"models": {"fraud": {"decision": {"guardrails": {"max_shadow_discrepancy": rate / 2}}}}}
    )
    (home_with_events / "arbiter.yaml").write_text(dump_config(config), encoding="utf-8")
    c = criteria()["discrepancy_rate"]
    assert c["threshold"] == f"< {rate / 2}" and c["met"] is False


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export(home_with_events: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"out.{fmt}"
    result = CliRunner().invoke(
        app,
        [
            "export",
            "--home",
            str(home_with_events),
            "-m",
            "fraud",
            "-f",
            fmt,
            "-o",
            str(target),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(target) if fmt == "csv" else pd.read_parquet(target)
    assert len(frame) == 400 and frame["label"].notna().all()  # 200 served + 200 shadow rows


def test_errors_are_one_line_with_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["report", "--home", str(tmp_path / "missing"), "-m", "fraud"])
    assert info.value.code == 3
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(SystemExit) as info:
        main(["export", "--home", str(tmp_path), "-m", "fraud", "--format", "xml"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["report", "--home", str(tmp_path)])  # missing --model: click's usage error
    assert info.value.code == 2


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "serve", "report", "export", "stats"):
        assert command in result.output


def test_compact(home_with_events: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["compact", "--home", str(home_with_events), "--min-age", "0", "--grace", "0", "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["segments_after"]["predictions"] <= report["segments_before"]["predictions"]
    again = CliRunner().invoke(
        app, ["report", "--home", str(home_with_events), "-m", "fraud", "--json"]
    )
    assert json.loads(again.stdout)["experiments"][0]["requests"] == 10  # nothing lost
