"""The training table: raw features, labels, column kinds, gaps and (optionally) time order.

:func:`prepare_table` turns what the caller hands :func:`~arbiter.retrain.retrain` (a
DataFrame, labels, labelled traffic, kind overrides, a time column) into a
:class:`TrainingTable`: rows are never dropped for a missing feature (the pipeline imputes),
gaps are counted per column, and with a time column rows are put in time order so that
:func:`validation_folds` trains on the past and validates on the future.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from arbiter.column_kinds import ColumnKind
from arbiter.errors import InvalidInputError
from arbiter.retrain.encoding import TableLayout, layout_for, missing_counts

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingTable:
    """Rows to train on, in the order the validation folds assume.

    ``features`` holds the raw feature columns (the time column excluded); ``model_input`` is
    what estimators are fitted on: ``features`` itself, or a float64 matrix when every
    column is numeric (see :class:`~arbiter.retrain.encoding.TableLayout`). ``times`` is the
    time column's values as int64 nanoseconds (or floats), ascending, when there is one;
    traffic rows come after the training rows, in arrival order, and have no time (they are
    newer than any training row).
    """

    features: pd.DataFrame
    labels: np.ndarray
    layout: TableLayout
    n_traffic: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    n_rows_with_gaps: int = 0
    time_column: str | None = None
    times: np.ndarray | None = None

    @property
    def model_input(self) -> Any:
        """The DataFrame, or its float64 matrix when every column is numeric."""
        if self.layout.frame_input:
            return self.features
        return self.features.to_numpy(dtype=np.float64)

    @property
    def n_rows(self) -> int:
        return len(self.features)

    def take(self, rows: np.ndarray) -> TrainingTable:
        """The table restricted to ``rows`` (ascending positions: time order is kept).

        The layout, gap counts and traffic count describe the whole table and are kept as
        they are: a subset is searched on, the whole table is what the model is refitted on.
        """
        return dataclasses.replace(
            self,
            features=self.features.iloc[rows].reset_index(drop=True),
            labels=self.labels[rows],
            times=None if self.times is None else self.times[rows],
        )


def _check_names(names: Sequence[str], columns: Sequence[str], option: str) -> None:
    unknown = [n for n in names if n not in columns]
    if unknown:
        raise InvalidInputError(
            f"{option} names {', '.join(repr(n) for n in unknown)}, not a column of the "
            f"training data (columns: {', '.join(columns)})",
            field=option,
        )


def _time_order(values: pd.Series, column: str) -> np.ndarray:
    """Sortable int64/float values of a time column (datetimes, numbers or date strings)."""
    import pandas as pd

    if values.isna().any():
        raise InvalidInputError(
            f"time column {column!r} has {int(values.isna().sum())} missing values: every "
            "training row needs a time to be placed before or after the validation rows",
            field="--time-column",
        )
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=np.float64)
    try:
        stamps = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"time column {column!r} holds neither numbers nor dates: {exc}",
            field="--time-column",
        ) from exc
    return stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def _normalise(frame: pd.DataFrame, layout: TableLayout) -> pd.DataFrame:
    """Numeric columns as float64; string columns of mixed Python types as strings."""
    import pandas as pd

    out = {}
    for column, kind in layout.kind_of().items():
        values = frame[column]
        if kind == "numeric":
            values = values.astype(np.float64)
        elif values.dtype == object:
            present = values.notna()
            non_str = present & ~values.map(lambda v: isinstance(v, str | bool | np.bool_))
            if non_str.any():  # e.g. codes read as ints next to strings: one type per column
                values = values.astype(str).where(present, None)
        out[column] = values
    return pd.DataFrame(out)


def prepare_table(
    x: pd.DataFrame,
    y: Any,
    *,
    traffic: tuple[pd.DataFrame, Any] | None = None,
    categorical: Sequence[str] = (),
    text: Sequence[str] = (),
    time_column: str | None = None,
) -> TrainingTable:
    """Check and assemble the training rows (the first step of :func:`retrain`).

    Parameters
    ----------
    x : pandas.DataFrame
        Training features, raw: numbers, strings, booleans, missing values.
    y : array-like
        One label per row of ``x``.
    traffic : (DataFrame, array), optional
        Labelled production rows, aligned to ``x``'s columns (a feature they lack is missing
        and imputed; the rows are kept).
    categorical, text : sequence of str
        Columns whose kind is forced (otherwise :func:`arbiter.column_kinds.column_kinds`).
    time_column : str, optional
        Column of ``x`` ordering the rows in time; it is not a feature.

    Raises
    ------
    InvalidInputError
        Not a DataFrame, labels not one per row, unknown column names, no rows.
    """
    import pandas as pd

    if not isinstance(x, pd.DataFrame):
        raise InvalidInputError("x must be a pandas DataFrame with named columns", field="x")
    y = np.asarray(y)
    if y.ndim != 1 or y.size != len(x):
        raise InvalidInputError(
            f"y must be one label per row of x: {y.shape} labels for {len(x)} rows", field="y"
        )
    frame = x.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    columns = list(frame.columns)
    times = None
    if time_column is not None:
        _check_names([time_column], columns, "--time-column")
        times = _time_order(frame[time_column], time_column)
        order = np.argsort(times, kind="stable")
        frame, y, times = frame.iloc[order].reset_index(drop=True), y[order], times[order]
        frame = frame.drop(columns=[time_column])
        columns = list(frame.columns)
    _check_names(categorical, columns, "--categorical")
    _check_names(text, columns, "--text")
    both = sorted(set(categorical) & set(text))
    if both:
        raise InvalidInputError(
            f"column {both[0]!r} is given as both --categorical and --text", field="--text"
        )
    if not columns:
        raise InvalidInputError("no feature columns to train on", field="x")
    dates = [c for c in columns if frame[c].dtype.kind in "Mm"]
    if dates:
        raise InvalidInputError(
            f"column {dates[0]!r} holds dates or durations, which are not features: pass it as "
            "--time-column (time-ordered validation) or drop it",
            field="x",
        )
    overrides: dict[str, ColumnKind] = {c: "categorical" for c in categorical}
    overrides.update({c: "text" for c in text})
    layout = layout_for(frame, overrides)
    n_traffic = 0
    if traffic is not None:
        tx, ty = traffic
        ty = np.asarray(ty)
        # Traffic logs whatever the callers sent: keep the training columns; a feature a row
        # lacks is missing, imputed by the pipeline like any training gap.
        tx = tx.reindex(columns=columns).reset_index(drop=True)
        labelled = pd.notna(ty)
        if not labelled.all():
            log.info("skipped %d traffic rows without a label", int((~labelled).sum()))
            tx, ty = tx[labelled].reset_index(drop=True), ty[labelled]
        for column, kind in layout.kind_of().items():
            if kind == "numeric":
                tx[column] = pd.to_numeric(tx[column], errors="coerce")
            elif pd.api.types.is_bool_dtype(frame[column]) and tx[column].dtype.kind == "f":
                # the event log reads JSON booleans as numbers: back to the training type
                tx[column] = tx[column].map({1.0: True, 0.0: False}).astype(object)
        n_traffic = len(tx)
        if n_traffic:
            if y.dtype.kind in "iub" and ty.dtype.kind == "f":
                ty = ty.astype(y.dtype)
            frame = pd.concat([frame, tx], ignore_index=True)
            y = np.concatenate([y, ty.astype(y.dtype, copy=False)])
    if len(frame) == 0:
        raise InvalidInputError("no training rows", field="x")
    frame = _normalise(frame, layout)
    missing = missing_counts(frame)
    gaps = int(frame.isna().any(axis=1).sum()) if missing else 0
    if gaps:
        log.info(
            "%d of %d training rows have a missing value (kept, imputed): %s",
            gaps,
            len(frame),
            ", ".join(f"{c} {n}" for c, n in missing.items()),
        )
    if times is not None and n_traffic:
        # Traffic rows are served after the training data was collected: after every time.
        last = times[-1] if times.size else 0
        times = np.concatenate([times, np.full(n_traffic, last, dtype=times.dtype)])
    return TrainingTable(
        features=frame,
        labels=y,
        layout=layout,
        n_traffic=n_traffic,
        missing=missing,
        n_rows_with_gaps=gaps,
        time_column=time_column,
        times=times,
    )


def validation_folds(table: TrainingTable, task: str, cv: int, seed: int) -> Any:
    """The CV splitter every trial is scored with.

    With a time column, ``TimeSeriesSplit(cv)`` over the time-ordered rows: each fold trains on
    a prefix and validates on the rows right after it, never on the past. Otherwise shuffled
    folds (stratified for classification), seeded.
    """
    from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit

    if table.time_column is not None:
        if table.n_rows <= cv:
            raise InvalidInputError(
                f"{table.n_rows} rows are too few for {cv} time-ordered folds", field="cv"
            )
        return TimeSeriesSplit(n_splits=cv)
    if task == "classification":
        return StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    return KFold(n_splits=cv, shuffle=True, random_state=seed)


def search_rows_of(table: TrainingTable, task: str, max_rows: int | None, seed: int) -> np.ndarray:
    """Positions (ascending) of the rows the search scores trials on: at most ``max_rows``.

    A search ranks candidates; it does not need every row to do so, and its cost grows with
    the rows times the trials times the folds. So, as AutoML tools do (FLAML and
    auto-sklearn subsample large tables), trials are scored on a subset and only the winner
    is refitted on every row. Which subset keeps the validation honest:

    - with a time column, the *most recent* ``max_rows`` rows: the time-ordered folds still
      train on the past and validate on the future, on the data closest to production;
    - classification: a stratified sample (``train_test_split(stratify=labels)``), so a rare
      class keeps its share;
    - regression: a uniform sample, seeded.

    ``max_rows`` of ``None`` or 0, or a table no larger, means every row.
    """
    from sklearn.model_selection import train_test_split

    n = table.n_rows
    if not max_rows or n <= max_rows:
        return np.arange(n)
    if table.time_column is not None:
        return np.arange(n - max_rows, n)
    stratify = None
    if task == "classification":
        _, counts = np.unique(table.labels, return_counts=True)
        # train_test_split refuses to stratify a class with a single row; sample uniformly then.
        stratify = table.labels if counts.min() >= 2 else None
    picked, _ = train_test_split(
        np.arange(n), train_size=max_rows, stratify=stratify, random_state=seed
    )
    return np.sort(picked)


def input_schema(table: TrainingTable) -> Any:
    """The MLflow input schema of the raw columns: ``string`` for text and categories, and
    ``required=False`` for every column that had a missing value in training.
    """
    import pandas as pd
    from mlflow.types import ColSpec, Schema

    specs = []
    for column, kind in table.layout.kind_of().items():
        values = table.features[column]
        if kind == "numeric":
            type_name = "double"
        elif pd.api.types.is_bool_dtype(values):
            type_name = "boolean"
        elif pd.api.types.is_integer_dtype(values):
            type_name = "long"
        elif pd.api.types.is_float_dtype(values):
            type_name = "double"
        elif values.dtype == object:  # booleans with gaps, or strings of a mixed column
            present = values.dropna()
            is_bool = len(present) > 0 and present.map(type).isin([bool, np.bool_]).all()
            type_name = "boolean" if is_bool else "string"
        else:
            type_name = "string"
        specs.append(ColSpec(type_name, column, required=column not in table.missing))
    return Schema(specs)


__all__ = [
    "TrainingTable",
    "input_schema",
    "prepare_table",
    "search_rows_of",
    "validation_folds",
]
