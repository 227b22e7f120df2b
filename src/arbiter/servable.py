"""A loaded model version, ready to score rows.

Wraps an MLflow pyfunc model. For scikit-learn models whose inputs are all numeric it calls
the estimator directly on a float matrix: this skips pandas and MLflow's per-call schema
enforcement (about 1 ms per request), which is safe because :mod:`arbiter.features` has already
validated the rows against the same signature. It also gives access to ``predict_proba``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arbiter.errors import ModelError
from arbiter.features import InputSchema, rows_to_frame, rows_to_matrix


@dataclass(slots=True)
class Scored:
    """What a model returned for a batch: one prediction per row, and probabilities if any."""

    predictions: list[Any]
    proba: np.ndarray | None = None  # shape (rows, classes)
    classes: list[Any] | None = None
    raw: Any = None  # the model's own output, for protocols that return it verbatim


@dataclass
class ServableModel:
    """One registered model version, loaded and ready to predict."""

    name: str
    version: str
    pyfunc: Any  # mlflow.pyfunc.PyFuncModel (or anything with .predict(DataFrame))
    schema: InputSchema | None
    raw: Any = None  # the native scikit-learn estimator, when the model has that flavor
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def fast_path(self) -> bool:
        """Whether rows go straight to the estimator as a float matrix."""
        return (
            self.raw is not None
            and self.schema is not None
            and self.schema.all_numeric
            and not hasattr(self.raw, "feature_names_in_")
        )

    @property
    def classes(self) -> list[Any] | None:
        classes = getattr(self.raw, "classes_", None) if self.raw is not None else None
        return None if classes is None else list(np.asarray(classes).tolist())

    def _native_input(self, rows: Sequence[Mapping[str, Any]]) -> Any:
        names = self.schema.names if self.schema else None
        if self.fast_path and names is not None:
            return rows_to_matrix(rows, names)
        return rows_to_frame(rows, names)

    def predict_rows(self, rows: Sequence[Mapping[str, Any]]) -> Scored:
        """Score validated rows. Raises :class:`ModelError` when the model raises."""
        try:
            if self.raw is not None:
                x = self._native_input(rows)
                predictions = np.asarray(self.raw.predict(x))
                proba = None
                if hasattr(self.raw, "predict_proba") and self.classes is not None:
                    proba = np.asarray(self.raw.predict_proba(x), dtype=np.float64)
                return Scored(predictions.tolist(), proba, self.classes, predictions)
            output = self.pyfunc.predict(rows_to_frame(rows, self.schema.names if self.schema else None))
        except Exception as exc:  # any model failure becomes one error type for the caller
            raise ModelError(f"model {self.name} v{self.version} failed: {exc}") from exc
        return Scored(to_row_list(output), None, None, output)

    def predict_frame(self, frame: Any, params: dict[str, Any] | None = None) -> Scored:
        """Score a DataFrame/array through pyfunc, exactly as ``mlflow models serve`` would."""
        try:
            output = self.pyfunc.predict(frame, params=params) if params else self.pyfunc.predict(frame)
        except Exception as exc:
            raise ModelError(f"model {self.name} v{self.version} failed: {exc}") from exc
        proba = None
        if self.raw is not None and hasattr(self.raw, "predict_proba") and self.classes is not None:
            try:
                proba = np.asarray(self.raw.predict_proba(frame), dtype=np.float64)
            except Exception:  # probabilities are a bonus for the log; the answer stands
                proba = None
        return Scored(to_row_list(output), proba, self.classes, output)


def to_row_list(output: Any) -> list[Any]:
    """One Python value per row from whatever a pyfunc model returned."""
    import pandas as pd

    if isinstance(output, pd.DataFrame):
        if output.shape[1] == 1:
            return output.iloc[:, 0].tolist()
        return output.to_dict("records")
    if isinstance(output, pd.Series):
        return output.tolist()
    if isinstance(output, np.ndarray):
        return output.tolist()
    if isinstance(output, list):
        return output
    return [output]


__all__ = ["Scored", "ServableModel", "to_row_list"]
