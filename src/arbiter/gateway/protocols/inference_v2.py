"""The Open Inference Protocol (KServe v2) over HTTP, with Triton's binary tensor extension.

Pure parse and encode functions; no routing and no model calls. The wire format is the one
``tritonclient.http`` speaks with its defaults, so an unmodified Triton client can call
arbiter.

Request (``POST /v2/models/{name}[/versions/{v}]/infer``)::

    {"id": "...", "parameters": {...},
     "inputs": [{"name", "shape", "datatype", "data": [...]}                       # JSON
                {"name", "shape", "datatype", "parameters": {"binary_data_size": N}}],  # binary
     "outputs": [{"name", "parameters": {"binary_data": true}}]}

With binary inputs the ``Inference-Header-Content-Length: L`` header says that the first ``L``
bytes of the body are the JSON above and the rest is raw tensor data, concatenated in input
order for the inputs that carry ``binary_data_size``: little-endian, row-major, BOOL as one
byte, and each BYTES element as a 4-byte little-endian length followed by its bytes.

Response: JSON, unless an output is requested with ``binary_data: true`` or the request sets
``parameters.binary_data_output: true`` (what ``tritonclient`` sends when no outputs are
named), in which case those outputs carry ``parameters.binary_data_size`` and their bytes
follow the JSON, announced by the same header. Errors are ``{"error": "..."}``.

Decoded tensors share one writable copy of the request's binary section, so decoding costs a
single ``memcpy`` and models may modify their inputs in place.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from arbiter.errors import InvalidInputError, ModelError

HEADER_LENGTH = "Inference-Header-Content-Length"
CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_BINARY = "application/octet-stream"

# Explicit little-endian dtypes: the extension fixes the byte order, whatever the host's.
_NUMPY_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(np.object_),
}
DATATYPES: tuple[str, ...] = tuple(_NUMPY_DTYPES)
_DATATYPE_BY_KIND_SIZE = {
    (dtype.kind, dtype.itemsize): name for name, dtype in _NUMPY_DTYPES.items() if name != "BYTES"
}
_LENGTH = struct.Struct("<I")
_DEFAULT_MAX_DECOMPRESSED = 256 * 2**20


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    """An output named in the request's ``outputs`` list.

    Attributes
    ----------
    name : str
        The output tensor's name.
    binary : bool
        Return it as binary data: its ``binary_data`` parameter, else the request's
        ``binary_data_output``.
    """

    name: str
    binary: bool


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A decoded inference request.

    Attributes
    ----------
    id : str or None
        The request ``id``, echoed in the response.
    inputs : dict of str to numpy.ndarray
        Input tensors by name, shaped as declared. BYTES tensors are object arrays of ``bytes``.
    input_order : tuple of str
        Input names in request order.
    requested_outputs : tuple of RequestedOutput
        The ``outputs`` list; empty means "every output the model produces".
    binary_output_default : bool
        The request's ``binary_data_output`` parameter (default False): how outputs not
        requested by name are returned.
    parameters : dict
        The request-level ``parameters`` object, as sent.
    """

    id: str | None
    inputs: dict[str, np.ndarray]
    input_order: tuple[str, ...]
    requested_outputs: tuple[RequestedOutput, ...] = ()
    binary_output_default: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A tensor in model metadata: name, v2 datatype and shape (``-1`` for a variable size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


def datatype_to_numpy(datatype: str) -> np.dtype:
    """The numpy dtype for a v2 datatype (``"FP32"`` → ``float32``, ``"BYTES"`` → ``object``).

    Raises
    ------
    InvalidInputError
        The datatype is not one of :data:`DATATYPES`.
    """
    try:
        return _NUMPY_DTYPES[datatype]
    except (KeyError, TypeError):
        raise InvalidInputError(
            f"unsupported datatype {datatype!r}; expected one of {', '.join(DATATYPES)}",
            field="datatype",
        ) from None


def numpy_to_datatype(dtype: np.dtype | type) -> str:
    """The v2 datatype for a numpy dtype; object, ``str_`` and ``bytes_`` arrays are BYTES.

    Raises
    ------
    InvalidInputError
        The dtype has no v2 counterpart (complex, datetime, structured...).
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "OUS":
        return "BYTES"
    try:
        return _DATATYPE_BY_KIND_SIZE[dtype.kind, dtype.itemsize]
    except KeyError:
        raise InvalidInputError(
            f"numpy dtype {dtype} has no Open Inference Protocol datatype", field="datatype"
        ) from None


def parse_infer_request(
    body: bytes,
    headers: Mapping[str, str],
    *,
    max_decompressed_bytes: int = _DEFAULT_MAX_DECOMPRESSED,
) -> InferRequest:
    """Decode a v2 inference request, JSON or with Triton binary tensors.

    Parameters
    ----------
    body : bytes
        The raw request body.
    headers : Mapping of str to str
        Request headers; looked up case-insensitively. ``Inference-Header-Content-Length``
        marks a binary body; ``Content-Encoding`` of ``gzip`` or ``deflate`` (what
        ``tritonclient``'s ``request_compression_algorithm`` sends) is undone first.
    max_decompressed_bytes : int, default 256 MiB
        Refuse compressed bodies that inflate beyond this size.

    Returns
    -------
    InferRequest

    Raises
    ------
    InvalidInputError
        Any malformed request. ``field`` is a JSON path such as ``"inputs[1].shape"`` or
        ``"outputs[0].parameters.binary_data"``, or the header name.
    """
    body = _decompress(body, _header(headers, "content-encoding"), max_decompressed_bytes)
    header_length = _parse_header_length(_header(headers, "inference-header-content-length"), body)
    view = memoryview(body)
    doc = _loads(view if header_length is None else view[:header_length])
    if not isinstance(doc, dict):
        raise InvalidInputError("the request must be a JSON object", field="body")

    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInputError("'id' must be a string", field="id")
    parameters = _object(doc.get("parameters"), "parameters")
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise InvalidInputError(
            "'binary_data_output' must be true or false", field="parameters.binary_data_output"
        )

    specs = doc.get("inputs")
    if not isinstance(specs, list) or not specs:
        raise InvalidInputError("'inputs' must be a non-empty list of tensors", field="inputs")
    # One writable copy of the binary section, shared by every binary input (see module doc).
    binary = bytearray(view[header_length:]) if header_length is not None else bytearray()
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for i, spec in enumerate(specs):
        name, array, offset = _parse_input(spec, i, binary, offset, header_length is not None)
        if name in inputs:
            raise InvalidInputError(f"input {name!r} appears twice", field=f"inputs[{i}].name")
        inputs[name] = array
    if offset != len(binary):
        raise InvalidInputError(
            f"the body has {len(binary) - offset} bytes after the last binary input; "
            "binary_data_size values must add up to the binary section's length",
            field="body",
        )

    return InferRequest(
        id=request_id,
        inputs=inputs,
        input_order=tuple(inputs),
        requested_outputs=_parse_outputs(doc.get("outputs"), binary_default),
        binary_output_default=binary_default,
        parameters=parameters,
    )


def encode_infer_response(
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    outputs: Sequence[tuple[str, np.ndarray]] | Mapping[str, np.ndarray],
    *,
    requested_outputs: Sequence[RequestedOutput] = (),
    binary_output_default: bool = False,
    parameters: Mapping[str, Any] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Encode an inference response, binary where the request asked for it.

    Parameters
    ----------
    model_name, model_version : str
        Echoed as ``model_name`` and ``model_version`` (omitted when None).
    request_id : str or None
        The request's ``id``, echoed when not None.
    outputs : sequence of (name, ndarray) or mapping
        Everything the model produced (see :func:`outputs_from_predictions`).
    requested_outputs : sequence of RequestedOutput, optional
        :attr:`InferRequest.requested_outputs`. When non-empty only these are returned, in
        this order; otherwise all ``outputs`` are.
    binary_output_default : bool, default False
        :attr:`InferRequest.binary_output_default`: binary for outputs not requested by name.
    parameters : mapping, optional
        Response-level ``parameters``.

    Returns
    -------
    body : bytes
    headers : dict of str to str
        ``Content-Type``, plus ``Inference-Header-Content-Length`` when the body carries
        binary tensors.

    Raises
    ------
    InvalidInputError
        A requested output does not exist (``field="outputs[i].name"``), or BYTES that are
        not UTF-8 were requested as JSON.
    ModelError
        An output has a dtype with no v2 datatype.

    Notes
    -----
    Non-finite floats in JSON outputs are written as ``NaN``/``Infinity``/``-Infinity``, like
    Python's ``json`` module; ``tritonclient`` (rapidjson) reads them back exactly, whereas
    ``null`` would turn infinities into NaN.
    """
    available = dict(outputs)
    if requested_outputs:
        selected = []
        for i, wanted in enumerate(requested_outputs):
            if wanted.name not in available:
                raise InvalidInputError(
                    f"unknown output {wanted.name!r}; the model produces {sorted(available)}",
                    field=f"outputs[{i}].name",
                )
            where = f"outputs[{i}].parameters.binary_data"
            selected.append((wanted.name, available[wanted.name], wanted.binary, where))
    else:
        where = "parameters.binary_data_output"
        selected = [(n, a, binary_output_default, where) for n, a in available.items()]

    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    nonfinite = False
    for name, array, binary, where in selected:
        array = np.asarray(array)
        try:
            datatype = numpy_to_datatype(array.dtype)
        except InvalidInputError as exc:
            raise ModelError(f"output {name!r}: {exc.message}") from exc
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            raw = _tensor_to_binary(array, datatype)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            data = _tensor_to_json(array, datatype, name, where)
            nonfinite = nonfinite or (isinstance(data, list) and datatype != "BYTES")
            entry["data"] = data
        entries.append(entry)

    doc: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        doc["model_version"] = model_version
    if request_id is not None:
        doc["id"] = request_id
    if parameters:
        doc["parameters"] = dict(parameters)
    doc["outputs"] = entries
    header = _dumps(doc, nonfinite)
    if not chunks:
        return header, {"Content-Type": CONTENT_TYPE_JSON}
    return b"".join([header, *chunks]), {
        "Content-Type": CONTENT_TYPE_BINARY,
        HEADER_LENGTH: str(len(header)),
    }


def check_requested_outputs(
    requested_outputs: Sequence[RequestedOutput], output_names: Sequence[str]
) -> None:
    """Fail fast, before running the model, when a requested output does not exist.

    Raises
    ------
    InvalidInputError
        With ``field="outputs[i].name"`` for the first unknown name.
    """
    known = set(output_names)
    for i, wanted in enumerate(requested_outputs):
        if wanted.name not in known:
            raise InvalidInputError(
                f"unknown output {wanted.name!r}; the model produces {sorted(known)}",
                field=f"outputs[{i}].name",
            )


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


def tensor_specs_from_schema(schema: Any) -> list[TensorSpec]:
    """Describe an MLflow ``Schema`` as v2 tensors for :func:`model_metadata`.

    Column-based schemas become one ``[-1]`` tensor per column (string, binary and datetime
    columns are BYTES); tensor-based schemas keep their dtype and shape.

    Raises
    ------
    InvalidInputError
        A column type with no v2 datatype (arrays, objects, maps, ``Any``).
    """
    specs = []
    for i, item in enumerate(schema.inputs):
        name = item.name if item.name is not None else f"input-{i}"
        if hasattr(item, "shape"):  # mlflow.types.TensorSpec
            datatype = numpy_to_datatype(item.type)
            shape = tuple(int(d) for d in item.shape)
        else:  # mlflow.types.ColSpec
            to_numpy = getattr(item.type, "to_numpy", None)
            if to_numpy is None:
                raise InvalidInputError(
                    f"column {name!r} of type {item.type} has no v2 datatype", field=name
                )
            dtype = to_numpy()
            datatype = "BYTES" if dtype.kind == "M" else numpy_to_datatype(dtype)
            shape = (-1,)
        specs.append(TensorSpec(name, datatype, shape))
    return specs


def model_metadata(
    name: str,
    versions: Sequence[str],
    platform: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
) -> dict[str, Any]:
    """The ``GET /v2/models/{name}`` body.

    Returns
    -------
    dict
        ``{"name", "versions", "platform", "inputs": [{"name", "datatype", "shape"}],
        "outputs": [...]}``.
    """

    def describe(spec: TensorSpec) -> dict[str, Any]:
        return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}

    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": platform,
        "inputs": [describe(s) for s in inputs],
        "outputs": [describe(s) for s in outputs],
    }


