"""Reading columns out of a table without depending on pandas.

The core accepts anything with ``columns`` and ``__getitem__`` (a pandas or polars-like
DataFrame) or a mapping of column name to array-like. Pandas Series are used through their own
hash-based ``value_counts`` when present: counting categories by sorting (``np.unique``) costs
~1 s per million strings, hashing ~50 ms.

:func:`infer_kind` is the one rule for a column's kind (numeric, categorical, text) that
retraining, drift and the demo share; :mod:`arbiter.column_kinds` is its public face outside
the drift core (which may import nothing outside the core).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from itertools import chain
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


#: As ``arbiter.column_kinds``: median whitespace tokens per value from which strings are text.
TEXT_MIN_TOKENS = 3
_KIND_SAMPLE = 2_000
_TOKEN = re.compile(r"\w+")


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN; pd.NA raises TypeError on bool()
    except TypeError:
        return True


def infer_kind(values: Any) -> Kind:
    """The kind of a column (see :mod:`arbiter.column_kinds` for why tokens decide text).

    Int/unsigned/float dtypes are numeric, bools categorical; strings are text when the median
    non-missing value has at least :data:`TEXT_MIN_TOKENS` whitespace-separated tokens (in an
    evenly spaced sample of 2,000 values), else categorical.
    """
    dtype = getattr(values, "dtype", None)
    if dtype is None:
        dtype = np.asarray(values).dtype
    kind = getattr(dtype, "kind", "O")
    if kind in "iuf":
        return "numeric"
    if kind == "b":
        return "categorical"
    size = len(values)
    if size > _KIND_SAMPLE:
        # Sample before converting: a million Arrow strings to Python objects costs ~0.1 s.
        at = np.linspace(0, size - 1, _KIND_SAMPLE).astype(np.int64)
        iloc = getattr(values, "iloc", None)
        values = iloc[at] if iloc is not None else np.asarray(values, dtype=object).ravel()[at]
    arr = np.asarray(values, dtype=object).ravel()
    tokens = [len(str(v).split()) for v in arr if not _is_missing(v)]
    if tokens and float(np.median(tokens)) >= TEXT_MIN_TOKENS:
        return "text"
    return "categorical"


def text_values(values: Any) -> list[str]:
    """The non-missing values of a text column, as ``str``."""
    isna = getattr(values, "isna", None)
    if isna is not None:
        mask = np.asarray(isna(), dtype=bool)
        arr = np.asarray(values, dtype=object)[~mask]
        return [v if type(v) is str else str(v) for v in arr.tolist()]
    return [str(v) for v in np.asarray(values, dtype=object).ravel().tolist() if not _is_missing(v)]


def tokenize(texts: list[str]) -> tuple[Counter[str], np.ndarray]:
    """Token counts and tokens per value (lower-cased ``\\w+`` runs)."""
    joined = "\x00".join(texts)
    if joined.count("\x00") != max(len(texts) - 1, 0):  # a value holds NUL itself
        tokens = [_TOKEN.findall(t.lower()) for t in texts]
        lengths = np.fromiter(map(len, tokens), dtype=np.float64, count=len(tokens))
        return Counter(chain.from_iterable(tokens)), lengths
    # One lower() and one regex pass over all values (NUL is not a word character, so no
    # token spans two values) count the tokens twice as fast as a pass per value.
    lowered = joined.lower()
    parts = lowered.split("\x00") if texts else []
    lengths = np.fromiter(map(len, map(_TOKEN.findall, parts)), dtype=np.float64, count=len(parts))
    return Counter(_TOKEN.findall(lowered)), lengths


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


__all__ = [
    "TEXT_MIN_TOKENS",
    "Frame",
    "as_float",
    "category_counts",
    "column_names",
    "infer_kind",
    "text_values",
    "tokenize",
]
