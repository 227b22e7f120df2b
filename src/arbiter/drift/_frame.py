"""Reading columns out of a table without depending on pandas.

The core accepts anything with ``columns`` and ``__getitem__`` (a pandas or polars-like
DataFrame) or a mapping of column name to array-like. Pandas Series are used through their own
hash-based ``value_counts`` when present: counting categories by sorting (``np.unique``) costs
~1 s per million strings, hashing ~50 ms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from arbiter.drift.results import Kind
from arbiter.errors import InvalidInputError

Frame = Any  # a DataFrame or a Mapping[str, array-like]


def column_names(frame: Frame) -> list[str]:
    """Column names of ``frame``, in order."""
    if isinstance(frame, Mapping):
        return [str(k) for k in frame]
    columns = getattr(frame, "columns", None)
    if columns is None:
        raise InvalidInputError(
            f"expected a DataFrame or a mapping of column name to values, got {type(frame)!r}",
            field="frame",
        )
    return [str(c) for c in columns]


def infer_kind(values: Any) -> Kind:
    """Numeric for int/unsigned/float dtypes; categorical for bool, string, object, category."""
    dtype = getattr(values, "dtype", None)
    if dtype is None:
        dtype = np.asarray(values).dtype
    return "numeric" if getattr(dtype, "kind", "O") in "iuf" else "categorical"


def as_float(values: Any) -> np.ndarray:
    """Finite float64 values (missing and non-finite dropped)."""
    to_numpy = getattr(values, "to_numpy", None)
    if to_numpy is not None:
        try:
            arr = to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            arr = None
        if arr is not None:
            return arr[np.isfinite(arr)]
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"a numeric column holds non-numeric values ({exc}); declare it categorical",
            field="kinds",
        ) from exc
    return arr[np.isfinite(arr)]


def _label(value: Any) -> str:
    # JSON spellings, so a training-time bool matches the event log's json_extract_string.
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def category_counts(values: Any) -> dict[str, int]:
    """Count of each non-missing category, keys as canonical text."""
    value_counts = getattr(values, "value_counts", None)
    if value_counts is not None:
        vc = value_counts(dropna=True, sort=False)
        counts: dict[str, int] = {}
        for key, count in zip(vc.index.tolist(), vc.to_numpy().tolist(), strict=True):
            label = _label(key)  # one call per distinct category, not per row
            counts[label] = counts.get(label, 0) + int(count)
        return {k: v for k, v in counts.items() if v > 0}
    arr = np.asarray(values).ravel()
    if arr.dtype.kind in "biuf":
        if arr.dtype.kind == "f":
            arr = arr[np.isfinite(arr)]
        uniques, counts_arr = np.unique(arr, return_counts=True)
    else:
        # Without pandas, missing values are recognised by their text ("None", "nan").
        text = arr.astype(str)
        uniques, counts_arr = np.unique(
            text[(text != "None") & (text != "nan")], return_counts=True
        )
    out: dict[str, int] = {}
    for key, count in zip(uniques.tolist(), counts_arr.tolist(), strict=True):
        label = _label(key)
        out[label] = out.get(label, 0) + int(count)
    return out


__all__ = ["Frame", "as_float", "category_counts", "column_names", "infer_kind"]
