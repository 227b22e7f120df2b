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
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from arbiter.errors import InvalidInputError, ModelError
from arbiter.gateway.protocols._v2_frames import inputs_to_dataframe, outputs_from_predictions
from arbiter.gateway.protocols._v2_tensors import (
    DATATYPES,
    NUMPY_DTYPES,
    TensorSpec,
    datatype_to_numpy,
    numpy_to_datatype,
    tensor_from_binary,
    tensor_from_json,
    tensor_specs_from_schema,
    tensor_to_binary,
    tensor_to_json,
)

HEADER_LENGTH = "Inference-Header-Content-Length"
CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_BINARY = "application/octet-stream"

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
            raw = tensor_to_binary(array, datatype)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            data = tensor_to_json(array, datatype, name, where)
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


def error_body(message: str, field: str | None = None) -> bytes:
    """The v2 error body, ``{"error": message}``, which ``tritonclient`` raises as its message.

    ``field`` (the offending part of the request, e.g. ``inputs[2]``) is added as a second key
    when known: clients of the protocol read only ``error``.
    """
    return orjson.dumps({"error": message} if field is None else {"error": message, "field": field})


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
    if datatype not in NUMPY_DTYPES:
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
        array = tensor_from_binary(binary, offset, size, datatype, count, name, at)
        offset += size
    elif "data" in spec:
        array = tensor_from_json(spec["data"], datatype, count, name, f"{where}.data")
    else:
        raise InvalidInputError(
            f"input {name!r} has neither 'data' nor parameters.binary_data_size",
            field=f"{where}.data",
        )
    return name, array.reshape(shape), offset


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
    except RecursionError:  # Python's parser recurses per level; orjson stopped at 1024
        raise InvalidInputError(
            "the request nests too deeply to be an inference request", field="body"
        ) from None
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
