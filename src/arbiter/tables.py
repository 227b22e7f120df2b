"""Tables from files: the one reader behind every ``--data``, ``--holdout``, ``--reference``...

CSV (``.csv``, ``.txt``), gzipped CSV (``.csv.gz``) and Parquet (``.parquet``, ``.pq``), chosen
by the file name, so that a file one command accepts every other command accepts too. Shell
level: it reads files (pandas is imported on first use, to keep ``arbiter --help`` fast).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from arbiter.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd

#: File name endings read as CSV and as Parquet (lower case).
CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(path: str | Path, *, field: str = "path") -> pd.DataFrame:
    """The table in ``path``, read by its suffix.

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.csv.gz``, ``.txt`` (CSV), ``.parquet`` or ``.pq`` file.
    field : str
        The option or setting that named the file (``"--data"``, ``"holdout"``), named in
        the errors so the user knows which input to fix.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    NotFoundError
        ``path`` does not exist.
    InvalidInputError
        Another suffix, or a file pandas cannot read as its suffix says.
    """
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"{field}: data file not found: {p}")
    name = p.name.lower()
    try:
        if name.endswith(PARQUET_SUFFIXES):
            return pd.read_parquet(p)
        if name.endswith(CSV_SUFFIXES):
            return pd.read_csv(p)
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # pyarrow errors are ValueErrors
        raise InvalidInputError(f"{field}: could not read {p}: {exc}", field=field) from exc
    raise InvalidInputError(
        f"{field}: unsupported data file type for {p}; use .csv, .csv.gz or .parquet",
        field=field,
    )


def split_label(
    frame: pd.DataFrame, label: str, *, source: str | Path, field: str = "label"
) -> tuple[pd.DataFrame, Any]:
    """``(features, labels)`` of a table with the column ``label``.

    Raises
    ------
    InvalidInputError
        ``frame`` has no column ``label``; the message names ``source`` (the file) and lists
        the columns it has, ``field`` names the option that gave the label.
    """
    if label not in frame.columns:
        raise InvalidInputError(
            f"{source} has no label column {label!r}; columns: "
            f"{', '.join(map(str, frame.columns))}",
            field=field,
        )
    return frame.drop(columns=[label]), frame[label].to_numpy()


__all__ = ["CSV_SUFFIXES", "PARQUET_SUFFIXES", "read_table", "split_label"]
