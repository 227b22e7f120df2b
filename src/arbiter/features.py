"""Input rows: validation against a model's input schema, and coercion to model input.

The schema comes from the model's MLflow signature (see :mod:`arbiter.registry`). Every
protocol (arbiter JSON, /rank, MLflow scoring, Open Inference Protocol v2) goes through one
step here before any model runs: :func:`coerce_rows` for JSON rows, :func:`coerce_frame` for
the frames the other protocols decode. Both apply the same rules (docs/protocols.md, "Input
rules"), so an input is accepted or refused the same way whatever the client speaks, a refusal
is the client's error (a 4xx that no guardrail counts), and everything behind the step trusts
the batch. Errors name the field as a JSON path (``features[3].amount``) so an HTTP client can
find the bad value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from arbiter.errors import InvalidInputError

NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})
_INTEGER_TYPES = frozenset({"long", "integer"})


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One input column: its name, MLflow type name and whether it may be missing."""

    name: str
    type: str  # MLflow DataType name: double, float, long, integer, string, boolean, ...
    required: bool = True


@dataclass(frozen=True, slots=True)
class InputSchema:
    """The columns a model takes, in the order it takes them."""

    features: tuple[FeatureSpec, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def all_numeric(self) -> bool:
        return all(f.type in NUMERIC_TYPES for f in self.features)


_FLOAT_TYPES = frozenset({"double", "float"})


def _check_value(spec: FeatureSpec, value: Any, path: str, allow_non_finite: bool) -> Any:
    """The value the model receives for ``value`` in column ``spec`` (or InvalidInputError).

    Ints become floats in ``double``/``float`` columns and integral floats become ints in
    ``long``/``integer`` columns, so a pyfunc model's own schema enforcement (which refuses
    "unsafe" int64 -> float64 casts) sees exactly the dtype its signature names.
    """
    if type(value) is float and spec.type in _FLOAT_TYPES and math.isfinite(value):
        return value  # the common case, first
    if value is None or (isinstance(value, float) and math.isnan(value) and not allow_non_finite):
        if spec.required:
            raise InvalidInputError(f"feature {spec.name!r} is required but is null", field=path)
        return np.nan if spec.type in NUMERIC_TYPES else None
    kind = spec.type
    if kind in NUMERIC_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise InvalidInputError(
                f"feature {spec.name!r} must be a number ({kind}), got {type(value).__name__}",
                field=path,
            )
        if kind in _INTEGER_TYPES:
            if isinstance(value, float | np.floating) and not float(value).is_integer():
                raise InvalidInputError(
                    f"feature {spec.name!r} must be an integer ({kind}), got {value!r}",
                    field=path,
                )
            return int(value)
        number = float(value)
        if not math.isfinite(number) and not allow_non_finite:
            raise InvalidInputError(
                f"feature {spec.name!r} must be finite, got {number!r} (set "
                "models.<name>.inputs.allow_non_finite for a model that handles it)",
                field=path,
            )
        return number
    if kind == "string":
        if not isinstance(value, str):
            raise InvalidInputError(
                f"feature {spec.name!r} must be a string, got {type(value).__name__}", field=path
            )
        return value
    if kind == "boolean":
        if not isinstance(value, bool | np.bool_):
            raise InvalidInputError(
                f"feature {spec.name!r} must be a boolean, got {type(value).__name__}", field=path
            )
        return bool(value)
    return value  # binary, datetime, ...: passed through to MLflow's own enforcement


def coerce_rows(
    rows: Sequence[Any],
    schema: InputSchema | None,
    *,
    field: str = "features",
    single: bool = False,
    allow_non_finite: bool = False,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> list[dict[str, Any]]:
    """Check every row against ``schema``; return the rows as the model must receive them.

    This is the one input step every protocol goes through before any model runs: a failure
    is the client's (InvalidInputError, a 4xx), never a model error. The returned rows are
    what is scored *and* what is logged. Without a schema the rows must still be objects with
    the same keys, so a batch is a table, and are returned as they came. ``single`` means the
    client sent one object rather than an array, so error paths read ``features.amount``
    instead of ``features[0].amount``. ``allow_non_finite`` lets NaN and ±Infinity through to
    ``double``/``float`` columns (``models.<name>.inputs.allow_non_finite``). ``ranges``
    (column -> (min, max) seen in training; ``inputs.out_of_range: reject``) refuses a
    number outside its column's range; NaN and columns without a range are not checked.
    """
    if not rows:
        raise InvalidInputError("at least one row is required", field=field)
    specs = schema.features if schema else None
    expected = set(schema.names) if schema else None
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        path = field if single else f"{field}[{i}]"
        if not isinstance(row, Mapping):
            raise InvalidInputError(
                f"each row must be a JSON object of feature values, got {type(row).__name__}",
                field=path,
            )
        if expected is None:
            expected = set(row)
            if not expected:
                raise InvalidInputError("a row has no features", field=path)
        keys = set(row)
        if keys != expected:
            order = schema.names if schema else sorted(expected)
            missing = [name for name in order if name not in keys]
            extra = sorted(keys - expected)
            if missing and (specs is None or any(s.required for s in specs if s.name in missing)):
                name = missing[0]
                raise InvalidInputError(
                    f"missing feature {name!r}"
                    + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                    field=f"{path}.{name}",
                )
            if extra:
                raise InvalidInputError(
                    f"unexpected feature {extra[0]!r}; the model takes {sorted(expected)}",
                    field=f"{path}.{extra[0]}",
                )
        if specs is None:
            out.append(dict(row))
            continue
        coerced = {
            spec.name: _check_value(
                spec, row.get(spec.name), f"{path}.{spec.name}", allow_non_finite
            )
            for spec in specs
            if spec.name in row
        }
        if ranges:
            for name, (low, high) in ranges.items():
                value = coerced.get(name)
                if isinstance(value, int | float) and not low <= value <= high:
                    raise _out_of_range(name, value, low, high, f"{path}.{name}")
        out.append(coerced)
    return out


def _out_of_range(name: str, value: float, low: float, high: float, path: str) -> Exception:
    return InvalidInputError(
        f"feature {name!r} is {value!r}, outside the range seen in training [{low:g}, "
        f"{high:g}] (the model's inputs.out_of_range: reject)",
        field=path,
    )


def coerce_frame(
    frame: Any,
    schema: InputSchema,
    *,
    field_of: Callable[[str], str] = lambda column: column,
    allow_non_finite: bool = False,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> Any:
    """A DataFrame with exactly the signature's columns and dtypes, or InvalidInputError.

    The table counterpart of :func:`coerce_rows`, for the protocols that decode a frame (MLflow
    scoring, Open Inference Protocol v2). Same rules: at least one row; every required column
    present (columns the signature does not name are dropped, as MLflow ignores them, so the
    log holds only what was scored); numbers in numeric columns, cast to the signature's
    dtype (ints to float64 for ``double``); NaN/±Infinity refused unless
    ``allow_non_finite``; nulls only in optional columns; ``ranges`` as in :func:`coerce_rows`.
    ``field_of`` maps a column to the field named in errors (``inputs[2]`` on v2).
    Vectorised: a 10,000-row batch costs about as much as one row, not 10,000 Python-level
    checks.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(
            f"the input must be a table with columns {list(schema.names)}", field=field_of("")
        )
    if len(frame) == 0:
        raise InvalidInputError("at least one row is required", field=field_of(""))
    present = [spec for spec in schema.features if spec.name in frame.columns]
    missing = [s.name for s in schema.features if s.name not in frame.columns and s.required]
    if missing:
        raise InvalidInputError(
            f"missing feature {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + f"; the model takes {list(schema.names)}",
            field=field_of(missing[0]),
        )
    if frame.columns.duplicated().any():
        name = str(frame.columns[frame.columns.duplicated()][0])
        raise InvalidInputError(f"column {name!r} appears more than once", field=field_of(name))
    # Columns already of the signature's float dtype (the common case) are checked as one
    # block; only the others are looked at (and cast) one by one.
    columns = list(frame.columns)
    dtypes = dict(zip(columns, frame.dtypes, strict=True))
    ready = [s for s in present if s.type in _FLOAT_TYPES and dtypes[s.name] == _DTYPES[s.type]]
    if ready:
        if len(set(dtypes.values())) == 1:  # one block already: no column selection to pay
            block = frame.to_numpy()[:, [columns.index(s.name) for s in ready]]
        else:
            block = frame[[s.name for s in ready]].to_numpy()
        for j, spec in enumerate(ready):
            _check_floats(block[:, j], spec, field_of(spec.name), allow_non_finite)
    changed = {}
    for spec in present:
        if spec in ready:
            continue
        column = frame[spec.name]
        coerced = _coerce_column(column, spec, field_of(spec.name), allow_non_finite)
        if coerced is not column:
            changed[spec.name] = coerced
    names = [s.name for s in present]
    out = frame if columns == names else frame[names]
    out = out.assign(**changed) if changed else out
    for name, (low, high) in (ranges or {}).items():
        if name in names and out[name].dtype.kind in "iuf":
            values = out[name].to_numpy()
            outside = (values < low) | (values > high)  # NaN compares False: not checked
            if outside.any():
                row = int(np.argmax(outside))
                raise _out_of_range(name, values[row].item(), low, high, field_of(name))
    return out


_DTYPES = {"double": np.dtype(np.float64), "float": np.dtype(np.float32)}


def _check_floats(values: np.ndarray, spec: FeatureSpec, path: str, allow: bool) -> None:
    """Refuse NaN in a required column and ±Infinity anywhere, unless ``allow``."""
    if allow:
        return
    nan = np.isnan(values)
    if spec.required and nan.any():
        raise InvalidInputError(
            f"feature {spec.name!r} is required but is null in row {int(np.argmax(nan))}",
            field=path,
        )
    inf = np.isinf(values)
    if inf.any():
        row = int(np.argmax(inf))
        raise InvalidInputError(
            f"feature {spec.name!r} must be finite, got {values[row]!r} in row {row} (set "
            "models.<name>.inputs.allow_non_finite for a model that handles it)",
            field=path,
        )


def _coerce_column(column: Any, spec: FeatureSpec, path: str, allow_non_finite: bool) -> Any:
    import pandas as pd

    kind = spec.type
    values = column.to_numpy()
    if kind in NUMERIC_TYPES:
        if values.dtype == object:
            bad = [
                i
                for i, v in enumerate(values)
                if v is not None
                and (isinstance(v, bool) or not isinstance(v, int | float | np.number))
            ]
            if bad:
                got = type(values[bad[0]]).__name__
                raise InvalidInputError(
                    f"feature {spec.name!r} must be a number ({kind}), got {got} in row {bad[0]}",
                    field=path,
                )
            values = np.array([np.nan if v is None else float(v) for v in values])
        elif values.dtype.kind not in "iuf":
            raise InvalidInputError(
                f"feature {spec.name!r} must be a number ({kind}), got {_dtype_word(values)}",
                field=path,
            )
        if values.dtype.kind == "f":
            _check_floats(values, spec, path, allow_non_finite)
        if kind in _FLOAT_TYPES:
            return pd.Series(values.astype(_DTYPES[kind]), index=column.index, name=spec.name)
        if values.dtype.kind == "f":
            finite = values[np.isfinite(values)]
            if len(finite) < len(values) or not np.all(finite == np.round(finite)):
                if len(finite) == len(values):
                    row = int(np.argmax(finite != np.round(finite)))
                    raise InvalidInputError(
                        f"feature {spec.name!r} must be an integer ({kind}), got "
                        f"{values[row]!r} in row {row}",
                        field=path,
                    )
                return pd.Series(values, index=column.index, name=spec.name)  # optional nulls
        dtype = np.int32 if kind == "integer" else np.int64
        if values.dtype == dtype:
            return column
        return pd.Series(values.astype(dtype), index=column.index, name=spec.name)
    if kind == "string":
        if values.dtype.kind in "US":
            return column
        # A null decodes as None or, once pandas has read the column (its string dtype), as
        # NaN or pd.NA: a missing value (allowed in optional columns), not a number.
        nulls = [i for i, v in enumerate(values) if _is_null(v)]
        bad = [i for i, v in enumerate(values) if not (isinstance(v, str) or _is_null(v))]
        if bad:
            raise InvalidInputError(
                f"feature {spec.name!r} must be a string, got {type(values[bad[0]]).__name__} "
                f"in row {bad[0]}",
                field=path,
            )
        if nulls and spec.required:
            raise InvalidInputError(
                f"feature {spec.name!r} is required but is null in row {nulls[0]}", field=path
            )
        return column
    if kind == "boolean":
        if values.dtype == bool:
            return column
        bad = [i for i, v in enumerate(values) if not isinstance(v, bool | np.bool_)]
        if bad:
            raise InvalidInputError(
                f"feature {spec.name!r} must be a boolean, got {type(values[bad[0]]).__name__} "
                f"in row {bad[0]}",
                field=path,
            )
        return pd.Series(values.astype(bool), index=column.index, name=spec.name)
    return column  # binary, datetime, ...: MLflow's own enforcement


def _is_null(value: Any) -> bool:
    import pandas as pd

    return (
        value is None
        or value is pd.NA
        or (isinstance(value, float | np.floating) and math.isnan(value))
    )


def _dtype_word(values: np.ndarray) -> str:
    return {"b": "boolean", "U": "string", "S": "bytes", "M": "datetime"}.get(
        values.dtype.kind, str(values.dtype)
    )


def rows_to_matrix(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> np.ndarray:
    """A float64 matrix of ``rows`` with columns in ``names`` order (the sklearn fast path)."""
    return np.array([[row.get(n, np.nan) for n in names] for row in rows], dtype=np.float64)


def rows_to_frame(rows: Sequence[Mapping[str, Any]], names: Sequence[str] | None):
    """A pandas DataFrame of ``rows`` with columns in ``names`` order (the general pyfunc path)."""
    import pandas as pd

    frame = pd.DataFrame.from_records(list(rows))
    if names is not None:
        frame = frame.reindex(columns=list(names))
    # A JSON null is None in an object column (a column of nulls only, as in a one-row request
    # with a null string) but NaN once pandas infers a string column: encoders read None as
    # one more category and NaN as missing, so the same row scored differently (or failed)
    # by batch. One missing value for the model: NaN, as in the training data.
    for name in [c for c, dtype in frame.dtypes.items() if dtype.kind == "O"]:
        column = frame[name]
        if column.isna().any():
            frame[name] = column.where(column.notna(), np.nan)
    return frame


__all__ = [
    "FeatureSpec",
    "InputSchema",
    "coerce_frame",
    "coerce_rows",
    "rows_to_frame",
    "rows_to_matrix",
]
