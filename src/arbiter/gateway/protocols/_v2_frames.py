"""Bridges between v2 tensors and the pandas objects MLflow pyfunc models take and return.

Public names are re-exported by :mod:`arbiter.gateway.protocols.inference_v2`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from arbiter.errors import InvalidInputError
from arbiter.gateway.protocols._v2_tensors import object_array


def outputs_from_predictions(
    predictions: Any, *, default_name: str = "predictions"
) -> list[tuple[str, np.ndarray]]:
    """Name the tensors in what ``PyFuncModel.predict`` returned.

    An ndarray, list or scalar is one tensor called ``default_name``; a Series is one tensor
    named after the Series (else ``default_name``); a DataFrame is one 1-D tensor per column;
    a dict is one tensor per key.

    Returns
    -------
    list of (str, numpy.ndarray)
    """
    if isinstance(predictions, pd.DataFrame):
        return [(str(col), predictions[col].to_numpy()) for col in predictions.columns]
    if isinstance(predictions, pd.Series):
        name = default_name if predictions.name is None else str(predictions.name)
        return [(name, predictions.to_numpy())]
    if isinstance(predictions, Mapping):
        return [(str(k), np.asarray(v)) for k, v in predictions.items()]
    return [(default_name, np.asarray(predictions))]


def inputs_to_dataframe(
    inputs: Mapping[str, np.ndarray], columns: Sequence[str], *, decode_bytes: bool = True
) -> pd.DataFrame:
    """Build the DataFrame an MLflow column-based signature expects from v2 input tensors.

    Two layouts are accepted: one tensor per column, each ``[batch]`` or ``[batch, 1]`` and
    named after its column; or a single ``[batch, len(columns)]`` tensor whose columns follow
    the signature's order.

    Parameters
    ----------
    inputs : Mapping of str to numpy.ndarray
        :attr:`InferRequest.inputs`.
    columns : sequence of str
        The signature's column names, in order (``schema.input_names()``).
    decode_bytes : bool, default True
        Decode BYTES elements as UTF-8 ``str`` (MLflow ``string`` columns). Set False for
        ``binary`` columns.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InvalidInputError
        Missing or unexpected tensors, wrong shapes, unequal batch sizes or non-UTF-8 BYTES.
    """
    names = list(inputs)
    if len(names) == 1 and names[0] not in columns:
        array = inputs[names[0]]
        if array.ndim != 2 or array.shape[1] != len(columns):
            raise InvalidInputError(
                f"a single input must have shape [batch, {len(columns)}] with columns "
                f"{list(columns)}, or send one tensor per column; got shape {list(array.shape)}",
                field="inputs[0].shape",
            )
        if array.dtype == object and decode_bytes:
            array = np.stack(
                [_decode_column(array[:, j], 0, names[0]) for j in range(array.shape[1])], 1
            )
        return pd.DataFrame(array, columns=list(columns))

    if unexpected := [n for n in names if n not in columns]:
        raise InvalidInputError(
            f"unexpected inputs {unexpected}; the model's columns are {list(columns)}",
            field=f"inputs[{names.index(unexpected[0])}].name",
        )
    if missing := [c for c in columns if c not in inputs]:
        raise InvalidInputError(f"missing inputs for columns {missing}", field="inputs")
    data: dict[str, np.ndarray] = {}
    batch = None
    for column in columns:
        i = names.index(column)
        array = inputs[column]
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise InvalidInputError(
                f"input {column!r} must have shape [batch] or [batch, 1], got "
                f"{list(inputs[column].shape)}",
                field=f"inputs[{i}].shape",
            )
        if batch is not None and len(array) != batch:
            raise InvalidInputError(
                f"input {column!r} has {len(array)} rows, others have {batch}",
                field=f"inputs[{i}].shape",
            )
        batch = len(array)
        data[column] = _decode_column(array, i, column) if decode_bytes else array
    return pd.DataFrame(data, columns=list(columns))


def _decode_column(array: np.ndarray, i: int, name: str) -> np.ndarray:
    if array.dtype != object:
        return array
    try:
        return object_array([x.decode("utf-8") if isinstance(x, bytes) else x for x in array])
    except UnicodeDecodeError:
        raise InvalidInputError(
            f"input {name!r} holds bytes that are not UTF-8 text", field=f"inputs[{i}]"
        ) from None
