"""One table reader for every --data/--holdout/--reference: arbiter.tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from arbiter.errors import InvalidInputError, NotFoundError
from arbiter.tables import read_table, split_label

FRAME = pd.DataFrame({"x": [1.5, 2.5, 3.5], "label": [0, 1, 0]})


@pytest.mark.parametrize("name", ["t.csv", "t.CSV", "t.txt", "t.csv.gz", "t.parquet", "t.pq"])
def test_reads_every_supported_suffix(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(("parquet", "pq")):
        FRAME.to_parquet(path)
    else:
        FRAME.to_csv(path, index=False, compression="gzip" if name.endswith(".gz") else None)
    pd.testing.assert_frame_equal(read_table(path), FRAME)
    pd.testing.assert_frame_equal(read_table(str(path)), FRAME)


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="--holdout: data file not found"):
        read_table(tmp_path / "nope.csv", field="--holdout")


@pytest.mark.parametrize("name", ["t.xlsx", "t.json", "t.gz", "t"])
def test_other_suffixes_are_refused_naming_the_field(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("x,label\n1,0\n")
    with pytest.raises(InvalidInputError, match="unsupported data file type") as info:
        read_table(path, field="--data")
    assert info.value.field == "--data"


def test_unreadable_file_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    path.write_text("not parquet")
    with pytest.raises(InvalidInputError, match="could not read") as info:
        read_table(path, field="data")
    assert info.value.field == "data"


def test_split_label_names_the_file_and_the_columns() -> None:
    x, y = split_label(FRAME, "label", source="t.csv")
    assert list(x.columns) == ["x"] and y.tolist() == [0, 1, 0]
    with pytest.raises(
        InvalidInputError, match=r"t.csv has no label column 'y'; columns: x, label"
    ):
        split_label(FRAME, "y", source="t.csv", field="--label")
