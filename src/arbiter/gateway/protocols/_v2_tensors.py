"""Tensor codecs for the Open Inference Protocol: v2 datatypes and how tensors travel.

A tensor travels either as JSON (``"data"``: a flat or nested row-major list; BYTES as UTF-8
strings) or, under Triton's binary tensor extension, as raw bytes: little-endian, row-major,
BOOL as one byte per element, and each BYTES element as a 4-byte little-endian length followed
by its bytes. Public names are re-exported by :mod:`arbiter.gateway.protocols.inference_v2`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from arbiter.errors import InvalidInputError

# Explicit little-endian dtypes: the extension fixes the byte order, whatever the host's.
NUMPY_DTYPES: dict[str, np.dtype] = {
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
DATATYPES: tuple[str, ...] = tuple(NUMPY_DTYPES)
_DATATYPE_BY_KIND_SIZE = {
    (dtype.kind, dtype.itemsize): name for name, dtype in NUMPY_DTYPES.items() if name != "BYTES"
}
_LENGTH = struct.Struct("<I")


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
        return NUMPY_DTYPES[datatype]
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


def tensor_from_binary(
    binary: bytearray, offset: int, size: int, datatype: str, count: int, name: str, at: str
) -> np.ndarray:
    """Decode ``count`` elements from ``binary[offset:offset + size]`` (flat; caller reshapes).

    Numeric tensors are views into ``binary``, so they are writable when it is a bytearray.
    ``name`` and ``at`` (the JSON path for errors) only feed error messages.
    """
    if datatype == "BYTES":
        return _bytes_from_binary(binary, offset, size, count, name, at)
    dtype = NUMPY_DTYPES[datatype]
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
    return object_array(elements)


def tensor_from_json(data: Any, datatype: str, count: int, name: str, at: str) -> np.ndarray:
    """Decode a tensor's JSON ``data`` (flat or nested row-major) into a flat array.

    Values must suit the datatype: no floats or booleans for integers, integers in range,
    strings for BYTES (returned as UTF-8 ``bytes``).
    """
    if datatype == "BYTES":
        flat = list(_flatten(data))
        if not all(isinstance(x, str) for x in flat):
            raise InvalidInputError(f"input {name!r}: BYTES data must be strings", field=at)
        array = object_array([x.encode("utf-8") for x in flat])
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
    dtype = NUMPY_DTYPES[datatype]
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


def tensor_to_binary(array: np.ndarray, datatype: str) -> bytes:
    """Encode an array as the binary extension's raw bytes; BYTES elements that are not
    ``bytes`` are sent as their UTF-8 ``str()``, as tritonclient does."""
    if datatype == "BYTES":
        parts = []
        for item in array.ravel().tolist():
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(_LENGTH.pack(len(raw)))
            parts.append(raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=NUMPY_DTYPES[datatype]).tobytes()


def tensor_to_json(array: np.ndarray, datatype: str, name: str, where: str) -> Any:
    """The JSON ``data`` for an output: a flat C-contiguous array for orjson, a list of str
    for BYTES, or a Python list when floats are non-finite (orjson would write null)."""
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
    flat = np.ascontiguousarray(array, dtype=NUMPY_DTYPES[datatype]).ravel()
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        return flat.tolist()  # the caller then encodes with json, which keeps NaN/Infinity
    return flat


def object_array(items: list[Any]) -> np.ndarray:
    """A 1-D object array of ``items``.

    ``np.array(items, dtype=object)`` would try to nest sequences; filling keeps it 1-D.
    """
    array = np.empty(len(items), dtype=np.object_)
    array[:] = items
    return array


def _flatten(data: Any) -> Iterator[Any]:
    if isinstance(data, list):
        for item in data:
            yield from _flatten(item)
    else:
        yield data
