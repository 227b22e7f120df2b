"""Models with a tensor signature: how arbiter's named rows become the tensor they take.

A PyTorch (or any other) model logged with one 2-D float ``TensorSpec`` of shape ``(-1, n)``
takes a ``[batch, n]`` matrix. MLflow's ``/invocations`` tensor forms (``inputs``,
``instances``) and a single v2 tensor fit that as they are, but arbiter's JSON rows and v2's
per-column tensors name their values, and a signature of one tensor has no names. The model's
MLmodel ``metadata`` supplies them (``arbiter.columns``), and optionally says that the output
is class probabilities (``arbiter.classes``)::

    mlflow.pytorch.log_model(
        net, name="model", signature=signature, input_example=example,
        metadata={"arbiter": {"columns": ["amount", "hour", ...], "classes": [0, 1]}},
    )

With the columns known, every protocol validates the rows with the same rules as a
column-signature model (:mod:`arbiter.features`: a missing, null, non-numeric or non-finite
value is a 4xx naming the field), the log holds named rows whatever the protocol, and the
model receives a C-contiguous matrix of the tensor's dtype with columns in that order.

With ``classes``, an output of shape ``(batch, len(classes))`` is read as class probabilities
(softmax) and, for two classes, an output of shape ``(batch,)`` or ``(batch, 1)`` as the
probability of ``classes[1]`` (sigmoid). The prediction is then the most probable class and the
probabilities are logged for the analysis (log loss, AUC, calibration). The protocols that
return the model's own output (``/invocations``, v2) still return it unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from arbiter.errors import ModelError, RegistryError
from arbiter.features import FeatureSpec, InputSchema

#: The MLmodel ``metadata`` key arbiter reads (a mapping with ``columns`` and ``classes``).
METADATA_KEY = "arbiter"

_FEATURE_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


@dataclass(frozen=True, slots=True)
class TensorLayout:
    """The columns of a model's one ``[batch, n]`` float input tensor, and its output's classes.

    Attributes
    ----------
    columns : tuple of str
        Names of the tensor's columns, in order.
    dtype : numpy.dtype
        The tensor's dtype (float32 or float64).
    classes : tuple or None
        The classes whose probabilities the model outputs, or None (the output is returned as
        the prediction, one value or list per row).
    """

    columns: tuple[str, ...]
    dtype: np.dtype
    classes: tuple[Any, ...] | None = None

    def schema(self) -> InputSchema:
        """The equivalent column signature: every column a required number of the dtype."""
        kind = _FEATURE_TYPES[self.dtype]
        return InputSchema(tuple(FeatureSpec(name, kind) for name in self.columns))

    def matrix(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The ``[len(rows), n]`` tensor of validated rows (columns in the layout's order)."""
        return np.array([[row[c] for c in self.columns] for row in rows], dtype=self.dtype)

    def matrix_of(self, data: Any) -> np.ndarray:
        """The tensor for a validated DataFrame (columns by name) or an array (as it is)."""
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return np.ascontiguousarray(data[list(self.columns)].to_numpy(dtype=self.dtype))
        return np.ascontiguousarray(np.asarray(data, dtype=self.dtype))

    def frame_of(self, array: np.ndarray) -> Any:
        """A ``[batch, n]`` array as a DataFrame with the layout's column names."""
        import pandas as pd

        return pd.DataFrame(array, columns=list(self.columns))

    def outputs(self, output: Any) -> tuple[list[Any], np.ndarray | None]:
        """``(predictions, probabilities)`` from what the model returned for ``n`` rows.

        Without classes: one prediction per row (a ``(batch, 1)`` output gives scalars).
        With classes: the most probable class per row and a ``(batch, classes)`` float64
        probability matrix. Raises ModelError when the output's shape does not fit the classes.
        """
        array = np.asarray(output)
        if self.classes is None:
            if array.ndim == 2 and array.shape[1] == 1:
                array = array[:, 0]
            return array.tolist(), None
        k = len(self.classes)
        if k == 2 and (array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1)):
            positive = array.reshape(-1).astype(np.float64)
            proba = np.column_stack([1.0 - positive, positive])
        elif array.ndim == 2 and array.shape[1] == k:
            proba = array.astype(np.float64)
        else:
            raise ModelError(
                f"the model returned shape {list(array.shape)}, but its metadata "
                f"({METADATA_KEY}.classes) names {k} classes: expected [batch, {k}]"
                + (" or [batch]" if k == 2 else "")
            )
        labels = np.asarray(self.classes, dtype=object)
        return labels[proba.argmax(axis=1)].tolist(), proba


def tensor_layout(model_meta: Any, *, model: str = "the model") -> TensorLayout | None:
    """The layout of a model whose signature is one ``(-1, n)`` float tensor, or None.

    ``model_meta`` is the ``mlflow.models.Model`` of the loaded model (``pyfunc.metadata``).
    None when the signature is not such a tensor or the metadata names no columns (the model
    is then served through MLflow's own tensor enforcement only). Raises RegistryError when
    the metadata contradicts the signature, so the version is refused at load time rather
    than answering with columns in the wrong order.
    """
    try:
        schema = model_meta.get_input_schema()
    except Exception:  # not an MLflow model (tests, wrappers)
        return None
    if schema is None or not schema.is_tensor_spec() or len(schema.inputs) != 1:
        return None
    spec = schema.inputs[0]
    dtype = np.dtype(spec.type)
    shape = tuple(spec.shape)
    if dtype not in _FEATURE_TYPES or len(shape) != 2 or shape[0] != -1 or shape[1] < 1:
        return None
    settings = (getattr(model_meta, "metadata", None) or {}).get(METADATA_KEY) or {}
    columns = settings.get("columns") if isinstance(settings, Mapping) else None
    if columns is None:
        return None
    where = f"{model}'s MLmodel metadata {METADATA_KEY}"
    if (
        not isinstance(columns, list)
        or not all(isinstance(c, str) and c for c in columns)
        or len(set(columns)) != len(columns)
    ):
        raise RegistryError(f"{where}.columns must be a list of distinct column names")
    if len(columns) != shape[1]:
        raise RegistryError(
            f"{where}.columns names {len(columns)} columns, but the signature's tensor has "
            f"{shape[1]}"
        )
    classes = settings.get("classes")
    if classes is not None and (not isinstance(classes, list) or len(classes) < 2):
        raise RegistryError(f"{where}.classes must be a list of at least two classes")
    return TensorLayout(tuple(columns), dtype, tuple(classes) if classes is not None else None)


__all__ = ["METADATA_KEY", "TensorLayout", "tensor_layout"]