def error_body(message: str) -> bytes:
    """The v2 error body, ``{"error": message}``, which ``tritonclient`` raises as its message."""
    return orjson.dumps({"error": message})


def _parse_input(
    spec: Any, i: int, binary: bytearray, offset: int, has_binary_section: bool
) -> tuple[str, np.ndarray, int]:
    where = f"inputs[{i}]"
    if not isinstance(spec, dict):
        raise InvalidInputError("each input must be a JSON object", field=where)
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInputError("an input needs a non-empty string 'name'", field=f"{where}.name")
    datatype = spec.get("datatype")
    if datatype not in _NUMPY_DTYPES:
        raise InvalidInputError(
            f"input {name!r} has unsupported datatype {datatype!r}; expected one of "
            f"{', '.join(DATATYPES)}",
            field=f"{where}.datatype",
        )
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(
        type(d) is int and d >= 0
        for d in shape  # type() excludes bool
    ):
        raise InvalidInputError(
            f"input {name!r} needs a 'shape' list of non-negative integers, got {shape!r}",
            field=f"{where}.shape",
        )
    count = math.prod(shape)
    params = _object(spec.get("parameters"), f"{where}.parameters")
    if "shared_memory_region" in params:
        raise InvalidInputError(
            "the shared-memory extension is not supported; send the data in the request",
            field=f"{where}.parameters.shared_memory_region",
        )

    if "binary_data_size" in params:
        size = params["binary_data_size"]
        at = f"{where}.parameters.binary_data_size"
        if type(size) is not int or size < 0:
            raise InvalidInputError("binary_data_size must be a non-negative integer", field=at)
        if "data" in spec:
            raise InvalidInputError(
                f"input {name!r} has both 'data' and binary_data_size", field=f"{where}.data"
            )
        if not has_binary_section:
            raise InvalidInputError(
                f"input {name!r} has binary data but the request has no {HEADER_LENGTH} header",
                field=at,
            )
        if offset + size > len(binary):
            raise InvalidInputError(
                f"input {name!r} declares {size} bytes but only {len(binary) - offset} remain "
                "in the body",
                field=at,
            )
        array = _tensor_from_binary(binary, offset, size, datatype, count, name, at)
        offset += size
    elif "data" in spec:
        array = _tensor_from_json(spec["data"], datatype, count, name, f"{where}.data")
    else:
        raise InvalidInputError(
            f"input {name!r} has neither 'data' nor parameters.binary_data_size",
            field=f"{where}.data",
        )
    return name, array.reshape(shape), offset


