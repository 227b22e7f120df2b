"""The MLflow scoring protocol: what ``mlflow models serve`` accepts on ``POST /invocations``.

Pure parse and encode functions that mirror ``mlflow.pyfunc.scoring_server`` (MLflow 3.x) so a
client written for ``mlflow models serve`` works against arbiter unchanged. MLflow's own
helpers do the data parsing (``infer_and_parse_data``, ``parse_csv_input``,
``parse_parquet_input``) and its ``NumpyEncoder`` does the serialising, so dtype casting against
the model signature, base64 handling and number formatting are MLflow's, byte for byte.

Accepted bodies:

* ``application/json``: a JSON object with exactly one of ``dataframe_split``,
  ``dataframe_records``, ``instances`` or ``inputs``, plus optional ``params``. Other keys are
  ignored, as MLflow ignores them. An object with ``messages``, ``prompt`` or ``input`` is
  MLflow's unwrapped LLM format: passed through as a dict, and answered without the
  ``{"predictions": ...}`` wrapper.
* ``text/csv``: a CSV with a header row, as written by ``DataFrame.to_csv(index=False)``.
* ``application/vnd.apache.parquet``: a Parquet file.

A ``charset`` parameter is allowed and must be UTF-8. Any other type or parameter is refused
with :class:`UnsupportedContentTypeError`, which MLflow answers with HTTP 415 and a
``text/plain`` body. Every other parse failure is a :class:`ScoringInputError`: MLflow answers
HTTP 400 with ``{"error_code": "BAD_REQUEST", "message": ...}`` (see :func:`error_body`).

Where arbiter deliberately differs from MLflow 3.17:

* media type and parameter names are matched case-insensitively (RFC 9110) and an empty
  parameter (``application/json;``) is ignored; MLflow answers 415 to both;
* a missing ``Content-Type`` is a 415, where MLflow fails with a 500;
* ``params`` that is not a JSON object is refused here rather than inside ``predict``;
* invalid-JSON messages do not echo the whole body back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from io import BytesIO, StringIO
from typing import Any, Literal

import orjson
from mlflow.exceptions import ERROR_CODE_TO_HTTP_STATUS, MlflowException
from mlflow.protos.databricks_pb2 import ErrorCode
from mlflow.pyfunc.scoring_server import (
    CONTENT_TYPE_CSV,
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_PARQUET,
    CONTENT_TYPES,
    REQUIRED_INPUT_FORMAT,
    SERVING_PARAMS_KEY,
    SUPPORTED_FORMATS,
    infer_and_parse_data,
    parse_csv_input,
    parse_parquet_input,
)
from mlflow.pyfunc.utils.serving_data_parser import is_unified_llm_input
from mlflow.utils.proto_json_utils import NumpyEncoder, _get_jsonable_obj

from arbiter.errors import InvalidInputError, ModelError

ScoringFormat = Literal[
    "dataframe_split",
    "dataframe_records",
    "instances",
    "inputs",
    "unified_llm",
    "csv",
    "parquet",
]

# The body is not echoed in error messages; a short prefix is enough to recognise it.
_ECHO_CHARS = 200
_LONG_DIGIT_RUN = re.compile(rb"\d{20}")
_FAILED_COLUMN = re.compile(r"Failed to convert column (\S+) to type")


class ScoringInputError(InvalidInputError):
    """A scoring request MLflow would reject with HTTP 400.

    ``error_code`` is the MLflow error code name MLflow would report (``BAD_REQUEST`` or
    ``INVALID_PARAMETER_VALUE``); pass it to :func:`error_body`.
    """

    def __init__(
        self, message: str, *, field: str | None = None, error_code: str = "BAD_REQUEST"
    ) -> None:
        super().__init__(message, field=field)
        self.error_code = error_code


class UnsupportedContentTypeError(InvalidInputError):
    """The ``Content-Type`` is not one MLflow scores; MLflow answers HTTP 415, ``text/plain``."""


@dataclass(frozen=True, slots=True)
class ParsedScoringRequest:
    """A decoded ``/invocations`` request, ready for ``PyFuncModel.predict(data, params=params)``.

    Attributes
    ----------
    data : pandas.DataFrame, numpy.ndarray, dict or list
        The model input exactly as MLflow's scoring server would pass it to ``predict``:
        a DataFrame for ``dataframe_*``, CSV and Parquet; an ndarray or a dict of ndarrays for
        ``instances``/``inputs``; the raw JSON for the unwrapped LLM format and for models
        whose signature comes from type hints.
    params : dict or None
        The ``params`` object, or None when absent (always None for CSV and Parquet).
    format : str
        Which encoding the body used; one of :data:`ScoringFormat`.
    """

    data: Any
    params: dict[str, Any] | None
    format: ScoringFormat

    @property
    def unwrapped(self) -> bool:
        """True when the answer must omit the ``{"predictions": ...}`` wrapper (LLM format)."""
        return self.format == "unified_llm"


def parse_content_type(content_type: str | None) -> str:
    """Validate a ``Content-Type`` header and return its bare media type.

    Parameters
    ----------
    content_type : str or None
        The raw header value, e.g. ``"application/json; charset=utf-8"``.

    Returns
    -------
    str
        ``"application/json"``, ``"text/csv"`` or ``"application/vnd.apache.parquet"``.

    Raises
    ------
    UnsupportedContentTypeError
        Missing header, unknown media type, a charset other than UTF-8, or a parameter other
        than ``charset`` (MLflow answers all of these with 415).
    """
    if content_type is None:
        raise UnsupportedContentTypeError(_unsupported_type_message("None"), field="Content-Type")
    mime_type, *pairs = (part.strip() for part in content_type.split(";"))
    mime_type = mime_type.lower()
    parameters = {}
    for pair in pairs:
        if pair:
            key, _, value = pair.partition("=")
            parameters[key.strip().lower()] = value.strip().strip('"')
    if parameters.get("charset", "utf-8").lower() != "utf-8":
        raise UnsupportedContentTypeError(
            "The scoring server only supports UTF-8", field="Content-Type"
        )
    if unexpected := set(parameters).difference({"charset"}):
        raise UnsupportedContentTypeError(
            f"Unrecognized content type parameters: {', '.join(sorted(unexpected))}.",
            field="Content-Type",
        )
    if mime_type not in CONTENT_TYPES:
        raise UnsupportedContentTypeError(
            _unsupported_type_message(content_type), field="Content-Type"
        )
    return mime_type


def parse_request(
    body: bytes, content_type: str | None, *, metadata: Any = None
) -> ParsedScoringRequest:
    """Decode an ``/invocations`` body the way ``mlflow models serve`` does.

    Parameters
    ----------
    body : bytes
        The raw request body.
    content_type : str or None
        The ``Content-Type`` header.
    metadata : mlflow.models.Model, optional
        The served model's metadata (``PyFuncModel.metadata``). When given, its input schema
        casts column and tensor dtypes, its params schema splits LLM-format keys, and models
        whose signature comes from type hints receive ``inputs`` unparsed: exactly what MLflow
        does. Without it, data is parsed with inferred dtypes.

    Returns
    -------
    ParsedScoringRequest

    Raises
    ------
    UnsupportedContentTypeError
        The content type is not accepted (HTTP 415).
    ScoringInputError
        The body cannot be parsed (HTTP 400). ``field`` is ``"body"`` for problems with the
        body as a whole, or the JSON key that is wrong (``"dataframe_split"``, ``"params"``...).
    """
    mime_type = parse_content_type(content_type)
    input_schema = metadata.get_input_schema() if metadata is not None else None
    if mime_type == CONTENT_TYPE_JSON:
        return _parse_json(body, metadata, input_schema)
    if mime_type == CONTENT_TYPE_CSV:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ScoringInputError(
                f"Invalid input. Ensure that input is a valid UTF-8 encoded string. Error: "
                f"'{exc!r}'",
                field="body",
            ) from exc
        frame = _call_mlflow(parse_csv_input, StringIO(text), input_schema, field="body")
        return ParsedScoringRequest(frame, None, "csv")
    if mime_type == CONTENT_TYPE_PARQUET:
        frame = _call_mlflow(parse_parquet_input, BytesIO(body), field="body")
        return ParsedScoringRequest(frame, None, "parquet")
    # parse_content_type only lets the three types above through.
    raise AssertionError(mime_type)  # pragma: no cover


def encode_predictions(predictions: Any, *, unwrapped: bool = False) -> bytes:
    """Serialise model output as ``mlflow models serve`` does.

    The bytes equal ``mlflow.pyfunc.scoring_server.predictions_to_json``'s output: numpy arrays
    become (nested) lists, DataFrames and Series become lists of records, numpy scalars become
    numbers, ``bytes`` become base64 text, timestamps become ISO strings, and non-finite floats
    are written as ``NaN``/``Infinity`` like Python's ``json`` module. MLflow's encoder runs on
    ``json.dumps`` rather than ``json.dump`` because the one-shot path uses the C encoder:
    same bytes, about twice as fast.

    Parameters
    ----------
    predictions : Any
        What ``PyFuncModel.predict`` returned.
    unwrapped : bool, default False
        Omit the ``{"predictions": ...}`` wrapper; set it from
        :attr:`ParsedScoringRequest.unwrapped` (MLflow's LLM format).

    Returns
    -------
    bytes
        The UTF-8 JSON response body.

    Raises
    ------
    ModelError
        The predictions contain an object MLflow cannot serialise.
    """
    jsonable = _get_jsonable_obj(predictions, pandas_orient="records")
    payload = jsonable if unwrapped else {"predictions": jsonable}
    try:
        return json.dumps(payload, cls=NumpyEncoder).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ModelError(
            f"the model returned {type(predictions).__name__} that cannot be serialised as "
            f"JSON: {exc}"
        ) from exc


def error_body(
    message: str,
    error_code: str = "BAD_REQUEST",
    *,
    stack_trace: str | None = None,
    field: str | None = None,
) -> bytes:
    """The JSON error body MLflow's scoring server sends.

    MLflow 3.x serialises ``MlflowException`` as ``{"error_code", "message", "sqlstate",
    "error_class"}`` and adds ``"stack_trace"`` for CSV/Parquet parse failures and model
    crashes. arbiter builds the body with ``MlflowException`` itself so the keys track MLflow.
    Passing ``stack_trace`` is optional: arbiter leaves it out by default so server internals
    are not exposed.

    Parameters
    ----------
    message : str
        Human-readable message.
    error_code : str, default "BAD_REQUEST"
        An MLflow ``ErrorCode`` name, e.g. ``"BAD_REQUEST"`` or ``"INTERNAL_ERROR"``.
    stack_trace : str, optional
        A traceback to include under ``"stack_trace"``.
    field : str, optional
        The offending part of the request (``dataframe_records.hour``), added under
        ``"field"`` (an arbiter addition; MLflow clients read ``message``).

    Returns
    -------
    bytes
        The UTF-8 JSON body. Its HTTP status is :func:`error_status` of ``error_code``.

    Raises
    ------
    InvalidInputError
        ``error_code`` is not an MLflow error code name.
    """
    extra = {} if stack_trace is None else {"stack_trace": stack_trace}
    exc = MlflowException(message, error_code=_error_code_value(error_code), **extra)
    if field is None:
        return exc.serialize_as_json().encode("utf-8")
    return orjson.dumps({**json.loads(exc.serialize_as_json()), "field": field})


def error_status(error_code: str) -> int:
    """The HTTP status MLflow pairs with an error code name (``BAD_REQUEST`` → 400).

    Parameters
    ----------
    error_code : str
        An MLflow ``ErrorCode`` name.

    Returns
    -------
    int
        The status; 500 for codes MLflow does not map.

    Raises
    ------
    InvalidInputError
        ``error_code`` is not an MLflow error code name.
    """
    _error_code_value(error_code)
    return ERROR_CODE_TO_HTTP_STATUS.get(error_code, 500)


def _error_code_value(error_code: str) -> int:
    try:
        return ErrorCode.Value(error_code)
    except ValueError as exc:
        raise InvalidInputError(
            f"unknown MLflow error code {error_code!r}; use a name from "
            "mlflow.protos.databricks_pb2.ErrorCode such as 'BAD_REQUEST'",
            field="error_code",
        ) from exc


def _parse_json(body: bytes, metadata: Any, input_schema: Any) -> ParsedScoringRequest:
    decoded = _loads(body)
    if not isinstance(decoded, dict):
        # MLflow's wording, unbalanced quote included.
        received = (
            "a list." if isinstance(decoded, list) else f"unexpected input type '{type(decoded)}."
        )
        raise ScoringInputError(
            f"Invalid input. {REQUIRED_INPUT_FORMAT}. Received {received}", field="body"
        )

    if is_unified_llm_input(decoded):
        # MLflow: keys named in the model's params schema are params, the rest is data.
        params_schema = metadata.get_params_schema() if metadata is not None else None
        param_names = {p.name for p in params_schema.params} if params_schema else set()
        data = {k: v for k, v in decoded.items() if k not in param_names}
        params = {k: v for k, v in decoded.items() if k in param_names}
        return ParsedScoringRequest(data, params, "unified_llm")

    params = decoded.get(SERVING_PARAMS_KEY)
    if params is not None and not isinstance(params, dict):
        raise ScoringInputError(
            f"Invalid input. 'params' must be a JSON object, got {type(params).__name__}.",
            field=SERVING_PARAMS_KEY,
        )
    data = {k: v for k, v in decoded.items() if k in SUPPORTED_FORMATS}
    format_keys = sorted(data)
    if metadata is not None and _signature_from_type_hint(metadata):
        # Type-hinted models validate their own input: MLflow hands over ``inputs`` untouched.
        if "inputs" not in data:
            raise ScoringInputError(
                "Request payload must be a dictionary with 'inputs' key when the model "
                f"contains a valid type hint. Found keys in payload: {sorted(decoded)}.",
                field="inputs",
                error_code="INVALID_PARAMETER_VALUE",
            )
        return ParsedScoringRequest(data["inputs"], params, "inputs")

    field = format_keys[0] if len(format_keys) == 1 else "body"
    _refuse_booleans_for_numbers(data, input_schema)
    parsed = _call_mlflow(infer_and_parse_data, data, input_schema, field=field)
    return ParsedScoringRequest(parsed, params, format_keys[0])


_NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})


def _refuse_booleans_for_numbers(data: dict[str, Any], input_schema: Any) -> None:
    """Refuse JSON ``true``/``false`` where the signature says number, as ``/predict`` does.

    MLflow's parser casts a boolean to 1.0/0.0 for a double column, after which nothing can
    tell it from a number: checked here, on the JSON, so every protocol refuses the same
    values (issue 14, one set of input rules).
    """
    if input_schema is not None and getattr(input_schema, "is_tensor_spec", lambda: False)():
        _refuse_booleans_in_tensors(data, input_schema)
        return
    if input_schema is None or not getattr(input_schema, "has_input_names", lambda: False)():
        return
    numeric = {
        name
        for name, kind in input_schema.input_types_dict().items()
        if getattr(kind, "name", None) in _NUMERIC_TYPES
    }
    if not numeric:
        return
    records = data.get("dataframe_records")
    if isinstance(records, list):
        for i, row in enumerate(records):
            if not isinstance(row, dict):
                continue
            for name in numeric.intersection(row):
                if isinstance(row[name], bool):
                    raise ScoringInputError(
                        f"feature {name!r} must be a number, got bool in row {i}",
                        field=f"dataframe_records[{i}].{name}",
                    )
    split = data.get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("columns"), list):
        cols = [(j, c) for j, c in enumerate(split["columns"]) if c in numeric]
        for i, row in enumerate(split.get("data") or []):
            if not isinstance(row, list):
                continue
            for j, name in cols:
                if j < len(row) and isinstance(row[j], bool):
                    raise ScoringInputError(
                        f"feature {name!r} must be a number, got bool in row {i}",
                        field=f"dataframe_split.data[{i}][{j}]",
                    )


def _refuse_booleans_in_tensors(data: dict[str, Any], input_schema: Any) -> None:
    """The same for a tensor signature: a JSON boolean in ``inputs``/``instances`` where every
    tensor is numeric (MLflow would cast it to 1.0/0.0). The field is the boolean's JSON path
    (``inputs[0][3]``)."""
    import numpy as np

    try:
        kinds = {np.dtype(spec.type).kind for spec in input_schema.inputs}
    except TypeError:  # a dtype numpy cannot name: leave it to MLflow
        return
    if not kinds or not kinds <= set("iuf"):
        return
    for key in ("inputs", "instances"):
        value = data.get(key)
        if value is None:
            continue
        try:
            encoded = orjson.dumps(value)
        except TypeError:  # not plain JSON data: MLflow's parser decides
            continue
        if b"true" not in encoded and b"false" not in encoded:
            continue  # the common case: one C-speed scan, no Python walk
        stack: list[tuple[str, Any]] = [(key, value)]
        while stack:
            path, item = stack.pop()
            if isinstance(item, bool):
                raise ScoringInputError(
                    f"the model takes a tensor of numbers, got a boolean at {path}", field=path
                )
            if isinstance(item, list):
                stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(item))))
            elif isinstance(item, dict):
                stack.extend((f"{path}.{k}", v) for k, v in reversed(list(item.items())))


def _loads(body: bytes) -> Any:
    # orjson silently turns integers beyond 64 bits into floats; Python's json keeps them
    # exact, as MLflow does. A 20-digit run is the cheap test for "might not fit".
    if _LONG_DIGIT_RUN.search(body) is None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            # orjson is strict; Python's json also takes NaN/Infinity (which MLflow's own
            # client and pandas emit for missing values) and UTF-16/32 bodies. Matching
            # MLflow's leniency matters more than speed on this rare path.
            pass
    try:
        return json.loads(body)
    except RecursionError:
        # Python's parser recurses once per nesting level; orjson (tried first) stops at
        # 1024 levels. Nothing MLflow scores nests that deep.
        raise ScoringInputError(
            "Invalid input. The JSON nests too deeply to be a scoring request.", field="body"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        head = body[:_ECHO_CHARS].decode("utf-8", "replace")
        raise ScoringInputError(
            "Invalid input. Ensure that input is a valid JSON formatted string. "
            f"Error: '{exc!r}'. Input starts with: {head!r}",
            field="body",
        ) from exc


def _signature_from_type_hint(metadata: Any) -> bool:
    check = getattr(metadata, "_is_signature_from_type_hint", None)
    return bool(check()) if check is not None else False


def _call_mlflow(func: Any, *args: Any, field: str) -> Any:
    """Call an MLflow parser, re-raising its MlflowException as a ScoringInputError."""
    try:
        return func(*args)
    except MlflowException as exc:
        # MLflow names the column it could not cast only in its message; errors name fields.
        column = _FAILED_COLUMN.search(exc.message or "")
        if column is not None:
            field = column.group(1) if field == "body" else f"{field}.{column.group(1)}"
        raise ScoringInputError(exc.message, field=field, error_code=exc.error_code) from exc
    except RecursionError:
        raise ScoringInputError(
            "Invalid input. The data nests too deeply to be a scoring request.", field=field
        ) from None


def _unsupported_type_message(content_type: str) -> str:
    return (
        f"This predictor only supports the following content types: Types: {CONTENT_TYPES}. "
        f"Got '{content_type}'."
    )


__all__ = [
    "ParsedScoringRequest",
    "ScoringFormat",
    "ScoringInputError",
    "UnsupportedContentTypeError",
    "encode_predictions",
    "error_body",
    "error_status",
    "parse_content_type",
    "parse_request",
]
