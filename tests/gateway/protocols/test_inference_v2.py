"""Tests for the Open Inference Protocol v2 codec, driven by ``tritonclient.http`` itself.

Requests are built with tritonclient's ``InferInput``/``InferRequestedOutput`` and
``InferenceServerClient.generate_request_body`` (what ``client.infer`` sends), and responses
are decoded with ``InferenceServerClient.parse_response_body`` (what ``client.infer``
returns), so the wire format is checked against the real client rather than our reading of
the spec.
"""

from __future__ import annotations

import gzip
import inspect
import json
import struct
import zlib
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import tritonclient.http as httpclient
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from mlflow.types import ColSpec, Schema
from mlflow.types import TensorSpec as MlflowTensorSpec
from starlette.datastructures import Headers
from tritonclient.utils import np_to_triton_dtype, triton_to_np_dtype

from arbiter.errors import InvalidInputError, ModelError
from arbiter.gateway.protocols import inference_v2
from arbiter.gateway.protocols.inference_v2 import (
    DATATYPES,
    HEADER_LENGTH,
    InferRequest,
    RequestedOutput,
    TensorSpec,
    check_requested_outputs,
    datatype_to_numpy,
    encode_infer_response,
    error_body,
    inputs_to_dataframe,
    model_metadata,
    numpy_to_datatype,
    outputs_from_predictions,
    parse_infer_request,
    tensor_specs_from_schema,
)

Client = httpclient.InferenceServerClient

NUMERIC = [d for d in DATATYPES if d != "BYTES"]
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4)
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=6)


