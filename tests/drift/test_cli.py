"""``arbiter drift`` end to end: files, profiles, the HTML report, and the event log + MLflow."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from arbiter.cli.commands import drift
from arbiter.errors import InvalidInputError, NotFoundError


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(drift.app, name="drift")
    return root


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    n = 3000
    ref = pd.DataFrame(
        {
            "x": rng.normal(0, 1, n),
            "y": rng.normal(0, 1, n),
            "c": rng.choice(["a", "b"], n),
            "score": rng.beta(2, 5, n),
        }
    )
    cur = pd.DataFrame(
        {
            "x": rng.normal(0.5, 1, 800),
            "y": rng.normal(0, 1, 800),
            "c": rng.choice(["a", "b"], 800, p=[0.8, 0.2]),
            "score": rng.beta(2, 5, 800),
        }
    )
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_csv(tmp_path / "cur.csv", index=False)
    return tmp_path / "ref.parquet", tmp_path / "cur.csv"


def _json(result) -> dict:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_files_json(app: typer.Typer, files: tuple[Path, Path], tmp_path: Path) -> None:
    ref, cur = files
    html = tmp_path / "report.html"
    out = _json(
        CliRunner().invoke(
            app,
            [
                "drift",
                "--reference",
                str(ref),
                "--current",
                str(cur),
                "--json",
                "--prediction-column",
                "score",
                "--method",
                "y=wasserstein",
                "--html",
                str(html),
            ],
        )
    )
    features = out["features"]
    assert set(features) == {"x", "y", "c"}
    for f in features.values():
        assert {"method", "statistic", "p_value", "threshold", "drifted"} <= set(f)
    assert features["x"]["method"] == "ks" and features["x"]["drifted"] is True
    assert features["y"]["method"] == "wasserstein" and features["y"]["p_value"] is None
    assert features["c"]["method"] == "chi2" and features["c"]["drifted"] is True
    assert out["dataset"]["drifted"] is True and out["dataset"]["share"] == pytest.approx(2 / 3)
    assert out["prediction"]["drifted"] is False
    text = html.read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == 4  # 3 features + the prediction
    assert "http://" not in text and "https://" not in text  # self-contained
    assert text.index("<td>x</td>") < text.index("<td>y</td>")  # sorted by drift


def test_profile_file_then_check_against_it(
    app: typer.Typer, files: tuple[Path, Path], tmp_path: Path
) -> None:
    ref, cur = files
    profile = tmp_path / "profile.json"
    made = _json(
        CliRunner().invoke(
            app,
            [
                "drift",
                "profile",
                "--data",
                str(ref),
                "--out",
                str(profile),
                "--prediction-column",
                "score",
                "--json",
            ],
        )
    )
    assert made["columns"] == ["x", "y", "c"]
    out = _json(
        CliRunner().invoke(
            app,
            [
                "drift",
                "--reference",
                str(profile),
                "--current",
                str(cur),
                "--json",
                "--bins",
                "5",
            ],
        )
    )
    assert out["features"]["x"]["approximate"] is True
    assert out["features"]["x"]["drifted"] is True


def test_tables_for_people(app: typer.Typer, files: tuple[Path, Path]) -> None:
    ref, cur = files
    result = CliRunner().invoke(app, ["drift", "-r", str(ref), "-c", str(cur)])
    assert result.exit_code == 0, result.output
    assert "dataset drift" in result.output and "most drifted first" in result.output


def test_errors_are_arbiter_errors(app: typer.Typer, files: tuple[Path, Path]) -> None:
    ref, cur = files
    runner = CliRunner()
    bad = runner.invoke(app, ["drift", "-r", str(ref), "-c", str(cur), "--method", "c=ks"])
    assert isinstance(bad.exception, InvalidInputError)
    bad = runner.invoke(app, ["drift", "-r", str(ref), "-c", str(cur), "--method", "oops"])
    assert isinstance(bad.exception, InvalidInputError)
    bad = runner.invoke(app, ["drift", "-r", str(ref)])
    assert isinstance(bad.exception, InvalidInputError)
    bad = runner.invoke(app, ["drift", "-r", "missing.csv", "-c", str(cur)])
    assert isinstance(bad.exception, NotFoundError)
    assert isinstance(runner.invoke(app, ["drift"]).exception, InvalidInputError)


@pytest.fixture
def home_with_model(tmp_path: Path) -> tuple[Path, str]:
    """A home whose SQLite MLflow store has model "m" v1 (champion) on a run; no artifacts."""
    from mlflow import MlflowClient

    home = tmp_path / "home"
    home.mkdir()
    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("arbiter", artifact_location=(home / "artifacts").as_uri())
    run = client.create_run(exp)
    client.create_registered_model("m")
    mv = client.create_model_version("m", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias("m", "champion", mv.version)
    return home, str(mv.version)


def test_event_log_against_the_stored_profile(
    app: typer.Typer, files: tuple[Path, Path], home_with_model: tuple[Path, str]
) -> None:
    from arbiter.events import EventStore, EventWriter

    ref, _ = files
    home, version = home_with_model
    runner = CliRunner()
    missing = runner.invoke(app, ["drift", "--home", str(home), "--model", "m", "--last", "10"])
    assert isinstance(missing.exception, NotFoundError)
    assert "arbiter drift profile" in str(missing.exception)  # says how to make one

    made = _json(
        runner.invoke(
            app,
            [
                "drift",
                "profile",
                "--data",
                str(ref),
                "--home",
                str(home),
                "--model",
                "m",
                "--version",
                version,
                "--prediction-column",
                "score",
                "--json",
            ],
        )
    )
    assert made["artifact_uri"].endswith("arbiter/reference_profile.json")

    rng = np.random.default_rng(1)
    n = 500
    feats = [
        json.dumps({"x": float(v), "y": float(w), "c": "a"})
        for v, w in zip(rng.normal(2, 1, n), rng.normal(0, 1, n), strict=True)
    ]
    now = datetime.now(UTC)
    ts = [int((now - timedelta(seconds=n - i)).timestamp() * 1e6) for i in range(n)]
    with EventWriter(EventStore(home)) as writer:
        writer.append_predictions(
            {
                "request_id": "r",
                "ts": ts,
                "model": "m",
                "role": "served",
                "version": version,
                "score": rng.beta(5, 2, n).tolist(),
                "features": feats,
            }
        )
    out = _json(
        runner.invoke(
            app,
            [
                "drift",
                "--home",
                str(home),
                "--model",
                "m",
                "--window",
                "1h",
                "--json",
            ],
        )
    )
    assert out["source"]["version"] == version and out["source"]["rows"] == n
    assert out["features"]["x"]["drifted"] is True and out["features"]["y"]["drifted"] is False
    assert out["features"]["c"]["drifted"] is True
    assert out["prediction"]["drifted"] is True
    assert out["features"]["x"]["approximate"] is True

    # The Python API behind it: log_profile / load_profile round trip, unknown version.
    from arbiter.drift import build_profile
    from arbiter.registry.profiles import load_profile, log_profile

    uri = f"sqlite:///{home / 'mlflow.db'}"
    profile = build_profile({"x": np.arange(100.0)}, metadata={"model": "m"})
    log_profile(uri, "m", version, profile)
    assert load_profile(uri, "m", version) == profile
    with pytest.raises(NotFoundError):
        load_profile(uri, "m", "99")


def test_event_log_uses_the_configured_champion_alias(
    app: typer.Typer, home_with_model: tuple[Path, str]
) -> None:
    from mlflow import MlflowClient

    from arbiter.config import HomeConfig, dump_config

    home, version = home_with_model
    config = HomeConfig.model_validate({"models": {"m": {"champion_alias": "prod"}}})
    (home / "arbiter.yaml").write_text(dump_config(config), encoding="utf-8")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias("m", "prod", version)
    client.delete_registered_model_alias("m", "champion")
    out = CliRunner().invoke(app, ["drift", "--home", str(home), "--model", "m", "--last", "10"])
    # prod -> v1 is found; v1 has no profile yet, and the error says how to make one.
    assert isinstance(out.exception, NotFoundError)
    assert "arbiter drift profile" in str(out.exception), out.exception


def test_event_log_mixed_columns(
    app: typer.Typer, home_with_model: tuple[Path, str], tmp_path: Path
) -> None:
    """Categorical, text and missing values (JSON null, absent keys) through the event log."""
    from arbiter.events import EventStore, EventWriter

    home, version = home_with_model
    rng = np.random.default_rng(3)
    words = ["card", "declined", "refund", "late", "delivery", "wrong", "item", "online"]
    n_ref = 3000
    amount = rng.normal(50, 10, n_ref)
    amount[rng.random(n_ref) < 0.02] = np.nan
    ref = pd.DataFrame(
        {
            "amount": amount,
            "city": rng.choice(["paris", "lyon", "nice"], n_ref),
            "code": rng.choice([5411, 5812], n_ref),
            "note": [" ".join(rng.choice(words, rng.integers(3, 9))) for _ in range(n_ref)],
        }
    )
    data = tmp_path / "train.parquet"
    ref.to_parquet(data)
    runner = CliRunner()
    made = runner.invoke(
        app,
        [
            "drift",
            "profile",
            "--data",
            str(data),
            "--home",
            str(home),
            "--model",
            "m",
            "--version",
            version,
            "--categorical",
            "code",
            "--json",
        ],
    )
    assert made.exit_code == 0, made.output

    n = 1500
    feats = []
    for i in range(n):
        row: dict[str, object] = {
            "amount": None if i % 4 == 0 else float(rng.normal(50, 10)),  # 25 % JSON null
            "code": int(rng.choice([5411, 5812])),
            "note": " ".join(rng.choice(words, rng.integers(3, 9))),
        }
        if i % 10 != 0:  # an absent key is missing too
            row["city"] = "marseille" if i % 10 == 1 else str(rng.choice(["paris", "lyon"]))
        feats.append(json.dumps(row))
    now = datetime.now(UTC)
    ts = [int((now - timedelta(seconds=n - i)).timestamp() * 1e6) for i in range(n)]
    with EventWriter(EventStore(home)) as writer:
        writer.append_predictions(
            {
                "request_id": "r",
                "ts": ts,
                "model": "m",
                "role": "served",
                "version": version,
                "score": rng.beta(5, 2, n).tolist(),
                "features": feats,
            }
        )
    args = ["drift", "--home", str(home), "--model", "m", "--window", "1h"]
    out = _json(runner.invoke(app, [*args, "--json"]))
    f = out["features"]
    assert f["note"]["kind"] == "text" and f["note"]["drifted"] is False
    assert set(f["note"]["signals"]) == {"length", "oov_rate"}  # no missing note anywhere
    assert f["amount"]["signals"]["missing_rate"]["drifted"] is True
    assert f["amount"]["signals"]["missing_rate"]["current"] == pytest.approx(0.25)
    assert f["city"]["kind"] == "categorical" and f["city"]["drifted"] is True
    assert f["city"]["unseen_categories"][0]["category"] == "marseille"
    assert f["city"]["signals"]["missing_rate"]["current"] == pytest.approx(0.1)
    # JSON numbers of a categorical column match the training frame's integer labels.
    assert f["code"]["kind"] == "categorical" and f["code"]["unseen_categories"] == []
    assert f["code"]["drifted"] is False

    terminal = runner.invoke(app, args)
    assert terminal.exit_code == 0, terminal.output
    assert "column signals" in terminal.output and "missing_rate" in terminal.output
    assert "unseen categories in city: marseille" in terminal.output


def test_html_report_lists_signals_and_unseen_categories(tmp_path: Path) -> None:
    from arbiter.drift import check_drift
    from arbiter.report.drift import render_drift_html

    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"city": rng.choice(["a", "b"], 2000), "x": rng.normal(size=2000)})
    cur = pd.DataFrame({"city": rng.choice(["a", "b", "zz"], 800), "x": rng.normal(size=800)})
    cur.loc[:200, "x"] = np.nan
    html = render_drift_html(check_drift(ref, cur), title="t")
    assert "Column signals" in html and "missing_rate" in html
    assert "Unseen categories in <b>city</b>" in html and "zz (" in html
