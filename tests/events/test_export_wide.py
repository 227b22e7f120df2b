"""``arbiter export --layout wide``: one row per input row, equal to a pandas pivot of the long
export, in CSV and Parquet; several challengers get one column group each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from arbiter.cli import app
from arbiter.errors import InvalidInputError
from arbiter.events import EventStore, EventWriter, export

KEYS = ["request_id", "row_index"]


def _export(home: Path, out: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        app, ["export", "--home", str(home), "-m", "fraud", "-o", str(out), "--json", *args]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _pivot(long: pd.DataFrame) -> pd.DataFrame:
    """The wide layout computed by pandas from the long export."""
    long = long.assign(side=long["role"].map({"shadow": "challenger"}).fillna(long["arm"]))
    base = long.sort_values("ts").groupby(KEYS, as_index=False).agg(
        ts=("ts", "min"), unit_id=("unit_id", "first"), experiment=("experiment", "first"),
        features=("features", "first"), label=("label", "first"),
    )  # fmt: skip
    features = pd.DataFrame([json.loads(f) for f in base.pop("features")])
    answers = long.pivot(index=KEYS, columns="side", values=["prediction", "confidence", "version"])
    answers.columns = [f"{side}_{value}" for value, side in answers.columns]
    out = pd.concat([base, features], axis=1).merge(answers.reset_index(), on=KEYS)
    out["has_discrepancy"] = out["champion_prediction"] != out["challenger_prediction"]
    return out.sort_values(["ts", *KEYS]).reset_index(drop=True)


def test_wide_export_equals_a_pandas_pivot_of_the_long_one(
    shadow_home: Any, tmp_path: Path
) -> None:
    root = shadow_home.home.root
    _export(root, tmp_path / "long.parquet", "--format", "parquet")
    summary = _export(root, tmp_path / "wide.parquet", "--format", "parquet", "--layout", "wide")
    long = pd.read_parquet(tmp_path / "long.parquet")
    wide = pd.read_parquet(tmp_path / "wide.parquet")
    expected = _pivot(long)
    assert summary["layout"] == "wide" and summary["rows"] == len(wide) == shadow_home.rows_sent
    features = list(json.loads(long["features"].iloc[0]))
    assert list(wide.columns) == [
        "request_id", "row_index", "ts", "unit_id", "experiment", *features,
        "champion_prediction", "champion_confidence", "champion_version",
        "challenger_prediction", "challenger_confidence", "challenger_version",
        "has_discrepancy", "label",
    ]  # fmt: skip
    pd.testing.assert_frame_equal(
        wide, expected[list(wide.columns)], check_dtype=False, check_exact=False, rtol=1e-12
    )
    assert wide["has_discrepancy"].sum() > 0 and wide["label"].isna().sum() > 0
    assert (wide["row_index"] > 0).any()  # the batch requests' rows

    # CSV: the same rows and values.
    _export(root, tmp_path / "wide.csv", "--layout", "wide")
    csv = pd.read_csv(tmp_path / "wide.csv", dtype={"label": "string"})
    assert list(csv.columns) == list(wide.columns) and len(csv) == len(wide)
    pd.testing.assert_series_equal(csv["request_id"], wide["request_id"])
    challenger = wide["challenger_prediction"].tolist()
    assert csv["challenger_prediction"].astype(str).tolist() == challenger
    assert csv["amount"].tolist() == pytest.approx(wide["amount"].tolist())


def test_several_challengers_get_one_column_group_each(tmp_path: Path) -> None:
    """A/B/n: each row was answered by one arm, so has_discrepancy is empty; a feature named
    like a fixed column is prefixed; text features stay text."""
    store = EventStore(tmp_path / "home")
    with EventWriter(store) as writer:
        for i, arm in enumerate(["champion", "b", "c", "champion"]):
            writer.append_predictions(
                {"request_id": f"r{i}", "row_index": [0], "model": "fraud", "arm": arm,
                 "role": "served", "prediction": str(i % 2), "version": str(i),
                 "features": [json.dumps({"label": i, "city": f"x{i}", "amount": i * 1.5})]}
            )  # fmt: skip
    out = tmp_path / "wide.parquet"
    assert export(store, "fraud", out, "parquet", layout="wide") == 4
    wide = pd.read_parquet(out)
    assert list(wide.columns) == [
        "request_id", "row_index", "ts", "unit_id", "experiment", "feature_label", "city",
        "amount", *(f"{arm}_{c}" for arm in ("champion", "b", "c")
                    for c in ("prediction", "confidence", "version")),
        "has_discrepancy", "label",
    ]  # fmt: skip
    assert wide["has_discrepancy"].isna().all()
    assert wide["b_prediction"].notna().sum() == 1 and wide["city"].tolist()[1] == "x1"
    assert wide["feature_label"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_an_unknown_layout_is_refused(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "home")
    with pytest.raises(InvalidInputError, match="layout"):
        export(store, "fraud", tmp_path / "x.csv", layout="tall")  # type: ignore[arg-type]
    result = CliRunner().invoke(
        app, ["export", "--home", str(tmp_path), "-m", "fraud", "--layout", "tall"]
    )
    # The CLI's entry point prints arbiter's errors without a traceback (tests/cli).
    assert isinstance(result.exception, InvalidInputError)
    assert "--layout must be long or wide" in str(result.exception)