def triton_request(
    arrays: dict[str, np.ndarray],
    *,
    binary: bool | dict[str, bool] = True,
    outputs: list[Any] | None = None,
    request_id: str = "",
    parameters: dict[str, Any] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Build a request body and headers exactly as ``client.infer`` would send them."""
    inputs = []
    for name, array in arrays.items():
        tensor = httpclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        as_binary = binary[name] if isinstance(binary, dict) else binary
        tensor.set_data_from_numpy(array, binary_data=as_binary)
        inputs.append(tensor)
    body, json_size = Client.generate_request_body(
        inputs, outputs=outputs, request_id=request_id, parameters=parameters
    )
    headers = {} if json_size is None else {HEADER_LENGTH: str(json_size)}
    return body, headers


def triton_result(body: bytes, headers: dict[str, str]) -> Any:
    """Decode a response exactly as ``client.infer`` would."""
    length = headers.get(HEADER_LENGTH)
    return Client.parse_response_body(
        body,
        verbose=False,
        header_length=None if length is None else int(length),
        content_encoding=None,
    )


def assert_arrays_equal(ours: np.ndarray, expected: np.ndarray) -> None:
    assert ours.shape == expected.shape
    if expected.dtype == object:
        assert ours.dtype == object
        assert ours.ravel().tolist() == expected.ravel().tolist()
    else:
        assert ours.dtype == expected.dtype
        np.testing.assert_array_equal(ours, expected)  # NaN equals NaN here


def numeric_arrays(datatype: str) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(dtype=np.dtype(triton_to_np_dtype(datatype)), shape=SHAPES)


def bytes_arrays(elements: st.SearchStrategy[bytes]) -> st.SearchStrategy[np.ndarray]:
    def build(shape: tuple[int, ...], data: st.DataObject) -> np.ndarray:
        size = int(np.prod(shape))
        flat = np.empty(size, dtype=object)
        flat[:] = data.draw(st.lists(elements, min_size=size, max_size=size))
        return flat.reshape(shape)

    return st.tuples(SHAPES, st.data()).map(lambda args: build(*args))


# --- datatypes -------------------------------------------------------------------------------


@pytest.mark.parametrize("datatype", DATATYPES)
def test_datatype_mapping_agrees_with_tritonclient(datatype: str) -> None:
    dtype = datatype_to_numpy(datatype)
    assert dtype == np.dtype(triton_to_np_dtype(datatype))
    assert numpy_to_datatype(dtype) == datatype == np_to_triton_dtype(dtype)


@pytest.mark.parametrize(
    ("dtype", "datatype"),
    [("<U3", "BYTES"), ("S4", "BYTES"), (">f4", "FP32"), (">i8", "INT64"), (bool, "BOOL")],
)
def test_numpy_to_datatype_other_dtypes(dtype: Any, datatype: str) -> None:
    assert numpy_to_datatype(dtype) == datatype


@pytest.mark.parametrize("dtype", [np.complex64, "datetime64[ns]", "V8", np.longdouble])
def test_numpy_dtype_without_datatype(dtype: Any) -> None:
    if np.dtype(dtype).itemsize == 8 and np.dtype(dtype).kind == "f":
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(InvalidInputError) as exc:
        numpy_to_datatype(dtype)
    assert exc.value.field == "datatype"


@pytest.mark.parametrize("datatype", ["FP8", "BF16", "fp32", "STRING", None])
def test_unknown_datatype(datatype: Any) -> None:
    with pytest.raises(InvalidInputError, match="unsupported datatype") as exc:
        datatype_to_numpy(datatype)
    assert exc.value.field == "datatype"


# --- requests built by tritonclient round-trip -----------------------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", NUMERIC)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_request_round_trip_numeric(datatype: str, binary: bool, data: st.DataObject) -> None:
    array = data.draw(numeric_arrays(datatype))
    body, headers = triton_request({"x": array}, binary=binary)
    request = parse_infer_request(body, headers)
    assert_arrays_equal(request.inputs["x"], array)


@settings(max_examples=50, deadline=None)
@given(array=bytes_arrays(st.binary(max_size=12)))
def test_request_round_trip_bytes_binary(array: np.ndarray) -> None:
    body, headers = triton_request({"s": array})
    assert_arrays_equal(parse_infer_request(body, headers).inputs["s"], array)


@settings(max_examples=50, deadline=None)
@given(array=bytes_arrays(TEXT.map(str.encode)))
def test_request_round_trip_bytes_json(array: np.ndarray) -> None:
    """JSON carries BYTES as UTF-8 strings; they come back as the same bytes."""
    body, headers = triton_request({"s": array}, binary=False)
    assert headers == {}
    assert_arrays_equal(parse_infer_request(body, headers).inputs["s"], array)


def test_request_with_mixed_inputs_and_metadata() -> None:
    arrays = {
        "f16": np.array([[0.5, -1.0, np.inf]], dtype=np.float16),
        "s": np.array([b"a", b"\x00\xff", b""], dtype=object),
        "i": np.array([1, -2], dtype=np.int64),
        "b": np.array([True, False, True]),
    }
    outputs = [
        httpclient.InferRequestedOutput("p"),
        httpclient.InferRequestedOutput("q", binary_data=False),
    ]
    body, headers = triton_request(
        arrays,
        binary={"f16": True, "s": True, "i": False, "b": True},
        outputs=outputs,
        request_id="req-7",
        parameters={"experiment": "ab-1"},
    )
    request = parse_infer_request(body, headers)

    assert request.id == "req-7"
    assert request.input_order == ("f16", "s", "i", "b")
    for name, array in arrays.items():
        assert_arrays_equal(request.inputs[name], array)
    assert request.requested_outputs == (RequestedOutput("p", True), RequestedOutput("q", False))
    assert request.binary_output_default is False
    assert request.parameters == {"experiment": "ab-1"}


def test_tritonclient_without_outputs_asks_for_binary_outputs() -> None:
    body, headers = triton_request({"x": np.zeros(2, dtype=np.float32)})
    request = parse_infer_request(body, headers)
    assert request.requested_outputs == ()
    assert request.binary_output_default is True


def test_binary_data_output_default_applies_to_outputs_without_binary_data() -> None:
    header = orjson.dumps(
        {
            "inputs": [{"name": "x", "shape": [1], "datatype": "INT8", "data": [1]}],
            "outputs": [{"name": "a"}, {"name": "b", "parameters": {"binary_data": False}}],
            "parameters": {"binary_data_output": True},
        }
    )
    request = parse_infer_request(header, {})
    assert request.requested_outputs == (RequestedOutput("a", True), RequestedOutput("b", False))


def test_json_request_with_nested_data_and_nan() -> None:
    """The spec allows nested row-major data; rapidjson clients write NaN literals."""
    body = (
        b'{"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32",'
        b' "data": [[1.5, NaN], [-Infinity, 4]]}]}'
    )
    array = parse_infer_request(body, {}).inputs["x"]
    assert_arrays_equal(array, np.array([[1.5, np.nan], [-np.inf, 4]], dtype=np.float32))


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("UINT64", [2**63, 0, 2**64 - 1]),
        ("INT64", [-(2**63), 2**63 - 1]),
        ("UINT8", [0, 255]),
    ],
)
def test_json_integers_at_the_64_bit_edges(datatype: str, values: list[int]) -> None:
    body = orjson.dumps(one_input(datatype=datatype, shape=[len(values)], data=values))
    array = parse_infer_request(body, {}).inputs["x"]
    assert array.dtype == datatype_to_numpy(datatype)
    assert array.tolist() == values


@pytest.mark.parametrize("values", [[2**64, 0], [-1, 2**64 - 1], [2**70]])
def test_json_integers_beyond_uint64_are_out_of_range(values: list[int]) -> None:
    body = json.dumps(one_input(datatype="UINT64", shape=[len(values)], data=values)).encode()
    with pytest.raises(InvalidInputError, match=r"\[0, 18446744073709551615\]") as exc:
        parse_infer_request(body, {})
    assert exc.value.field == "inputs[0].data"


def test_header_lookup_is_case_insensitive() -> None:
    body, headers = triton_request({"x": np.arange(3, dtype=np.int32)})
    lower = {k.lower(): v for k, v in headers.items()}
    starlette = Headers(headers=lower)
    for variant in (headers, lower, starlette):
        request = parse_infer_request(body, variant)
        assert_arrays_equal(request.inputs["x"], np.arange(3, dtype=np.int32))


def test_binary_inputs_are_writable() -> None:
    """Models may modify inputs in place (torch.from_numpy warns on read-only arrays)."""
    body, headers = triton_request({"x": np.ones((2, 2), dtype=np.float32)})
    array = parse_infer_request(body, headers).inputs["x"]
    assert array.flags.writeable
    array += 1
    assert body[-16:] == np.ones(4, dtype=np.float32).tobytes()  # the request is untouched


def test_binary_bool_treats_any_non_zero_byte_as_true() -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "b",
                    "shape": [3],
                    "datatype": "BOOL",
                    "parameters": {"binary_data_size": 3},
                }
            ]
        }
    )
    request = parse_infer_request(header + b"\x00\x02\x01", {HEADER_LENGTH: str(len(header))})
    assert request.inputs["b"].tolist() == [False, True, True]


@pytest.mark.parametrize("compress", [gzip.compress, zlib.compress], ids=["gzip", "deflate"])
def test_compressed_request_like_tritonclient(compress: Any) -> None:
    """client.infer(request_compression_algorithm=...) compresses the whole body."""
    array = np.arange(12, dtype=np.uint16).reshape(3, 4)
    body, headers = triton_request({"x": array})
    encoding = "gzip" if compress is gzip.compress else "deflate"
    request = parse_infer_request(compress(body), {**headers, "Content-Encoding": encoding})
    assert_arrays_equal(request.inputs["x"], array)


def test_header_only_request_with_header_length() -> None:
    body, _ = triton_request({"x": np.arange(2, dtype=np.int8)}, binary=False)
    request = parse_infer_request(body, {HEADER_LENGTH: str(len(body))})
    assert request.inputs["x"].tolist() == [0, 1]


# --- malformed requests ----------------------------------------------------------------------


def binary_request(
    header: dict[str, Any], payload: bytes = b"", length: str | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = orjson.dumps(header)
    return raw + payload, {HEADER_LENGTH: length if length is not None else str(len(raw))}


def one_input(**spec: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", **spec}]}


def bin_input(datatype: str, shape: list[int], size: Any, **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "x",
                "shape": shape,
                "datatype": datatype,
                "parameters": {"binary_data_size": size},
                **extra,
            }
        ]
    }


FP32_PAIR = np.array([1, 2], dtype=np.float32).tobytes()

MALFORMED: list[tuple[str, bytes, dict[str, str], str]] = [
    ("invalid-json", b"{nope", {}, "body"),
    ("not-utf8", b"\xff\xfe\xfd", {}, "body"),
    ("json-list", b"[]", {}, "body"),
    ("header-length-not-int", b"{}", {HEADER_LENGTH: "abc"}, HEADER_LENGTH),
    ("header-length-zero", b"{}", {HEADER_LENGTH: "0"}, HEADER_LENGTH),
    ("header-length-past-body", b"{}", {HEADER_LENGTH: "3"}, HEADER_LENGTH),
    ("header-length-negative", b"{}", {HEADER_LENGTH: "-1"}, HEADER_LENGTH),
    ("id-not-string", orjson.dumps({"id": 5, **one_input(data=[1, 2])}), {}, "id"),
    ("parameters-not-object", orjson.dumps({"parameters": [], "inputs": []}), {}, "parameters"),
    (
        "binary-data-output-not-bool",
        orjson.dumps({"parameters": {"binary_data_output": 1}, **one_input(data=[1, 2])}),
        {},
        "parameters.binary_data_output",
    ),
    ("inputs-missing", b"{}", {}, "inputs"),
    ("inputs-empty", b'{"inputs": []}', {}, "inputs"),
    ("inputs-not-list", b'{"inputs": {"x": 1}}', {}, "inputs"),
    ("input-not-object", b'{"inputs": [3]}', {}, "inputs[0]"),
    ("input-no-name", orjson.dumps({"inputs": [{"shape": [1]}]}), {}, "inputs[0].name"),
    ("input-empty-name", orjson.dumps(one_input(name="", data=[1, 2])), {}, "inputs[0].name"),
    (
        "input-duplicate",
        orjson.dumps(
            {
                "inputs": [
                    {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]},
                    {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]},
                ]
            }
        ),
        {},
        "inputs[1].name",
    ),
    (
        "datatype-unknown",
        orjson.dumps(one_input(datatype="FP8", data=[1, 2])),
        {},
        "inputs[0].datatype",
    ),
    (
        "datatype-missing",
        orjson.dumps(one_input(datatype=None, data=[1, 2])),
        {},
        "inputs[0].datatype",
    ),
    ("shape-missing", orjson.dumps(one_input(shape=None, data=[1, 2])), {}, "inputs[0].shape"),
    ("shape-negative", orjson.dumps(one_input(shape=[-1], data=[1, 2])), {}, "inputs[0].shape"),
    ("shape-float", orjson.dumps(one_input(shape=[2.0], data=[1, 2])), {}, "inputs[0].shape"),
    ("shape-bool", orjson.dumps(one_input(shape=[True], data=[1])), {}, "inputs[0].shape"),
    ("shape-not-list", orjson.dumps(one_input(shape=2, data=[1, 2])), {}, "inputs[0].shape"),
    ("no-data", orjson.dumps(one_input()), {}, "inputs[0].data"),
    ("too-few-elements", orjson.dumps(one_input(data=[1])), {}, "inputs[0].data"),
    ("too-many-elements", orjson.dumps(one_input(data=[1, 2, 3])), {}, "inputs[0].data"),
    ("ragged", orjson.dumps(one_input(shape=[2, 2], data=[[1, 2], [3]])), {}, "inputs[0].data"),
    ("strings-for-fp32", orjson.dumps(one_input(data=["1", "2"])), {}, "inputs[0].data"),
    ("nulls-for-fp32", orjson.dumps(one_input(data=[1, None])), {}, "inputs[0].data"),
    ("bools-for-fp32", orjson.dumps(one_input(data=[True, False])), {}, "inputs[0].data"),
    (
        "floats-for-int",
        orjson.dumps(one_input(datatype="INT32", data=[1.5, 2])),
        {},
        "inputs[0].data",
    ),
    ("ints-for-bool", orjson.dumps(one_input(datatype="BOOL", data=[1, 0])), {}, "inputs[0].data"),
    (
        "int8-overflow",
        orjson.dumps(one_input(datatype="INT8", data=[1, 128])),
        {},
        "inputs[0].data",
    ),
    (
        "uint-negative",
        orjson.dumps(one_input(datatype="UINT16", data=[-1, 0])),
        {},
        "inputs[0].data",
    ),
    (
        "numbers-for-bytes",
        orjson.dumps(one_input(datatype="BYTES", data=[1, 2])),
        {},
        "inputs[0].data",
    ),
    (
        "parameters-not-object-on-input",
        orjson.dumps(one_input(parameters=[1], data=[1, 2])),
        {},
        "inputs[0].parameters",
    ),
    (
        "shared-memory",
        orjson.dumps(
            one_input(parameters={"shared_memory_region": "r", "shared_memory_byte_size": 8})
        ),
        {},
        "inputs[0].parameters.shared_memory_region",
    ),
    (
        "data-and-binary",
        *binary_request(bin_input("FP32", [2], 8, data=[1, 2]), FP32_PAIR),
        "inputs[0].data",
    ),
    (
        "binary-without-header",
        orjson.dumps(bin_input("FP32", [2], 8)),
        {},
        "inputs[0].parameters.binary_data_size",
    ),
    (
        "binary-size-negative",
        *binary_request(bin_input("FP32", [2], -8), FP32_PAIR),
        "inputs[0].parameters.binary_data_size",
    ),
    (
        "binary-size-not-int",
        *binary_request(bin_input("FP32", [2], "8"), FP32_PAIR),
        "inputs[0].parameters.binary_data_size",
    ),
    (
        "binary-size-vs-shape",
        *binary_request(bin_input("FP32", [3], 8), FP32_PAIR),
        "inputs[0].parameters.binary_data_size",
    ),
    (
        "binary-past-body",
        *binary_request(bin_input("FP32", [4], 16), FP32_PAIR),
        "inputs[0].parameters.binary_data_size",
    ),
    (
        "binary-trailing-bytes",
        *binary_request(bin_input("FP32", [2], 8), FP32_PAIR + b"\x00"),
        "body",
    ),
    (
        "bytes-truncated-length",
        *binary_request(bin_input("BYTES", [2], 7), struct.pack("<I", 1) + b"a" + b"\x01\x00"),
        "inputs[0].parameters.binary_data_size",
    ),
    (
        "bytes-element-overflows",
        *binary_request(bin_input("BYTES", [1], 6), struct.pack("<I", 5) + b"ab"),
        "inputs[0].parameters.binary_data_size",
    ),
    (
        "bytes-leftover",
        *binary_request(bin_input("BYTES", [1], 7), struct.pack("<I", 1) + b"abc"),
        "inputs[0].parameters.binary_data_size",
    ),
    ("outputs-not-list", orjson.dumps({**one_input(data=[1, 2]), "outputs": {}}), {}, "outputs"),
    (
        "output-not-object",
        orjson.dumps({**one_input(data=[1, 2]), "outputs": ["y"]}),
        {},
        "outputs[0]",
    ),
    (
        "output-no-name",
        orjson.dumps({**one_input(data=[1, 2]), "outputs": [{"parameters": {}}]}),
        {},
        "outputs[0].name",
    ),
    (
        "output-duplicate",
        orjson.dumps({**one_input(data=[1, 2]), "outputs": [{"name": "y"}, {"name": "y"}]}),
        {},
        "outputs[1].name",
    ),
    (
        "output-binary-not-bool",
        orjson.dumps(
            {**one_input(data=[1, 2]), "outputs": [{"name": "y", "parameters": {"binary_data": 1}}]}
        ),
        {},
        "outputs[0].parameters.binary_data",
    ),
    (
        "output-classification",
        orjson.dumps(
            {
                **one_input(data=[1, 2]),
                "outputs": [{"name": "y", "parameters": {"classification": 3}}],
            }
        ),
        {},
        "outputs[0].parameters.classification",
    ),
    (
        "content-encoding-unknown",
        orjson.dumps(one_input(data=[1, 2])),
        {"Content-Encoding": "br"},
        "Content-Encoding",
    ),
    (
        "content-encoding-corrupt",
        b"definitely not gzip",
        {"Content-Encoding": "gzip"},
        "Content-Encoding",
    ),
    (
        "content-encoding-truncated",
        gzip.compress(orjson.dumps(one_input(data=[1, 2])))[:-12],
        {"Content-Encoding": "gzip"},
        "Content-Encoding",
    ),
]


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_request(body: bytes, headers: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        parse_infer_request(body, headers)
    assert exc.value.field == field


def test_compressed_body_size_is_capped() -> None:
    body = gzip.compress(b" " * 10_000 + orjson.dumps(one_input(data=[1, 2])))
    with pytest.raises(InvalidInputError, match="exceeds 1000 bytes") as exc:
        parse_infer_request(body, {"Content-Encoding": "gzip"}, max_decompressed_bytes=1000)
    assert exc.value.field == "Content-Encoding"


def test_shape_product_mismatch_names_counts() -> None:
    with pytest.raises(InvalidInputError, match="holds 6 elements but 'data' has 5"):
        parse_infer_request(orjson.dumps(one_input(shape=[2, 3], data=[1, 2, 3, 4, 5])), {})


# --- responses decoded by tritonclient -------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", NUMERIC)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_response_round_trip_numeric(datatype: str, binary: bool, data: st.DataObject) -> None:
    array = data.draw(numeric_arrays(datatype))
    body, headers = encode_infer_response(
        "m", "1", None, [("y", array)], requested_outputs=[RequestedOutput("y", binary)]
    )
    assert (HEADER_LENGTH in headers) is binary
    assert_arrays_equal(triton_result(body, headers).as_numpy("y"), array)


@settings(max_examples=50, deadline=None)
@given(array=bytes_arrays(st.binary(max_size=12)))
def test_response_round_trip_bytes_binary(array: np.ndarray) -> None:
    body, headers = encode_infer_response("m", "1", None, {"y": array}, binary_output_default=True)
    assert_arrays_equal(triton_result(body, headers).as_numpy("y"), array)


@settings(max_examples=50, deadline=None)
@given(texts=bytes_arrays(TEXT))
def test_response_round_trip_bytes_json(texts: np.ndarray) -> None:
    """JSON BYTES outputs decode to str objects in tritonclient; str and UTF-8 bytes both work."""
    as_bytes = np.vectorize(str.encode, otypes=[object])(texts) if texts.size else texts
    for array in (texts, as_bytes):
        body, headers = encode_infer_response("m", "1", None, {"y": array})
        assert headers == {"Content-Type": "application/json"}
        assert_arrays_equal(triton_result(body, headers).as_numpy("y"), texts)


def test_end_to_end_with_tritonclient_defaults() -> None:
    """tritonclient's defaults: binary inputs, no outputs named → every output binary."""
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    body, headers = triton_request({"x": x}, request_id="abc")
    request = parse_infer_request(body, headers)

    outputs = outputs_from_predictions(
        pd.DataFrame({"score": request.inputs["x"].sum(axis=1), "label": list("abcd")})
    )
    out_body, out_headers = encode_infer_response(
        "fraud",
        "3",
        request.id,
        outputs,
        requested_outputs=request.requested_outputs,
        binary_output_default=request.binary_output_default,
    )
    result = triton_result(out_body, out_headers)

    assert out_headers["Content-Type"] == "application/octet-stream"
    assert result.get_response()["id"] == "abc"
    assert result.get_response()["model_name"] == "fraud"
    assert result.get_response()["model_version"] == "3"
    np.testing.assert_array_equal(result.as_numpy("score"), x.sum(axis=1))
    assert result.as_numpy("label").tolist() == [b"a", b"b", b"c", b"d"]


def test_requested_outputs_select_order_and_encoding() -> None:
    body, headers = triton_request(
        {"x": np.zeros(1, dtype=np.float32)},
        outputs=[
            httpclient.InferRequestedOutput("b", binary_data=False),
            httpclient.InferRequestedOutput("a"),
        ],
    )
    request = parse_infer_request(body, headers)
    outputs = {"a": np.arange(3), "b": np.array([0.5, 1.5]), "c": np.array([9])}
    out_body, out_headers = encode_infer_response(
        "m", None, None, outputs, requested_outputs=request.requested_outputs
    )
    result = triton_result(out_body, out_headers)

    described = result.get_response()["outputs"]
    assert [o["name"] for o in described] == ["b", "a"]
    assert "data" in described[0] and "parameters" not in described[0]
    assert described[1]["parameters"] == {"binary_data_size": 24}
    assert "model_version" not in result.get_response()
    np.testing.assert_array_equal(result.as_numpy("a"), np.arange(3))
    np.testing.assert_array_equal(result.as_numpy("b"), [0.5, 1.5])
    assert result.as_numpy("c") is None


def test_unknown_requested_output() -> None:
    requested = [RequestedOutput("y", True), RequestedOutput("nope", False)]
    with pytest.raises(InvalidInputError, match="unknown output 'nope'") as exc:
        encode_infer_response("m", "1", None, {"y": np.zeros(1)}, requested_outputs=requested)
    assert exc.value.field == "outputs[1].name"
    with pytest.raises(InvalidInputError) as exc:
        check_requested_outputs(requested, ["y"])
    assert exc.value.field == "outputs[1].name"
    check_requested_outputs(requested[:1], ["y", "z"])


def test_json_response_keeps_non_finite_floats() -> None:
    array = np.array([np.nan, np.inf, -np.inf, 1.0], dtype=np.float32)
    body, headers = encode_infer_response("m", "1", "i", {"y": array})
    assert b"NaN" in body and b"-Infinity" in body
    assert_arrays_equal(triton_result(body, headers).as_numpy("y"), array)
    assert json.loads(body)["id"] == "i"


def test_response_handles_non_native_and_non_contiguous_arrays() -> None:
    big_endian = np.arange(6, dtype=">i4").reshape(2, 3)
    strided = np.arange(12, dtype=np.float64).reshape(3, 4)[:, ::2]
    string_array = np.array(["x", "yz"])
    fixed_bytes = np.array([b"ab", b"c"], dtype="S2")
    outputs = {"be": big_endian, "st": strided, "u": string_array, "s": fixed_bytes}
    for binary in (True, False):
        body, headers = encode_infer_response("m", "1", None, outputs, binary_output_default=binary)
        result = triton_result(body, headers)
        np.testing.assert_array_equal(result.as_numpy("be"), big_endian)
        np.testing.assert_array_equal(result.as_numpy("st"), strided)
        expected_u = [b"x", b"yz"] if binary else ["x", "yz"]
        expected_s = [b"ab", b"c"] if binary else ["ab", "c"]
        assert result.as_numpy("u").tolist() == expected_u
        assert result.as_numpy("s").tolist() == expected_s


def test_non_utf8_bytes_cannot_be_sent_as_json() -> None:
    array = np.array([b"\xff"], dtype=object)
    with pytest.raises(InvalidInputError, match="binary_data=true") as exc:
        encode_infer_response(
            "m", "1", None, {"y": array}, requested_outputs=[RequestedOutput("y", False)]
        )
    assert exc.value.field == "outputs[0].parameters.binary_data"
    with pytest.raises(InvalidInputError) as exc:
        encode_infer_response("m", "1", None, {"y": array})
    assert exc.value.field == "parameters.binary_data_output"


def test_output_without_datatype_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="output 'z'"):
        encode_infer_response("m", "1", None, {"z": np.array([1j])})


