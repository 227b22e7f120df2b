"""A loaded model version, ready to score rows.

Wraps an MLflow pyfunc model. For scikit-learn models whose inputs are all numeric it calls
the estimator directly on a float matrix: this skips pandas and MLflow's per-call schema
enforcement (about 1 ms per request), which is safe because :mod:`arbiter.features` has already
validated the rows against the same signature. It also gives access to ``predict_proba``.

Other flavors get the same treatment through :func:`native_model`: a LightGBM ``Booster``
trained for classification (``mlflow.lightgbm``) is seen as a classifier
(:class:`BoosterClassifier`), so its rows are logged with a class label and probabilities like
a scikit-learn classifier's, while the MLflow-compatible protocols still answer the booster's
own output. Text models take their string columns as a DataFrame (or, for a pipeline fitted on
one 1-D column of strings, that column), never the float matrix. docs/flavors.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arbiter.errors import InvalidInputError, ModelError
from arbiter.features import InputSchema, rows_to_frame, rows_to_matrix
from arbiter.tensors import TensorLayout


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
    #: column -> (min, max) seen in training, when ``inputs.out_of_range: reject`` (set by the
    #: model pool from the version's reference profile); None: no range check.
    ranges: dict[str, tuple[float, float]] | None = None
    #: For a model whose signature is one ``[batch, n]`` float tensor with named columns
    #: (:mod:`arbiter.tensors`): rows and frames are scored as that tensor. ``schema`` is then
    #: the layout's column schema.
    tensor: TensorLayout | None = None
    fast_path: bool = field(init=False)
    #: The input signature is a tensor without column names and the MLmodel metadata names
    #: none (``arbiter.columns``): only a tensor fits it (``/invocations`` inputs/instances),
    #: not named rows.
    unnamed_tensor: bool = field(init=False)
    classes: list[Any] | None = field(init=False)

    def __post_init__(self) -> None:
        # Derived once at load: these are read on every request.
        self._booster = isinstance(self.raw, BoosterClassifier)
        # A pipeline fitted on a 1-D sequence of strings (Pipeline(TfidfVectorizer, ...)) under
        # a one-string-column signature takes that column: handed a DataFrame, a vectorizer
        # iterates over its column names and answers one row whatever the batch size.
        self._column_input = (
            self.raw is not None
            and not self._booster
            and self.schema is not None
            and len(self.schema.features) == 1
            and self.schema.features[0].type == "string"
            and not hasattr(self.raw, "feature_names_in_")
        )
        self.fast_path = (
            self.raw is not None
            and self.schema is not None
            and self.schema.all_numeric
            and not hasattr(self.raw, "feature_names_in_")
        )
        classes = getattr(self.raw, "classes_", None) if self.raw is not None else None
        if self.tensor is not None and self.tensor.classes is not None:
            classes = list(self.tensor.classes)
        self.classes = None if classes is None else list(np.asarray(classes).tolist())
        self._classes_array = None if classes is None else np.asarray(classes)
        self._has_proba = self.raw is not None and hasattr(self.raw, "predict_proba")
        self._proba_only = (
            self._has_proba and self.classes is not None and _argmax_consistent(self.raw)
        )
        # Rows were coerced against the signature, which refuses NaN/inf (arbiter.features):
        # scikit-learn's own finiteness scan is then redundant work on every call. A model
        # that opts in to them (inputs.allow_non_finite) is called with finite=False.
        self._assume_finite = (
            self.fast_path
            and self.schema is not None
            and all(f.required for f in self.schema.features)
        )
        self.unnamed_tensor = (
            self.tensor is None and self.schema is None and _unnamed_tensor(self.pyfunc)
        )

    def enforce_input(self, data: Any, *, field: str = "body") -> Any:
        """``data`` as MLflow's signature enforcement would pass it to the model, or
        InvalidInputError when that enforcement refuses it.

        ``PyFuncModel.predict`` runs the same enforcement first thing; running it here, before
        the model is called, makes a refusal the client's error (a 4xx) instead of an error
        of the model (which a canary guardrail would count). Used for the inputs that
        :func:`arbiter.features.coerce_frame` cannot check itself: arrays and tensor
        signatures. Models without a signature accept anything. MLflow's function is private
        but has kept this signature since 2.0; a version that drops it skips this check (the
        model then refuses the input itself, as before).
        """
        try:
            schema = self.pyfunc.metadata.get_input_schema()
        except Exception:  # not an MLflow model (tests, wrappers): nothing to enforce
            return data
        if schema is None:
            return data
        from mlflow.exceptions import MlflowException

        try:
            from mlflow.models.utils import _enforce_schema
        except ImportError:  # pragma: no cover - a future MLflow that moved it
            return data

        try:
            enforced = _enforce_schema(data, schema)
        except (MlflowException, TypeError, ValueError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            raise InvalidInputError(
                f"the input does not match model {self.name} v{self.version}'s signature: "
                f"{message}",
                field=field,
            ) from exc
        if self.tensor is not None and isinstance(enforced, np.ndarray):
            # The tensor as the named columns the log and the column checks use.
            return self.tensor.frame_of(enforced)
        return enforced

    def _predict_tensor(self, x: np.ndarray, params: dict[str, Any] | None = None) -> Scored:
        assert self.tensor is not None
        try:
            output = self.pyfunc.predict(x, params=params) if params else self.pyfunc.predict(x)
        except Exception as exc:  # any model failure becomes one error type for the caller
            raise ModelError(f"model {self.name} v{self.version} failed: {exc}") from exc
        try:
            predictions, proba = self.tensor.outputs(output)
        except ModelError as exc:
            raise ModelError(f"model {self.name} v{self.version}: {exc}") from exc
        return Scored(predictions, proba, self.classes, output)

    def _native_input(self, rows: Sequence[Mapping[str, Any]]) -> Any:
        names = self.schema.names if self.schema else None
        if self.fast_path and names is not None:
            return rows_to_matrix(rows, names)
        if self._column_input and names is not None:
            return rows_to_frame(rows, names)[names[0]]
        return rows_to_frame(rows, names)

    def _matrix_of(self, frame: Any) -> np.ndarray | None:
        import pandas as pd

        if isinstance(frame, dict) and self.fast_path:  # the `inputs` format: columns by name
            try:
                frame = pd.DataFrame(frame)
            except ValueError:
                return None
        if not (self.fast_path and isinstance(frame, pd.DataFrame) and self.schema is not None):
            return None
        names = list(self.schema.names)
        if set(frame.columns) != set(names) or not all(
            pd.api.types.is_numeric_dtype(frame[c]) for c in names
        ):
            return None
        return frame[names].to_numpy(dtype=np.float64)

    def _predict_native(self, x: Any, finite: bool = True) -> Scored:
        import sklearn

        n_rows = x.shape[0] if hasattr(x, "shape") else len(x)
        try:
            with sklearn.config_context(assume_finite=self._assume_finite and finite):
                if self._proba_only:
                    # One pass instead of two: for these estimators predict() is exactly the
                    # class of highest probability (see _argmax_consistent).
                    proba = np.asarray(self.raw.predict_proba(x), dtype=np.float64)
                    predictions = self._classes_array[proba.argmax(axis=1)]
                else:
                    predictions = np.asarray(self.raw.predict(x))
                    proba = None
                    if self._has_proba and self.classes is not None:
                        proba = np.asarray(self.raw.predict_proba(x), dtype=np.float64)
        except Exception as exc:  # any model failure becomes one error type for the caller
            raise ModelError(f"model {self.name} v{self.version} failed: {exc}") from exc
        if len(predictions) != n_rows:  # never log one row's answer against another row
            raise ModelError(
                f"model {self.name} v{self.version} returned {len(predictions)} predictions "
                f"for {n_rows} rows"
            )
        if self._booster and proba is not None:
            # The booster's own output (P(class 1), or rows x classes): what `mlflow models
            # serve` answers for it, and what /invocations and v2 `predictions` return.
            return Scored(predictions.tolist(), proba, self.classes, self.raw.output_of(proba))
        return Scored(predictions.tolist(), proba, self.classes, predictions)

    def predict_rows(self, rows: Sequence[Mapping[str, Any]], *, finite: bool = True) -> Scored:
        """Score validated rows. Raises :class:`ModelError` when the model raises.

        ``finite=False`` (the rows may hold NaN/inf: ``inputs.allow_non_finite``) keeps
        scikit-learn's own finiteness check, so an estimator that cannot take them raises
        instead of answering garbage.
        """
        if self.raw is not None:
            return self._predict_native(self._native_input(rows), finite)
        if self.tensor is not None:
            return self._predict_tensor(self.tensor.matrix(rows))
        try:
            names = self.schema.names if self.schema else None
            output = self.pyfunc.predict(rows_to_frame(rows, names))
        except Exception as exc:  # any model failure becomes one error type for the caller
            raise ModelError(f"model {self.name} v{self.version} failed: {exc}") from exc
        return scored_output(output)

    def predict_frame(
        self, frame: Any, params: dict[str, Any] | None = None, *, finite: bool = True
    ) -> Scored:
        """Score a DataFrame/array through pyfunc, exactly as ``mlflow models serve`` would.

        For fast-path models (numeric scikit-learn estimators fitted on arrays) a DataFrame with
        exactly the signature's numeric columns goes to the estimator as a float matrix, which
        is what pyfunc would end up doing, minus the per-call overhead and its warning about
        feature names.
        """
        if self.tensor is not None:
            return self._predict_tensor(self.tensor.matrix_of(frame), params)
        matrix = self._matrix_of(frame) if not params else None
        if matrix is not None:
            return self._predict_native(matrix, finite)
        if not params and self._column_input and self._is_frame(frame):
            # pyfunc would hand the DataFrame to the vectorizer (see __post_init__).
            return self._predict_native(frame[self.schema.names[0]], finite)
        try:
            output = (
                self.pyfunc.predict(frame, params=params) if params else self.pyfunc.predict(frame)
            )
        except Exception as exc:
            raise ModelError(f"model {self.name} v{self.version} failed: {exc}") from exc
        if self._booster:  # the output is the probabilities: label each row from them
            proba = self.raw.proba_of(output)
            if len(proba) != len(frame):
                raise ModelError(
                    f"model {self.name} v{self.version} returned {len(proba)} predictions "
                    f"for {len(frame)} rows"
                )
            labels = self._classes_array[proba.argmax(axis=1)]
            return Scored(labels.tolist(), proba, self.classes, output)
        if self.raw is None:  # a pyfunc model: its output may have several columns
            return scored_output(output)
        proba = None
        if self._has_proba and self.classes is not None:
            try:
                proba = np.asarray(self.raw.predict_proba(frame), dtype=np.float64)
            except Exception:  # probabilities are a bonus for the log; the answer stands
                proba = None
        return Scored(to_row_list(output), proba, self.classes, output)

    @staticmethod
    def _is_frame(frame: Any) -> bool:
        import pandas as pd

        return isinstance(frame, pd.DataFrame)


# Classifiers whose predict() is argmax(predict_proba()) by construction (checked against
# scikit-learn 1.9 and LightGBM sources; tested in tests/test_servable.py). Not on the list:
# SVC(probability=True) (Platt scaling can disagree with its decision function) and
# threshold-tuned classifiers.
ARGMAX_CONSISTENT = frozenset(
    {
        "LogisticRegression",
        "HistGradientBoostingClassifier",
        "GradientBoostingClassifier",
        "RandomForestClassifier",
        "ExtraTreesClassifier",
        "DecisionTreeClassifier",
        "ExtraTreeClassifier",
        "GaussianNB",
        "KNeighborsClassifier",
        "LGBMClassifier",
        "BoosterClassifier",
    }
)

#: LightGBM objectives (and their aliases) whose ``Booster.predict`` returns probabilities.
_BINARY_OBJECTIVES = frozenset({"binary"})
_MULTICLASS_OBJECTIVES = frozenset(
    {"multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr"}
)


class BoosterClassifier:
    """A LightGBM ``Booster`` trained for classification, with a classifier's methods.

    ``lightgbm.train`` returns a Booster, not an estimator: its ``predict`` returns P(class 1)
    per row for the ``binary`` objective and a rows x classes matrix for ``multiclass``
    (``mlflow.lightgbm``'s pyfunc returns exactly that). LightGBM requires the labels to be
    ``0 .. num_class - 1``, so those are the classes. ``predict`` is the most probable class
    (ties: the lower one, as ``LGBMClassifier``: P(1) > 0.5).

    Parameters
    ----------
    booster
        A fitted ``lightgbm.Booster``.
    n_classes
        2 for a binary objective, ``num_class`` for a multiclass one.
    """

    def __init__(self, booster: Any, n_classes: int) -> None:
        self.booster = booster
        self.classes_ = np.arange(n_classes)

    @classmethod
    def wrap(cls, booster: Any) -> BoosterClassifier | None:
        """The booster as a classifier, or None when its objective is not a classification
        one (regression, ranking, a custom objective: served through pyfunc as they are)."""
        params = getattr(booster, "params", None) or {}
        objective = str(params.get("objective", "")).split(" ")[0].lower()
        if objective in _BINARY_OBJECTIVES:
            return cls(booster, 2)
        if objective in _MULTICLASS_OBJECTIVES:
            return cls(booster, int(booster.num_model_per_iteration()))
        return None

    def proba_of(self, output: Any) -> np.ndarray:
        """Probabilities (rows x classes) from the booster's own output."""
        out = np.asarray(output, dtype=np.float64)
        if out.ndim == 1:
            return np.column_stack([1.0 - out, out])
        return out

    def output_of(self, proba: np.ndarray) -> np.ndarray:
        """The booster's own output from :meth:`proba_of`'s result (the inverse)."""
        return proba[:, 1] if len(self.classes_) == 2 else proba

    def predict_proba(self, x: Any) -> np.ndarray:
        return self.proba_of(self.booster.predict(x))

    def predict(self, x: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(x).argmax(axis=1)]


def _unnamed_tensor(pyfunc: Any) -> bool:
    try:
        schema = pyfunc.metadata.get_input_schema()
    except Exception:  # not an MLflow model
        return False
    return schema is not None and schema.is_tensor_spec() and not schema.has_input_names()


def native_model(pyfunc: Any) -> Any:
    """The model ``pyfunc`` wraps, when the gateway can call it directly; else None.

    A scikit-learn estimator (``sklearn`` flavor, or an ``LGBMClassifier`` logged with
    ``mlflow.lightgbm``); a LightGBM ``Booster`` trained for classification, as a
    :class:`BoosterClassifier`. Anything else (a regression booster, a custom PythonModel)
    is served through ``pyfunc.predict``.
    """
    flavors = getattr(pyfunc.metadata, "flavors", None) or {}
    if "sklearn" not in flavors and "lightgbm" not in flavors:
        return None
    try:
        raw = pyfunc.get_raw_model()
    except Exception:  # older flavors without get_raw_model: pyfunc path only
        return None
    if type(raw).__name__ == "Booster" and type(raw).__module__.startswith("lightgbm"):
        return BoosterClassifier.wrap(raw)
    return raw if hasattr(raw, "predict") else None


def _argmax_consistent(estimator: Any) -> bool:
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return type(final).__name__ in ARGMAX_CONSISTENT


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


#: Multi-output models (a pyfunc returning a DataFrame of several columns): the column that is
#: the prediction the log and the analysis use, the first of these present (else the first
#: column). Every column is returned to the caller (see :func:`output_columns`).
PREDICTION_OUTPUTS = ("prediction", "label")
#: A column with P(class 1) of a binary classifier (classes 0 and 1).
PROBABILITY_OUTPUT = "probability"
#: Columns ``probability_<class>``: one probability per class (e.g. ``probability_0``).
PROBABILITY_PREFIX = "probability_"


def scored_output(output: Any) -> Scored:
    """:class:`Scored` from a pyfunc model's output.

    A DataFrame of several columns is a multi-output model: its prediction is the column
    named in :data:`PREDICTION_OUTPUTS` (else the first column), and its class probabilities,
    when it has them (:data:`PROBABILITY_OUTPUT`, :data:`PROBABILITY_PREFIX`), are logged as a
    classifier's are, so label metrics (log loss, AUC) work on it. The frame stays in
    ``Scored.raw`` for the protocols, which return every column.
    """
    import pandas as pd

    if not (isinstance(output, pd.DataFrame) and output.shape[1] > 1):
        return Scored(to_row_list(output), None, None, output)
    by_name = {str(c): c for c in output.columns}
    name = next((n for n in PREDICTION_OUTPUTS if n in by_name), next(iter(by_name)))
    predictions = output[by_name[name]].tolist()
    per_class = [n for n in by_name if n.startswith(PROBABILITY_PREFIX)]
    proba: np.ndarray | None = None
    classes: list[Any] | None = None
    try:
        if per_class:
            proba = output[[by_name[n] for n in per_class]].to_numpy(dtype=np.float64)
            classes = [_class_of(n[len(PROBABILITY_PREFIX) :]) for n in per_class]
        elif PROBABILITY_OUTPUT in by_name:
            p = output[by_name[PROBABILITY_OUTPUT]].to_numpy(dtype=np.float64)
            proba, classes = np.column_stack([1.0 - p, p]), [0, 1]
    except (TypeError, ValueError):  # not numbers: an output like any other, not logged
        proba, classes = None, None
    return Scored(predictions, proba, classes, output)


def _class_of(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


def output_columns(scored: Scored) -> dict[str, np.ndarray] | None:
    """Every named output of a multi-output model (``{column: values}``), else None."""
    import pandas as pd

    raw = scored.raw
    if not (isinstance(raw, pd.DataFrame) and raw.shape[1] > 1):
        return None
    return {str(c): raw[c].to_numpy() for c in raw.columns}


__all__ = [
    "PREDICTION_OUTPUTS",
    "PROBABILITY_OUTPUT",
    "PROBABILITY_PREFIX",
    "BoosterClassifier",
    "Scored",
    "ServableModel",
    "native_model",
    "output_columns",
    "scored_output",
    "to_row_list",
]
