"""Tests for the MLflow scoring protocol, cross-checked against MLflow's own scoring server.

The reference is ``mlflow.pyfunc.scoring_server.invocations``, the function behind
``mlflow models serve``'s ``/invocations`` route, run in-process with a model that echoes
what it receives: whatever MLflow hands to ``predict`` and answers must equal what arbiter
parses and encodes.
"""

from __future__ import annotations

import datetime
import inspect
import io
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.pyfunc import scoring_server
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from arbiter.errors import InvalidInputError, ModelError
from arbiter.gateway import protocols
from arbiter.gateway.protocols import mlflow_scoring
from arbiter.gateway.protocols.mlflow_scoring import (
    ParsedScoringRequest,
    ScoringInputError,
    UnsupportedContentTypeError,
    encode_predictions,
    error_body,
    error_status,
    parse_content_type,
    parse_request,
)

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"


class EchoModel:
    """Stands in for a PyFuncModel: records what MLflow passes to predict and returns it."""

    def __init__(self, metadata: Model | None = None) -> None:
        self.metadata = metadata if metadata is not None else Model()
        self.seen: tuple[Any, Any] | None = None

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        self.seen = (data, params)
        return data


def mlflow_invocations(body: bytes, content_type: str, metadata: Model | None = None) -> Any:
    """Run MLflow's /invocations logic; returns (response, data seen, params seen)."""
    model = EchoModel(metadata)
    response = scoring_server.invocations(
        body, content_type, model, model.metadata.get_input_schema()
    )
    return response, model.seen


def assert_same_data(ours: Any, theirs: Any) -> None:
    if isinstance(theirs, pd.DataFrame):
        pd.testing.assert_frame_equal(ours, theirs)
    elif isinstance(theirs, np.ndarray):
        assert isinstance(ours, np.ndarray)
        assert ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)
    elif isinstance(theirs, dict):
        assert ours.keys() == theirs.keys()
        for key in theirs:
            assert_same_data(ours[key], theirs[key])
    else:
        assert ours == theirs


def signature_model(*columns: ColSpec, params: ParamSchema | None = None) -> Model:
    return Model(signature=ModelSignature(inputs=Schema(list(columns)), params=params))


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


FRAME = pd.DataFrame({"x": [1.5, 2.5], "n": [1, 2], "s": ["a", "b"]})

