"""Input rows: validation against a model's input schema, and conversion to model input.

The schema comes from the model's MLflow signature (see :mod:`arbiter.registry`). Validation
happens once, here, at the edge: everything behind it trusts the batch. Errors name the field
as a JSON path (``features[3].amount``) so an HTTP client can find the bad value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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


def _check_value(spec: FeatureSpec, value: Any, path: str) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if spec.required:
            raise InvalidInputError(f"feature {spec.name!r} is required but is null", field=path)
        return np.nan if spec.type in NUMERIC_TYPES else None
    kind = spec.type
    if kind in NUMERIC_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInputError(
                f"feature {spec.name!r} must be a number ({kind}), got {type(value).__name__}",
                field=path,
            )
        if kind in _INTEGER_TYPES and isinstance(value, float) and not value.is_integer():
            raise InvalidInputError(
                f"feature {spec.name!r} must be an integer ({kind}), got {value!r}", field=path
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(f"feature {spec.name!r} must be finite", field=path)
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise InvalidInputError(
                f"feature {spec.name!r} must be a string, got {type(value).__name__}", field=path
            )
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise InvalidInputError(
                f"feature {spec.name!r} must be a boolean, got {type(value).__name__}", field=path
            )
        return value
    return value  # binary, datetime, ...: passed through to MLflow's own enforcement


def validate_rows(
    rows: Sequence[Any],
    schema: InputSchema | None,
    *,
    field: str = "features",
    single: bool = False,
) -> list[Mapping[str, Any]]:
    """Check every row against ``schema``; return the rows (unchanged) when all are valid.

    Without a schema the rows must still be objects with the same keys, so a batch is a table.
    ``single`` means the client sent one object rather than an array, so error paths read
    ``features.amount`` instead of ``features[0].amount``.
    """
    if not rows:
        raise InvalidInputError("at least one row is required", field=field)
    specs = schema.features if schema else None
    expected = set(schema.names) if schema else None
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
        if specs is not None:
            for spec in specs:
                _check_value(spec, row.get(spec.name), f"{path}.{spec.name}")
    return list(rows)


def rows_to_matrix(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> np.ndarray:
    """A float64 matrix of ``rows`` with columns in ``names`` order (the sklearn fast path)."""
    return np.array([[row.get(n, np.nan) for n in names] for row in rows], dtype=np.float64)


def rows_to_frame(rows: Sequence[Mapping[str, Any]], names: Sequence[str] | None):
    """A pandas DataFrame of ``rows`` with columns in ``names`` order (the general pyfunc path)."""
    import pandas as pd

    frame = pd.DataFrame.from_records(list(rows))
    if names is not None:
        frame = frame.reindex(columns=list(names))
    return frame


__all__ = [
    "FeatureSpec",
    "InputSchema",
    "rows_to_frame",
    "rows_to_matrix",
    "validate_rows",
]