def test_response_parameters_and_empty_tensor() -> None:
    body, headers = encode_infer_response(
        "m",
        "1",
        None,
        {"y": np.zeros((0, 3), dtype=np.float32)},
        binary_output_default=True,
        parameters={"arm": "challenger"},
    )
    result = triton_result(body, headers)
    assert result.get_response()["parameters"] == {"arm": "challenger"}
    assert result.as_numpy("y").shape == (0, 3)


# --- helpers ---------------------------------------------------------------------------------


def test_error_body_is_what_tritonclient_reads() -> None:
    assert json.loads(error_body('model "m" failed')) == {"error": 'model "m" failed'}


def test_model_metadata() -> None:
    meta = model_metadata(
        "fraud",
        ["1", 2],
        "mlflow_pyfunc",
        [TensorSpec("x", "FP32", (-1, 3))],
        [TensorSpec("score", "FP64", (-1,))],
    )
    assert meta == {
        "name": "fraud",
        "versions": ["1", "2"],
        "platform": "mlflow_pyfunc",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
        "outputs": [{"name": "score", "datatype": "FP64", "shape": [-1]}],
    }


def test_tensor_specs_from_mlflow_schema() -> None:
    columns = Schema(
        [
            ColSpec("double", "amount"),
            ColSpec("long", "count"),
            ColSpec("string", "country"),
            ColSpec("boolean", "flag"),
            ColSpec("datetime", "at"),
        ]
    )
    assert tensor_specs_from_schema(columns) == [
        TensorSpec("amount", "FP64", (-1,)),
        TensorSpec("count", "INT64", (-1,)),
        TensorSpec("country", "BYTES", (-1,)),
        TensorSpec("flag", "BOOL", (-1,)),
        TensorSpec("at", "BYTES", (-1,)),
    ]
    tensors = Schema([MlflowTensorSpec(np.dtype(np.float32), (-1, 4), "img")])
    assert tensor_specs_from_schema(tensors) == [TensorSpec("img", "FP32", (-1, 4))]