# (id, body, content type, metadata, expected format)
ACCEPTED: list[tuple[str, bytes, str, Model | None, str]] = [
    (
        "split",
        b'{"dataframe_split": {"columns": ["x", "n"], "data": [[1.5, 1], [2.5, 2]]}}',
        JSON,
        None,
        "dataframe_split",
    ),
    (
        "split-index",
        b'{"dataframe_split": {"index": [7, 9], "columns": ["x"], "data": [[1.0], [2.0]]}}',
        JSON,
        None,
        "dataframe_split",
    ),
    (
        "records",
        b'{"dataframe_records": [{"x": 1.5, "s": "a"}, {"x": 2.5, "s": "b"}]}',
        JSON,
        None,
        "dataframe_records",
    ),
    ("instances-tensor", b'{"instances": [[1, 2], [3, 4]]}', JSON, None, "instances"),
    (
        "instances-named",
        b'{"instances": [{"a": 1, "b": [1, 2]}, {"a": 2, "b": [3, 4]}]}',
        JSON,
        None,
        "instances",
    ),
    ("inputs-tensor", b'{"inputs": [[1.5, 2.5], [3.5, 4.5]]}', JSON, None, "inputs"),
    ("inputs-named", b'{"inputs": {"a": [1, 2], "b": ["x", "y"]}}', JSON, None, "inputs"),
    (
        "params",
        b'{"inputs": [1, 2], "params": {"temperature": 0.5, "top_k": 3}}',
        JSON,
        None,
        "inputs",
    ),
    ("extra-keys-ignored", b'{"inputs": [1, 2], "other": {"x": 1}}', JSON, None, "inputs"),
    ("nan-literal", b'{"inputs": [1.0, NaN, Infinity]}', JSON, None, "inputs"),
    ("big-int", b'{"inputs": {"a": [123456789012345678901234567890]}}', JSON, None, "inputs"),
    ("utf8-bom", b'\xef\xbb\xbf{"inputs": [1, 2]}', JSON, None, "inputs"),
    ("charset", b'{"inputs": [1, 2]}', "application/json; charset=utf-8", None, "inputs"),
    ("charset-upper", b'{"inputs": [1, 2]}', "application/json;charset=UTF-8", None, "inputs"),
    ("csv", FRAME.to_csv(index=False).encode(), CSV, None, "csv"),
    ("csv-charset", b"a,b\n1,x\n2,y\n", "text/csv; charset=utf-8", None, "csv"),
    ("parquet", parquet_bytes(FRAME), PARQUET, None, "parquet"),
    (
        "split-schema-cast",
        b'{"dataframe_split": {"columns": ["x", "n"], "data": [[1, 1], [2, 2]]}}',
        JSON,
        signature_model(ColSpec("double", "x"), ColSpec("long", "n")),
        "dataframe_split",
    ),
    (
        "records-schema-cast",
        b'{"dataframe_records": [{"x": 1, "s": "a"}]}',
        JSON,
        signature_model(ColSpec("float", "x"), ColSpec("string", "s")),
        "dataframe_records",
    ),
    (
        "csv-schema-cast",
        b"x,n\n1,2\n3,4\n",
        CSV,
        signature_model(ColSpec("double", "x"), ColSpec("integer", "n")),
        "csv",
    ),
    (
        "inputs-schema-cast",
        b'{"inputs": {"x": [1, 2]}}',
        JSON,
        signature_model(ColSpec("float", "x")),
        "inputs",
    ),
    (
        "unified-llm",
        b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 0.2, "max": 3}',
        JSON,
        signature_model(
            ColSpec("string", "messages"),
            params=ParamSchema([ParamSpec("temperature", "double", 0.5)]),
        ),
        "unified_llm",
    ),
    ("unified-llm-no-schema", b'{"prompt": "hello"}', JSON, None, "unified_llm"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "metadata", "expected_format"),
    [case[1:] for case in ACCEPTED],
    ids=[case[0] for case in ACCEPTED],
)
def test_parse_and_encode_match_mlflow_scoring_server(
    body: bytes, content_type: str, metadata: Model | None, expected_format: str
) -> None:
    """Parsed data and params equal what MLflow passes to predict; the answer is byte-equal."""
    response, (their_data, their_params) = mlflow_invocations(body, content_type, metadata)
    parsed = parse_request(body, content_type, metadata=metadata)

    assert parsed.format == expected_format
    assert_same_data(parsed.data, their_data)
    assert parsed.params == their_params
    assert response.status == 200
    encoded = encode_predictions(parsed.data, unwrapped=parsed.unwrapped)
    assert encoded == response.response.encode()


def test_type_hint_model_receives_raw_inputs() -> None:
    """Models whose signature comes from type hints get ``inputs`` unparsed, as in MLflow."""
    metadata = signature_model(ColSpec("string", "text"))
    metadata.signature._is_signature_from_type_hint = True
    body = b'{"inputs": [{"text": "a"}, {"text": "b"}], "params": {"k": 1}}'

    _, (their_data, their_params) = mlflow_invocations(body, JSON, metadata)
    parsed = parse_request(body, JSON, metadata=metadata)

    assert parsed == ParsedScoringRequest(their_data, their_params, "inputs")
    assert parsed.data == [{"text": "a"}, {"text": "b"}]


def test_type_hint_model_without_inputs_is_invalid_parameter_value() -> None:
    metadata = signature_model(ColSpec("string", "text"))
    metadata.signature._is_signature_from_type_hint = True
    body = b'{"dataframe_records": [{"text": "a"}]}'

    with pytest.raises(MlflowException) as theirs:
        mlflow_invocations(body, JSON, metadata)
    with pytest.raises(ScoringInputError) as ours:
        parse_request(body, JSON, metadata=metadata)

    assert ours.value.field == "inputs"
    assert ours.value.error_code == theirs.value.error_code == "INVALID_PARAMETER_VALUE"