def _tensor_from_binary(
    binary: bytearray, offset: int, size: int, datatype: str, count: int, name: str, at: str
) -> np.ndarray:
    if datatype == "BYTES":
        return _bytes_from_binary(binary, offset, size, count, name, at)
    dtype = _NUMPY_DTYPES[datatype]
    if size != count * dtype.itemsize:
        raise InvalidInputError(
            f"input {name!r}: {count} {datatype} elements take {count * dtype.itemsize} bytes, "
            f"binary_data_size is {size}",
            field=at,
        )
    if datatype == "BOOL":
        # Any non-zero byte is true; comparing also normalises 2..255 to a proper bool.
        return np.frombuffer(binary, np.uint8, count, offset) != 0
    return np.frombuffer(binary, dtype, count, offset)


def _bytes_from_binary(
    binary: bytearray, offset: int, size: int, count: int, name: str, at: str
) -> np.ndarray:
    view = memoryview(binary)
    end = offset + size
    elements = []
    pos = offset
    for _ in range(count):
        if pos + 4 > end:
            raise InvalidInputError(
                f"input {name!r}: BYTES data ends after {len(elements)} of {count} elements",
                field=at,
            )
        (length,) = _LENGTH.unpack_from(binary, pos)
        pos += 4
        if pos + length > end:
            raise InvalidInputError(
                f"input {name!r}: BYTES element {len(elements)} declares {length} bytes, "
                f"past the end of the tensor",
                field=at,
            )
        elements.append(bytes(view[pos : pos + length]))
        pos += length
    if pos != end:
        raise InvalidInputError(
            f"input {name!r}: {end - pos} bytes left over after {count} BYTES elements",
            field=at,
        )
    return _object_array(elements)


