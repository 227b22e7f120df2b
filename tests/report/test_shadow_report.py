"""The shadow report's additions equal an independent pandas computation on the demo's events.

The event log is the session's shadow experiment of the demo's models (tests/shadow_home.py):
the demo's logistic-regression champion and gradient-boosting challenger behind a real
gateway. pandas reads the raw Parquet segments (no DuckDB, no arbiter view) and recomputes
every new number: each model's class counts and score quantiles and histogram, the
disagreements by direction with who was right, and the mean latency; the models' flavors
and classes are checked against the estimators MLflow loads back.
"""

from __future__ import annotations

import base64
import json
import pickle
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from arbiter.analysis.shadow_detail import QUANTILES
from arbiter.cli import app
from arbiter.events import EventStore
from arbiter.registry import registry_for_home
from arbiter.registry.mlflow_registry import MLflowRegistry
from arbiter.registry.model_info import (
    NOT_FOUND,
    UNREACHABLE,
    describe_version,
    describe_versions,
    pickle_class,
)

SIDES = {"champion": "served", "challenger": "shadow"}


@pytest.fixture(scope="module")
def log(shadow_home: Any) -> dict[str, pd.DataFrame]:
    """The raw log as pandas frames: prediction rows, and the latest label per row."""
    store = EventStore(shadow_home.home.root)
    predictions = pd.concat(pd.read_parquet(f) for f in store.segments("predictions"))
    feedback = pd.concat(pd.read_parquet(f) for f in store.segments("feedback"))
    labels = feedback.sort_values("ts").drop_duplicates(["request_id", "row_index"], keep="last")[
        ["request_id", "row_index", "label"]
    ]
    assert not predictions["forced"].fillna(False).any()
    return {"predictions": predictions, "labels": labels}


@pytest.fixture(scope="module")
def report(shadow_home: Any) -> dict[str, Any]:
    result = CliRunner().invoke(
        app, ["report", "--home", str(shadow_home.home.root), "-m", "fraud", "--json"]
    )
    assert result.exit_code == 0, result.output
    (section,) = json.loads(result.stdout)["experiments"]
    return section