# (id, body, content type, metadata, field); MLflow must reject each with the same message.
REJECTED_LIKE_MLFLOW: list[tuple[str, bytes, str, Model | None, str]] = [
    ("no-format", b'{"params": {"a": 1}}', JSON, None, "body"),
    ("empty-object", b"{}", JSON, None, "body"),
    ("two-formats", b'{"inputs": [1], "instances": [1]}', JSON, None, "body"),
    (
        "three-formats",
        b'{"inputs": [1], "dataframe_records": [], "dataframe_split": {}}',
        JSON,
        None,
        "body",
    ),
    ("json-list", b"[1, 2, 3]", JSON, None, "body"),
    ("json-scalar", b'"hello"', JSON, None, "body"),
    ("split-not-dict", b'{"dataframe_split": [[1, 2]]}', JSON, None, "dataframe_split"),
    (
        "split-extra-keys",
        b'{"dataframe_split": {"data": [[1]], "dtype": "x"}}',
        JSON,
        None,
        "dataframe_split",
    ),
    ("split-no-data", b'{"dataframe_split": {"columns": ["a"]}}', JSON, None, "dataframe_split"),
    (
        "split-bad-shape",
        b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2, 3]]}}',
        JSON,
        None,
        "dataframe_split",
    ),
    ("records-not-list", b'{"dataframe_records": {"a": 1}}', JSON, None, "dataframe_records"),
    (
        "schema-cast-fails",
        b'{"dataframe_split": {"columns": ["n"], "data": [["abc"]]}}',
        JSON,
        signature_model(ColSpec("long", "n")),
        "dataframe_split.n",  # the column MLflow's message names
    ),
    ("csv-malformed", b'a,b\n1,2\n"unterminated', CSV, None, "body"),
    ("csv-empty", b"", CSV, None, "body"),
    ("parquet-garbage", b"not parquet at all", PARQUET, None, "body"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "metadata", "field"),
    [case[1:] for case in REJECTED_LIKE_MLFLOW],
    ids=[case[0] for case in REJECTED_LIKE_MLFLOW],
)
def test_rejects_what_mlflow_rejects(
    body: bytes, content_type: str, metadata: Model | None, field: str
) -> None:
    with pytest.raises(MlflowException) as theirs:
        mlflow_invocations(body, content_type, metadata)
    with pytest.raises(ScoringInputError) as ours:
        parse_request(body, content_type, metadata=metadata)

    assert ours.value.field == field
    assert ours.value.message == theirs.value.message
    assert ours.value.error_code == theirs.value.error_code == "BAD_REQUEST"
    assert isinstance(ours.value, InvalidInputError)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"inputs": [1, 2}', b"", b"\xff\xfe\x00garbage"],
    ids=["syntax", "unbalanced", "empty", "not-utf8"],
)
def test_invalid_json_is_bad_request_on_body(body: bytes) -> None:
    with pytest.raises(MlflowException):
        mlflow_invocations(body, JSON)
    with pytest.raises(ScoringInputError, match="valid JSON formatted string") as ours:
        parse_request(body, JSON)
    assert ours.value.field == "body"
    assert ours.value.error_code == "BAD_REQUEST"


def test_invalid_json_message_does_not_echo_a_large_body() -> None:
    body = b'{"inputs": [' + b"1," * 100_000 + b"]"
    with pytest.raises(ScoringInputError) as ours:
        parse_request(body, JSON)
    assert len(ours.value.message) < 1_000


def test_csv_must_be_utf8() -> None:
    with pytest.raises(ScoringInputError, match="UTF-8") as ours:
        parse_request(b"a\n\xff\n", CSV)
    assert ours.value.field == "body"


@pytest.mark.parametrize("params", [b"[1, 2]", b'"x"', b"3"])
def test_params_must_be_an_object(params: bytes) -> None:
    with pytest.raises(ScoringInputError, match="'params' must be a JSON object") as ours:
        parse_request(b'{"inputs": [1], "params": ' + params + b"}", JSON)
    assert ours.value.field == "params"