def _tensor_from_json(data: Any, datatype: str, count: int, name: str, at: str) -> np.ndarray:
    if datatype == "BYTES":
        flat = list(_flatten(data))
        if not all(isinstance(x, str) for x in flat):
            raise InvalidInputError(f"input {name!r}: BYTES data must be strings", field=at)
        array = _object_array([x.encode("utf-8") for x in flat])
    else:
        try:
            array = np.array(data)
        except OverflowError:  # integers beyond 64 bits
            array = np.array(data, dtype=object)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"input {name!r}: ragged data: {exc}", field=at) from None
        array = _cast_json_numbers(array, data, datatype, name, at)
    if array.size != count:
        raise InvalidInputError(
            f"input {name!r}: the shape holds {count} elements but 'data' has {array.size}",
            field=at,
        )
    return array.ravel()


def _cast_json_numbers(
    array: np.ndarray, data: Any, datatype: str, name: str, at: str
) -> np.ndarray:
    dtype = _NUMPY_DTYPES[datatype]
    if array.size == 0:
        return array.astype(dtype)
    kind = array.dtype.kind
    if dtype.kind in "iu" and kind in "fO" and all(type(x) is int for x in _flatten(data)):
        # numpy infers float64 (or object) when 64-bit integers straddle the int64/uint64
        # boundary, e.g. [2**63, 0]; convert straight to the target, which checks the range.
        try:
            return np.array(data, dtype=dtype)
        except OverflowError:
            kind = "O"  # reported as out of range below
    allowed = {"b": "b", "u": "iu", "i": "iu", "f": "iuf"}[dtype.kind]
    if kind not in allowed:
        if dtype.kind in "iu" and kind == "O":
            info = np.iinfo(dtype)
            message = f"values outside the {datatype} range [{info.min}, {info.max}]"
        else:
            expected = {"b": "true/false", "f": "numbers"}
            if dtype.kind in "iu":
                # orjson reads integers beyond 64 bits as floats, so say both.
                info = np.iinfo(dtype)
                expected[dtype.kind] = f"integers within [{info.min}, {info.max}]"
            message = f"{datatype} data must be {expected[dtype.kind]}"
        raise InvalidInputError(f"input {name!r}: {message}", field=at)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise InvalidInputError(
                f"input {name!r}: values outside the {datatype} range [{info.min}, {info.max}]",
                field=at,
            )
    # Finite values beyond FP16/FP32 range round to ±inf, as IEEE casting does client-side.
    with np.errstate(over="ignore"):
        return array.astype(dtype)


