"""``arbiter stats``: the calculators' documented command lines, JSON contract and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from arbiter.cli import app, main, status_codes
from arbiter.errors import InvalidInputError, NotFoundError
from arbiter.stats.paired import delong_test, mcnemar_test
from arbiter.stats.power import sample_size_proportions
from arbiter.stats.proportions import two_proportion_test
from arbiter.stats.sufficient import ProportionStatistic

runner = CliRunner()


def run_json(*args: str) -> dict:
    result = runner.invoke(app, ["stats", *args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def run_error(*args: str) -> BaseException:
    result = runner.invoke(app, ["stats", *args])
    assert result.exit_code != 0
    assert result.exception is not None
    return result.exception


# --------------------------------------------------------------------------- proportions


def test_proportions_two_arms_documented_form() -> None:
    data = run_json("proportions", "--successes", "10", "20", "--trials", "100", "100")
    expected = two_proportion_test(ProportionStatistic(100, 10), ProportionStatistic(100, 20))
    for key in ("statistic", "p_value", "difference", "ci_low", "ci_high", "relative_lift"):
        assert data[key] == pytest.approx(getattr(expected, key), rel=1e-12)


@pytest.mark.parametrize(
    "args",
    [
        ["--successes", "10", "--successes", "20", "--trials", "100", "--trials", "100"],
        ["--successes", "10,20", "--trials", "100,100"],
        ["--successes=10,20", "--trials", "100", "100"],
        ["--trials", "100", "100", "--successes", "10", "20"],
    ],
)
def test_proportions_multi_value_spellings_agree(args: list[str]) -> None:
    reference = run_json("proportions", "--successes", "10", "20", "--trials", "100", "100")
    assert run_json("proportions", *args) == reference


def test_proportions_one_sided_and_alpha() -> None:
    data = run_json(
        "proportions", "--successes", "10", "20", "--trials", "100", "100",
        "--alternative", "larger", "--alpha", "0.1",
    )  # fmt: skip
    assert data["alternative"] == "larger" and data["alpha"] == 0.1
    assert data["ci_high"] is None  # +inf is not JSON; one-sided upper bound


def test_proportions_three_arms() -> None:
    data = run_json(
        "proportions", "--successes", "128", "199", "126", "--trials", "216", "232", "192"
    )
    assert {"chi2", "p_value", "dof", "pairs"} <= set(data)
    assert data["dof"] == 2
    assert [(p["a"], p["b"], p["significant"]) for p in data["pairs"]] == [
        (0, 1, True), (0, 2, False), (1, 2, True),
    ]  # fmt: skip
    assert set(data["pairs"][0]) == {"a", "b", "difference", "critical_value", "significant"}


def test_proportions_table_output() -> None:
    result = runner.invoke(
        app, ["stats", "proportions", "--successes", "5", "9", "7", "--trials", "50", "50", "50"]
    )
    assert result.exit_code == 0
    assert "Marascuilo" in result.stdout and "chi2" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["proportions", "--successes", "10", "--trials", "100", "100"],
        ["proportions", "--successes", "10", "--trials", "100"],
        ["proportions", "--successes", "200", "20", "--trials", "100", "100"],
        ["proportions", "--successes", "1", "2", "3", "--trials", "9", "9", "9",
         "--alternative", "larger"],
    ],
)  # fmt: skip
def test_proportions_bad_input(args: list[str]) -> None:
    assert isinstance(run_error(*args), InvalidInputError)


# --------------------------------------------------------------------------- sample size


def test_sample_size_proportion() -> None:
    data = run_json("sample-size", "--baseline", "0.1", "--mde", "0.2", "--relative")
    expected = sample_size_proportions(0.1, 0.2, relative=True)
    assert data["n_per_arm"] == expected.n_per_arm
    assert isinstance(data["n_per_arm"], int)
    assert "unpooled variance" in data["method"]


def test_sample_size_mean_and_progress() -> None:
    data = run_json(
        "sample-size", "--metric", "mean", "--std", "1", "--mde", "0.5", "--current", "20", "70"
    )
    assert data["n_per_arm"] == 63
    assert data["remaining_per_arm"] == [43, 0]
    one_sided = run_json(
        "sample-size", "--baseline", "0.3", "--mde", "0.05", "--alternative", "larger",
        "--power", "0.9", "--alpha", "0.01",
    )  # fmt: skip
    assert (
        one_sided["n_per_arm"]
        == sample_size_proportions(0.3, 0.05, alpha=0.01, power=0.9, alternative="larger").n_per_arm
    )


@pytest.mark.parametrize(
    "args",
    [
        ["sample-size", "--baseline", "1.5", "--mde", "0.1"],
        ["sample-size", "--mde", "0.1"],
        ["sample-size", "--metric", "mean", "--mde", "0.1"],
        ["sample-size", "--metric", "median", "--baseline", "0.1", "--mde", "0.1"],
    ],
)
def test_sample_size_bad_input(args: list[str]) -> None:
    assert isinstance(run_error(*args), InvalidInputError)


# --------------------------------------------------------------------------- SRM


def test_srm() -> None:
    data = run_json("srm", "--counts", "821588", "815482")
    assert data["mismatch"] is True
    assert f"{data['p_value']:.1e}" == "1.8e-06"
    weighted = run_json("srm", "--counts", "950", "50", "--weights", "95", "5")
    assert weighted["mismatch"] is False and weighted["statistic"] == pytest.approx(0.0)
    assert isinstance(run_error("srm", "--counts", "10", "20", "--weights", "1"), InvalidInputError)


# --------------------------------------------------------------------------- compare


@pytest.fixture(scope="module")
def holdout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    rng = np.random.default_rng(5)
    n = 400
    y = rng.integers(0, 2, n)
    sa, sb = y * 0.6 + rng.normal(0, 0.7, n), y * 1.0 + rng.normal(0, 0.7, n)
    frame = pd.DataFrame({
        "label": y, "score_a": sa, "score_b": sb,
        "pred_a": (sa > 0.5).astype(int), "pred_b": (sb > 0.5).astype(int),
        "target": sa * 3,
        "reg_a": sa * 3 + rng.normal(0, 1, n), "reg_b": sa * 3 + rng.normal(0, 0.8, n),
    })  # fmt: skip
    folder = tmp_path_factory.mktemp("holdout")
    csv, parquet = folder / "holdout.csv", folder / "holdout.parquet"
    frame.to_csv(csv, index=False)
    frame.to_parquet(parquet)
    bad = folder / "broken.parquet"
    bad.write_bytes(b"definitely not parquet")
    return {"csv": csv, "parquet": parquet, "bad": bad, "frame": frame}  # type: ignore[dict-item]


def compare(path: Path, label: str, a: str, b: str, test: str, *extra: str) -> dict:
    return run_json(
        "compare", "--data", str(path), "--label", label, "--a", a, "--b", b, "--test", test, *extra
    )


KEYS = {"statistic", "p_value", "estimate_a", "estimate_b", "ci_low", "ci_high"}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_compare_delong_and_mcnemar(holdout: dict, fmt: str) -> None:
    frame = holdout["frame"]
    data = compare(holdout[fmt], "label", "score_a", "score_b", "delong")
    assert set(data) >= KEYS
    expected = delong_test(frame.label, frame.score_a, frame.score_b)
    assert data["p_value"] == pytest.approx(expected.p_value, rel=1e-12)
    data = compare(holdout[fmt], "label", "pred_a", "pred_b", "mcnemar")
    assert data["statistic"] == pytest.approx(
        mcnemar_test(frame.label, frame.pred_a, frame.pred_b).statistic
    )


def test_compare_bootstrap_and_paired_t(holdout: dict) -> None:
    data = compare(
        holdout["csv"], "label", "score_a", "score_b", "bootstrap", "--metric", "roc_auc",
        "--n-resamples", "300", "--seed", "1",
    )  # fmt: skip
    assert set(data) >= KEYS and data["ci_low"] < data["ci_high"]
    alias = compare(
        holdout["csv"], "label", "score_a", "score_b", "bootstrap", "--metric", "roc_auc_score",
        "--n-resamples", "300", "--seed", "1",
    )  # fmt: skip
    assert alias["ci_low"] == data["ci_low"]
    slow = compare(
        holdout["csv"], "label", "pred_a", "pred_b", "bootstrap", "--metric",
        "balanced_accuracy", "--n-resamples", "20", "--seed", "1", "--bootstrap-method",
        "percentile",
    )  # fmt: skip
    assert "balanced_accuracy_score" in slow["method"]
    data = compare(holdout["parquet"], "target", "reg_a", "reg_b", "paired-t", "--metric", "mae")
    assert set(data) >= KEYS and "absolute" in data["method"]


def test_compare_table_output(holdout: dict) -> None:
    result = runner.invoke(
        app,
        ["stats", "compare", "--data", str(holdout["csv"]), "--label", "label",
         "--a", "score_a", "--b", "score_b", "--test", "delong"],
    )  # fmt: skip
    assert result.exit_code == 0 and "estimate_a" in result.stdout


def test_compare_errors(holdout: dict, tmp_path: Path) -> None:
    base = ["--label", "label", "--a", "score_a", "--b", "score_b", "--test", "delong"]
    missing_file = run_error("compare", "--data", str(tmp_path / "nope.csv"), *base)
    assert isinstance(missing_file, NotFoundError)
    unreadable = run_error("compare", "--data", str(holdout["bad"]), *base)
    assert isinstance(unreadable, InvalidInputError) and "could not read" in str(unreadable)
    wrong_column = run_error(
        "compare", "--data", str(holdout["csv"]), "--label", "label", "--a", "nope",
        "--b", "score_b", "--test", "delong",
    )  # fmt: skip
    assert isinstance(wrong_column, InvalidInputError) and "'nope'" in str(wrong_column)
    unknown_test = run_error("compare", "--data", str(holdout["csv"]), *base[:-1], "wilcoxon")
    assert isinstance(unknown_test, InvalidInputError)
    no_metric = run_error("compare", "--data", str(holdout["csv"]), *base[:-1], "bootstrap")
    assert isinstance(no_metric, InvalidInputError)
    xlsx = tmp_path / "data.xlsx"
    xlsx.write_text("a,b\n1,2\n")
    unsupported = run_error("compare", "--data", str(xlsx), *base)
    assert isinstance(unsupported, InvalidInputError) and "unsupported" in str(unsupported)


# --------------------------------------------------------------------------- the real entry point


def test_main_prints_one_line_error_without_traceback(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["stats", "proportions", "--successes", "10", "--trials", "100", "100", "--json"])
    assert info.value.code == status_codes.BAD_INPUT
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "--successes has 1 values" in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


def test_cli_import_stays_light() -> None:
    code = (
        "import sys, arbiter.cli\n"
        "print(','.join(m for m in ('scipy', 'pandas', 'statsmodels', 'sklearn') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