def test_null_params_means_no_params() -> None:
    assert parse_request(b'{"inputs": [1], "params": null}', JSON).params is None


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "application/json; format=pandas-split",
        "text/csv; charset=utf-16",
    ],
)
def test_unsupported_content_type_is_415_like_mlflow(content_type: str) -> None:
    response, _ = mlflow_invocations(b'{"inputs": [1]}', content_type)
    assert response.status == 415

    with pytest.raises(UnsupportedContentTypeError) as ours:
        parse_request(b'{"inputs": [1]}', content_type)
    assert ours.value.field == "Content-Type"
    # MLflow appends a long protocol-change notice to the parameter message; the start matches.
    assert response.response.startswith(ours.value.message.rstrip("."))


def test_missing_content_type_is_415() -> None:
    with pytest.raises(UnsupportedContentTypeError, match="Got 'None'") as ours:
        parse_request(b'{"inputs": [1]}', None)
    assert ours.value.field == "Content-Type"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/json", JSON),
        ("Application/JSON", JSON),
        ("application/json;", JSON),
        ('application/json; charset="utf-8"', JSON),
        ("text/csv ; Charset=UTF-8", CSV),
        (PARQUET, PARQUET),
    ],
)
def test_parse_content_type_is_case_insensitive_and_tolerant(header: str, expected: str) -> None:
    assert parse_content_type(header) == expected


# --- encode_predictions ----------------------------------------------------------------------


def mlflow_predictions_json(predictions: Any) -> bytes:
    out = io.StringIO()
    scoring_server.predictions_to_json(predictions, out)
    return out.getvalue().encode()


def mlflow_unwrapped_json(predictions: Any) -> bytes:
    out = io.StringIO()
    scoring_server.unwrapped_predictions_to_json(predictions, out)
    return out.getvalue().encode()