def _parse_outputs(outputs: Any, binary_default: bool) -> tuple[RequestedOutput, ...]:
    if outputs is None:
        return ()
    if not isinstance(outputs, list):
        raise InvalidInputError("'outputs' must be a list", field="outputs")
    requested = []
    seen = set()
    for i, spec in enumerate(outputs):
        where = f"outputs[{i}]"
        if not isinstance(spec, dict):
            raise InvalidInputError("each output must be a JSON object", field=where)
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInputError(
                "an output needs a non-empty string 'name'", field=f"{where}.name"
            )
        if name in seen:
            raise InvalidInputError(f"output {name!r} is requested twice", field=f"{where}.name")
        seen.add(name)
        params = _object(spec.get("parameters"), f"{where}.parameters")
        for unsupported in ("classification", "shared_memory_region"):
            if unsupported in params:
                raise InvalidInputError(
                    f"the {unsupported.split('_')[0]} extension is not supported",
                    field=f"{where}.parameters.{unsupported}",
                )
        binary = params.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise InvalidInputError(
                "binary_data must be true or false", field=f"{where}.parameters.binary_data"
            )
        requested.append(RequestedOutput(name, binary))
    return tuple(requested)


def _tensor_to_binary(array: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for item in array.ravel().tolist():
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(_LENGTH.pack(len(raw)))
            parts.append(raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=_NUMPY_DTYPES[datatype]).tobytes()


def _tensor_to_json(array: np.ndarray, datatype: str, name: str, where: str) -> Any:
    if datatype == "BYTES":
        out = []
        for item in array.ravel().tolist():
            if isinstance(item, bytes):
                try:
                    item = item.decode("utf-8")
                except UnicodeDecodeError:
                    raise InvalidInputError(
                        f"output {name!r} holds bytes that are not UTF-8 and cannot be sent as "
                        "JSON; request it with binary_data=true",
                        field=where,
                    ) from None
            out.append(item if isinstance(item, str) else str(item))
        return out
    flat = np.ascontiguousarray(array, dtype=_NUMPY_DTYPES[datatype]).ravel()
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        return flat.tolist()  # signals _dumps to keep NaN/Infinity, see encode_infer_response
    return flat


def _dumps(doc: dict[str, Any], nonfinite: bool) -> bytes:
    if not nonfinite:
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    # orjson writes NaN and ±inf as null; Python's json keeps them distinguishable.
    return json.dumps(doc, separators=(",", ":"), default=_tolist).encode("utf-8")


def _tolist(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _loads(data: memoryview | bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # tritonclient writes JSON with rapidjson, which emits NaN/Infinity literals for
        # non-finite floats; orjson refuses those, Python's json accepts them.
        pass
    try:
        return json.loads(bytes(data))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"the request is not valid JSON: {exc}", field="body") from None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that works for plain dicts as well as Starlette's Headers."""
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if key.lower() == name:
                return candidate
    return value


def _parse_header_length(raw: str | None, body: bytes) -> int | None:
    if raw is None:
        return None
    try:
        length = int(raw)
    except ValueError:
        length = -1
    if not 0 < length <= len(body):
        raise InvalidInputError(
            f"{HEADER_LENGTH} must be an integer between 1 and the body length ({len(body)}), "
            f"got {raw!r}",
            field=HEADER_LENGTH,
        )
    return length


def _decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    if encoding is None or encoding.strip().lower() in ("", "identity"):
        return body
    if encoding.strip().lower() not in ("gzip", "deflate"):
        raise InvalidInputError(
            f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none",
            field="Content-Encoding",
        )
    # wbits=47 accepts both gzip and zlib framing (tritonclient's "deflate" is zlib).
    inflater = zlib.decompressobj(wbits=47)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInputError(
            f"the body is not valid {encoding} data: {exc}", field="Content-Encoding"
        ) from None
    if len(out) > limit:
        raise InvalidInputError(
            f"the decompressed body exceeds {limit} bytes", field="Content-Encoding"
        )
    if not inflater.eof:
        raise InvalidInputError(f"the {encoding} body is truncated", field="Content-Encoding")
    return out


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"'{where}' must be a JSON object", field=where)
    return value


def _object_array(items: list[Any]) -> np.ndarray:
    # np.array(items, dtype=object) would try to nest sequences; filling keeps it 1-D.
    array = np.empty(len(items), dtype=np.object_)
    array[:] = items
    return array


def _flatten(data: Any) -> Iterator[Any]:
    if isinstance(data, list):
        for item in data:
            yield from _flatten(item)
    else:
        yield data


def _decode_column(array: np.ndarray, i: int, name: str) -> np.ndarray:
    if array.dtype != object:
        return array
    try:
        return _object_array([x.decode("utf-8") if isinstance(x, bytes) else x for x in array])
    except UnicodeDecodeError:
        raise InvalidInputError(
            f"input {name!r} holds bytes that are not UTF-8 text", field=f"inputs[{i}]"
        ) from None


__all__ = [
    "CONTENT_TYPE_BINARY",
    "CONTENT_TYPE_JSON",
    "DATATYPES",
    "HEADER_LENGTH",
    "InferRequest",
    "RequestedOutput",
    "TensorSpec",
    "check_requested_outputs",
    "datatype_to_numpy",
    "encode_infer_response",
    "error_body",
    "inputs_to_dataframe",
    "model_metadata",
    "numpy_to_datatype",
    "outputs_from_predictions",
    "parse_infer_request",
    "tensor_specs_from_schema",
]