@pytest.fixture(scope="module")
def analysis(shadow_home: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    html = tmp_path_factory.mktemp("shadow-html") / "fraud.html"
    result = CliRunner().invoke(
        app,
        ["analyze", "--home", str(shadow_home.home.root), "-m", "fraud", "--json",
         "--html", str(html)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (experiment,) = json.loads(result.stdout)["experiments"]
    return {"json": experiment, "html": html.read_text(encoding="utf-8")}


def _ok(log: dict[str, pd.DataFrame], side: str) -> pd.DataFrame:
    p = log["predictions"]
    return p[(p["role"] == SIDES[side]) & p["error"].isna()]


def test_models_compared_are_the_registered_estimators(
    shadow_home: Any, report: dict[str, Any], analysis: dict[str, Any], template_home: Any
) -> None:
    import mlflow

    registry = registry_for_home(shadow_home.home.root)
    expected = {}
    for side, alias in (("champion", "champion"), ("challenger", "challenger")):
        version = template_home.versions["fraud"][alias]
        # Independent: load the model back and name its classes.
        raw = mlflow.sklearn.load_model(
            registry.client.get_model_version_download_uri("fraud", version)
        )
        steps = getattr(raw, "steps", None)
        name = (
            f"Pipeline({' → '.join(type(s).__name__ for _, s in steps)})"
            if steps
            else type(raw).__name__
        )
        expected[side] = [{"version": version, "label": f"sklearn · {name}"}]
    assert expected["champion"][0]["label"] == (
        "sklearn · Pipeline(StandardScaler → LogisticRegression)"
    )
    assert expected["challenger"][0]["label"] == "sklearn · HistGradientBoostingClassifier"
    for models in (report["models"], analysis["json"]["models"]):
        got = {s: [{k: m[k] for k in ("version", "label")} for m in ms] for s, ms in models.items()}
        assert got == expected
        assert all(m["flavors"] == ["python_function", "sklearn"] for ms in models.values()
                   for m in ms)  # fmt: skip
        assert all(m["loader_module"] == "mlflow.sklearn" for ms in models.values() for m in ms)


def test_a_pyfunc_model_and_a_pickle_are_named_without_loading_them(shadow_home: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    registry = registry_for_home(shadow_home.home.root)
    raising = registry.aliases("faulty")["raising"]
    info = describe_version(registry, "faulty", raising)
    assert info.flavors == ("python_function",) and info.estimator == "FailingModel"
    assert info.label == "python_function · FailingModel"
    missing = describe_version(registry, "fraud", "999")
    assert missing.error == NOT_FOUND and missing.label == f"unknown ({NOT_FOUND})"
    import io

    assert pickle_class(io.BytesIO(pickle.dumps(LogisticRegression()))) == "LogisticRegression"
    assert pickle_class(io.BytesIO(b"not a pickle")) is None


def test_an_unreachable_registry_is_asked_once_and_named(monkeypatch: Any) -> None:
    """A registry server that refuses connections: every version reads "unknown (registry
    unreachable)" and the report goes on (MLflow's retries kept short for the test)."""
    import socket

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        registry = MLflowRegistry(f"http://127.0.0.1:{sock.getsockname()[1]}")
        infos = describe_versions(registry, "fraud", ["1", "2"])
    assert [i["error"] for i in infos] == [UNREACHABLE, UNREACHABLE]
    assert infos[1]["label"] == "unknown (registry unreachable)"


def test_prediction_distributions_equal_pandas(
    log: dict[str, pd.DataFrame], report: dict[str, Any], analysis: dict[str, Any]
) -> None:
    for detail in (report["shadow_detail"], analysis["json"]["shadow_detail"]):
        for side in SIDES:
            rows = _ok(log, side)
            got = detail["distributions"][side]
            counts = rows["prediction"].value_counts()
            assert {c["value"]: c["count"] for c in got["classes"]} == counts.to_dict()
            for c in got["classes"]:
                assert c["share"] == pytest.approx(counts[c["value"]] / len(rows), abs=1e-12)
            assert got["rows"] == len(rows) and got["values"] == "score"
            score = rows["score"].dropna().to_numpy()
            assert got["mean"] == pytest.approx(score.mean(), rel=1e-9)
            quantiles = np.quantile(score, QUANTILES)  # linear: DuckDB's quantile_cont
            assert list(got["quantiles"].values()) == pytest.approx(list(quantiles), rel=1e-9)
            hist, edges = np.histogram(score, bins=10, range=(0.0, 1.0))
            assert got["histogram"]["counts"] == hist.tolist()
            assert got["histogram"]["edges"] == pytest.approx(edges.tolist())
    # Both models predicted both classes: the demo's challenger flags more.
    dist = report["shadow_detail"]["distributions"]
    assert {c["value"] for c in dist["challenger"]["classes"]} == {"0", "1"}


def test_disagreements_by_direction_and_who_was_right_equal_pandas(
    log: dict[str, pd.DataFrame], report: dict[str, Any], analysis: dict[str, Any]
) -> None:
    keys = ["request_id", "row_index"]
    pairs = (
        _ok(log, "champion")[[*keys, "prediction"]]
        .merge(_ok(log, "challenger")[[*keys, "prediction"]], on=keys, suffixes=("_a", "_b"))
        .merge(log["labels"], on=keys, how="left")
    )
    off = pairs[pairs["prediction_a"] != pairs["prediction_b"]]
    expected = {}
    for (a, b), g in off.groupby(["prediction_a", "prediction_b"]):
        labelled = g[g["label"].notna()]
        right_a = int((labelled["prediction_a"] == labelled["label"]).sum())
        right_b = int((labelled["prediction_b"] == labelled["label"]).sum())
        expected[(a, b)] = {
            "count": len(g),
            "rate": len(g) / len(pairs),
            "labelled": len(labelled),
            "champion_right": right_a,
            "challenger_right": right_b,
            "neither_right": len(labelled) - right_a - right_b,
        }
    # The demo's challenger catches frauds the champion passes: both directions occur.
    assert ("0", "1") in expected and expected[("0", "1")]["count"] > 0
    for detail in (report["shadow_detail"], analysis["json"]["shadow_detail"]):
        assert detail["paired_rows"] == len(pairs)
        got = {(d["champion"], d["challenger"]): d for d in detail["disagreements"]}
        assert set(got) == set(expected)
        for key, values in expected.items():
            for name, value in values.items():
                assert got[key][name] == pytest.approx(value, abs=1e-12), (key, name)
    # The same counts as the classic comparison's discrepancy rate.
    assert report["shadow"]["disagreements"] == len(off)


def test_mean_latency_per_model_equals_pandas(
    log: dict[str, pd.DataFrame], report: dict[str, Any], analysis: dict[str, Any]
) -> None:
    for side, role in SIDES.items():
        requests = _ok(log, side)
        requests = requests[requests["row_index"] == 0]  # latency is per request
        mean = requests["latency_ms"].mean()
        (arm,) = [a for a in report["arms"] if a["role"] == role]
        assert arm["latency_mean_ms"] == pytest.approx(mean, rel=1e-9)
        assert analysis["json"]["arms"][side]["latency_mean_ms"] == pytest.approx(mean, rel=1e-9)
        p50 = np.quantile(requests["latency_ms"], 0.5)
        assert arm["latency_p50_ms"] == pytest.approx(p50, rel=1e-9)


def test_the_recommendation_line_is_in_the_report_file(
    shadow_home: Any, report: dict[str, Any], analysis: dict[str, Any]
) -> None:
    rec = report["recommendation"]
    words = {"promote": "promote the challenger", "keep_champion": "keep the champion",
             "continue": "continue the shadow test"}  # fmt: skip
    assert rec["decision"] == report["verdict"]["decision"]
    assert rec["line"].startswith(f"Recommendation: {words[rec['decision']]}")
    markdown = (shadow_home.home.reports / "fraud-report.md").read_text(encoding="utf-8")
    assert f"**{rec['line']}**" in markdown
    for title in ("Models compared", "Predictions per model", "Disagreements by direction"):
        assert f"### {title}" in markdown
    assert "sklearn · HistGradientBoostingClassifier" in markdown
    # analyze: the statistical verdict's recommendation, in the JSON and the HTML.
    line = analysis["json"]["recommendation"]
    assert line["decision"] == analysis["json"]["decision"]
    assert "<b>Recommendation:</b> " + words[line["decision"]] in analysis["html"]


def test_the_html_report_shows_the_tables_and_the_distribution_plot(
    analysis: dict[str, Any],
) -> None:
    html = analysis["html"]
    for title in ("Models compared", "Latency per model (ms)", "Predictions per model",
                  "Score per model (quantiles)", "Disagreements by direction"):  # fmt: skip
        assert f"<h3>{title}</h3>" in html
    assert "sklearn · Pipeline(StandardScaler → LogisticRegression)" in html
    match = re.search(r'alt="predictions per model" src="data:image/png;base64,([^"]+)"', html)
    assert match, "the distribution plot is missing"
    png = base64.b64decode(match.group(1))
    assert png.startswith(b"\x89PNG") and len(png) > 5_000  # two panels drawn, not a blank


def test_report_and_analyze_fit_80_columns(shadow_home: Any, monkeypatch: Any) -> None:
    from arbiter.cli import output
    from tests.cli.test_width80 import WIDTH, _assert_readable

    monkeypatch.setattr(output.console, "width", WIDTH)
    runner = CliRunner(env={"COLUMNS": str(WIDTH)})
    root = str(shadow_home.home.root)
    for command in (["report", "--home", root, "-m", "fraud"],
                    ["analyze", "--home", root, "-m", "fraud", "--no-html"]):  # fmt: skip
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
        paths = [shadow_home.home.reports / "fraud-report.md"] if command[0] == "report" else []
        _assert_readable(result.stdout, *paths)
        for title in ("models compared", "predictions per model", "disagreements by direction"):
            assert title in result.stdout
        assert "Recommendation: " in result.stdout
        wide = runner.invoke(app, [*command, "--wide"])
        assert wide.exit_code == 0 and "left out at this width" not in wide.stdout