def test_inputs_to_dataframe_one_tensor_per_column() -> None:
    body, headers = triton_request(
        {
            "country": np.array([[b"FR"], [b"DE"]], dtype=object),
            "amount": np.array([1.5, 2.5]),
        }
    )
    request = parse_infer_request(body, headers)
    frame = inputs_to_dataframe(request.inputs, ["amount", "country"])
    expected = pd.DataFrame({"amount": [1.5, 2.5], "country": np.array(["FR", "DE"], object)})
    pd.testing.assert_frame_equal(frame, expected)

    raw = inputs_to_dataframe(request.inputs, ["amount", "country"], decode_bytes=False)
    assert raw["country"].tolist() == [b"FR", b"DE"]


def test_inputs_to_dataframe_single_matrix() -> None:
    matrix = np.arange(6, dtype=np.float32).reshape(2, 3)
    frame = inputs_to_dataframe({"features": matrix}, ["a", "b", "c"])
    pd.testing.assert_frame_equal(frame, pd.DataFrame(matrix, columns=["a", "b", "c"]))

    text = np.array([[b"x", b"y"]], dtype=object)
    assert inputs_to_dataframe({"m": text}, ["p", "q"]).iloc[0].tolist() == ["x", "y"]


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ({"features": np.zeros((2, 2))}, "inputs[0].shape"),
        ({"features": np.zeros(3)}, "inputs[0].shape"),
        ({"a": np.zeros(2), "z": np.zeros(2)}, "inputs[1].name"),
        ({"a": np.zeros(2), "b": np.zeros(2)}, "inputs"),
        ({"a": np.zeros(2), "b": np.zeros(3), "c": np.zeros(2)}, "inputs[1].shape"),
        ({"a": np.zeros((2, 2)), "b": np.zeros(2), "c": np.zeros(2)}, "inputs[0].shape"),
        (
            {"a": np.array([b"\xff"], dtype=object), "b": np.zeros(1), "c": np.zeros(1)},
            "inputs[0]",
        ),
    ],
    ids=["narrow-matrix", "1d-single", "unexpected", "missing", "batch", "wide-column", "utf8"],
)
def test_inputs_to_dataframe_errors(inputs: dict[str, np.ndarray], field: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        inputs_to_dataframe(inputs, ["a", "b", "c"])
    assert exc.value.field == field


@pytest.mark.parametrize(
    ("predictions", "expected"),
    [
        (np.array([1, 2]), [("predictions", [1, 2])]),
        ([0.5, 0.25], [("predictions", [0.5, 0.25])]),
        (pd.Series([1.0], name="score"), [("score", [1.0])]),
        (pd.Series([1.0]), [("predictions", [1.0])]),
        (pd.DataFrame({"a": [1], "b": ["x"]}), [("a", [1]), ("b", ["x"])]),
        ({"p": [0.1], "q": np.array([2])}, [("p", [0.1]), ("q", [2])]),
    ],
)
def test_outputs_from_predictions(predictions: Any, expected: list[tuple[str, list]]) -> None:
    named = outputs_from_predictions(predictions)
    assert [(n, a.tolist()) for n, a in named] == expected
    assert all(isinstance(a, np.ndarray) for _, a in named)


def test_infer_request_is_immutable() -> None:
    request = InferRequest(id=None, inputs={}, input_order=())
    with pytest.raises(AttributeError):
        request.id = "x"  # type: ignore[misc]


def test_exported_members() -> None:
    """``__all__`` is sorted and lists every public class and function the module defines."""
    defined = {
        name
        for name, value in vars(inference_v2).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == inference_v2.__name__
    }
    assert inference_v2.__all__ == sorted(inference_v2.__all__)
    assert defined <= set(inference_v2.__all__)


def test_v2_codec_does_not_import_mlflow() -> None:
    """The v2 path stays light: importing it must not pull in MLflow or its scoring server."""
    import subprocess
    import sys

    code = "import sys, arbiter.gateway.protocols.inference_v2;print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- a real tritonclient against a real server -----------------------------------------------


@pytest.fixture(scope="module")
def v2_server() -> Any:
    """A minimal Starlette app over the codec, served by uvicorn in a thread."""
    import socket
    import threading
    import time

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def infer(request: Request) -> Response:
        try:
            parsed = parse_infer_request(await request.body(), request.headers)
            outputs = [
                ("doubled", parsed.inputs["x"] * 2),
                ("label", np.array([b"ok"] * len(parsed.inputs["x"]), dtype=object)),
            ]
            body, headers = encode_infer_response(
                request.path_params["name"],
                "1",
                parsed.id,
                outputs,
                requested_outputs=parsed.requested_outputs,
                binary_output_default=parsed.binary_output_default,
            )
        except InvalidInputError as exc:
            return Response(error_body(exc.message), 400, media_type="application/json")
        return Response(body, headers=headers)

    app = Starlette(routes=[Route("/v2/models/{name}/infer", infer, methods=["POST"])])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("binary_input", "outputs"),
    [
        (True, None),  # tritonclient's defaults
        (False, None),
        (True, [("doubled", False)]),
        (False, [("label", True), ("doubled", False)]),
    ],
)
def test_tritonclient_infer_against_a_live_server(
    v2_server: str, binary_input: bool, outputs: list[tuple[str, bool]] | None
) -> None:
    client = httpclient.InferenceServerClient(v2_server)
    try:
        x = np.arange(6, dtype=np.float32).reshape(3, 2)
        tensor = httpclient.InferInput("x", [3, 2], "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary_input)
        requested = (
            None
            if outputs is None
            else [httpclient.InferRequestedOutput(n, binary_data=b) for n, b in outputs]
        )
        result = client.infer("fraud", [tensor], outputs=requested, request_id="r-1")

        assert result.get_response()["id"] == "r-1"
        np.testing.assert_array_equal(result.as_numpy("doubled"), x * 2)
        if outputs is None or "label" in dict(outputs):
            assert result.as_numpy("label").tolist() == [b"ok"] * 3
        else:
            assert result.as_numpy("label") is None
    finally:
        client.close()


@pytest.mark.integration
def test_tritonclient_sees_v2_errors(v2_server: str) -> None:
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(v2_server)
    try:
        tensor = httpclient.InferInput("x", [1], "FP32")
        tensor.set_data_from_numpy(np.zeros(1, dtype=np.float32))
        wanted = [httpclient.InferRequestedOutput("missing")]
        with pytest.raises(InferenceServerException, match="unknown output 'missing'") as exc:
            client.infer("fraud", [tensor], outputs=wanted)
        assert exc.value.status() == "400"
    finally:
        client.close()


@pytest.mark.integration
def test_tritonclient_compressed_request_against_a_live_server(v2_server: str) -> None:
    client = httpclient.InferenceServerClient(v2_server)
    try:
        x = np.ones((2, 2), dtype=np.float32)
        tensor = httpclient.InferInput("x", [2, 2], "FP32")
        tensor.set_data_from_numpy(x)
        for algorithm in ("gzip", "deflate"):
            result = client.infer("fraud", [tensor], request_compression_algorithm=algorithm)
            np.testing.assert_array_equal(result.as_numpy("doubled"), x * 2)
    finally:
        client.close()