PREDICTIONS: list[tuple[str, Any]] = [
    ("float-array", np.array([0.1, 1e-5, 1e300, np.nan, np.inf, -np.inf])),
    ("float32-array", np.array([0.1, 2.5], dtype=np.float32)),
    ("int-matrix", np.arange(6, dtype=np.int8).reshape(2, 3)),
    ("bool-array", np.array([True, False])),
    ("str-array", np.array(["a", "é", "中"])),
    ("object-array", np.array(["a", 1, None], dtype=object)),
    ("bytes-array", np.array([b"ab", b"\x00\xff"], dtype=object)),
    ("series", pd.Series([1.0, 2.0], name="score")),
    ("unnamed-series", pd.Series([1, 2])),
    (
        "frame",
        pd.DataFrame({"a": [1, 2], "b": ["x", None], "c": [np.nan, 1.5]}),
    ),
    ("frame-timestamps", pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-06-30"])})),
    ("list", [1, "two", 3.0, None]),
    ("dict-of-arrays", {"a": np.array([1, 2]), "b": np.array([0.5])}),
    ("numpy-scalar", np.float32(0.25)),
    ("python-scalar", 3),
    ("string", "héllo"),
    ("bytes", b"\x00\x01binary"),
    ("date", datetime.date(2024, 2, 29)),
    ("nested", {"outer": [{"inner": np.int64(5)}]}),
]


@pytest.mark.parametrize(
    "predictions", [p for _, p in PREDICTIONS], ids=[name for name, _ in PREDICTIONS]
)
def test_encode_predictions_equals_mlflow_bytes(predictions: Any) -> None:
    assert encode_predictions(predictions) == mlflow_predictions_json(predictions)
    assert encode_predictions(predictions, unwrapped=True) == mlflow_unwrapped_json(predictions)


@settings(max_examples=60, deadline=None)
@given(
    predictions=st.one_of(
        hnp.arrays(
            dtype=st.one_of(
                hnp.floating_dtypes(sizes=(32, 64)),
                hnp.integer_dtypes(),
                hnp.unsigned_integer_dtypes(),
                hnp.boolean_dtypes(),
            ),
            shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
        ),
        st.lists(st.floats(width=64), max_size=8).map(lambda xs: pd.Series(xs, dtype=float)),
        st.dictionaries(
            st.text(max_size=3),
            st.one_of(st.integers(-(2**62), 2**62), st.floats(), st.text(max_size=5)),
            max_size=4,
        ),
    )
)
def test_encode_predictions_equals_mlflow_bytes_property(predictions: Any) -> None:
    assert encode_predictions(predictions) == mlflow_predictions_json(predictions)


def test_encode_frame_is_records() -> None:
    frame = pd.DataFrame({"label": ["a", "b"], "p": [0.25, 0.75]})
    assert json.loads(encode_predictions(frame)) == {
        "predictions": [{"label": "a", "p": 0.25}, {"label": "b", "p": 0.75}]
    }


def test_unserialisable_predictions_are_a_model_error() -> None:
    with pytest.raises(ModelError, match="cannot be serialised"):
        encode_predictions([object()])


# --- error bodies ----------------------------------------------------------------------------


def test_error_body_matches_mlflow_exception_json() -> None:
    message = "Invalid input. The input must be a JSON dictionary"
    expected = MlflowException(message, error_code=scoring_server.BAD_REQUEST)
    body = error_body(message)
    assert body == expected.serialize_as_json().encode()
    decoded = json.loads(body)
    assert decoded["error_code"] == "BAD_REQUEST"
    assert decoded["message"] == message
    assert "stack_trace" not in decoded


def test_error_body_for_a_rejected_request_matches_mlflow_server() -> None:
    """What MLflow's route would send for a two-format request, byte for byte."""
    body = b'{"inputs": [1], "instances": [1]}'
    with pytest.raises(MlflowException) as theirs:
        mlflow_invocations(body, JSON)
    with pytest.raises(ScoringInputError) as ours:
        parse_request(body, JSON)
    assert error_body(ours.value.message, ours.value.error_code) == (
        theirs.value.serialize_as_json().encode()
    )
    assert error_status(ours.value.error_code) == theirs.value.get_http_status_code() == 400


def test_error_body_can_carry_a_stack_trace() -> None:
    decoded = json.loads(error_body("boom", "INTERNAL_ERROR", stack_trace="Traceback..."))
    assert decoded["error_code"] == "INTERNAL_ERROR"
    assert decoded["stack_trace"] == "Traceback..."


@pytest.mark.parametrize(
    ("code", "status"),
    [("BAD_REQUEST", 400), ("INVALID_PARAMETER_VALUE", 400), ("INTERNAL_ERROR", 500)],
)
def test_error_status(code: str, status: int) -> None:
    assert error_status(code) == status


def test_unknown_error_code_is_rejected() -> None:
    with pytest.raises(InvalidInputError) as exc:
        error_body("x", "NOT_A_CODE")
    assert exc.value.field == "error_code"


def test_exported_members() -> None:
    """``__all__`` is sorted and lists every public class and function the module defines."""
    defined = {
        name
        for name, value in vars(mlflow_scoring).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == mlflow_scoring.__name__
    }
    assert mlflow_scoring.__all__ == sorted(mlflow_scoring.__all__)
    assert defined <= set(mlflow_scoring.__all__)
    assert protocols.__all__ == ["inference_v2", "mlflow_scoring"]
    assert protocols.mlflow_scoring is mlflow_scoring


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            b'{"dataframe_records": [{"a": 1.0, "b": 2}, {"a": true, "b": 2}]}',
            "dataframe_records[1].a",
        ),
        (
            b'{"dataframe_split": {"columns": ["b", "a"], "data": [[false, 1.0]]}}',
            "dataframe_split.data[0][0]",
        ),
    ],
)
def test_a_boolean_for_a_number_is_refused_as_on_predict(body: bytes, field: str) -> None:
    """MLflow would cast ``true`` to 1.0; arbiter refuses it on every protocol (issue 14)."""
    metadata = signature_model(ColSpec("double", "a"), ColSpec("long", "b"))
    with pytest.raises(ScoringInputError) as ours:
        parse_request(body, JSON, metadata=metadata)
    assert ours.value.field == field
