"""The gateway's OpenAPI document, made to equal what the server accepts.

Each route documents itself in its docstring (Starlette's :class:`SchemaGenerator` reads the
YAML after ``---``). That text cannot know the running configuration, so this module completes
it from the same objects the server validates with, every time ``/openapi.json`` is asked for:

* every ``{param}`` of every path is declared (admin routes included);
* the model routes (``/models/{name}/...``, ``/v2/models/{name}/...``) are listed once per
  served model, with that model's configured unit field (``user_id``, not a generic
  ``unit_id``) and its ``features`` built from the model's input schema
  (:class:`arbiter.features.InputSchema`, the one :func:`~arbiter.features.validate_rows`
  checks): the columns with their types, all required ones required, no others;
* ``/feedback`` and ``/outcomes`` rows are described by the rules of their validators
  (:mod:`arbiter.events.feedback`, :mod:`arbiter.events.outcomes`), ``ts`` bounds included.

``tests/reliability/test_openapi_fuzz.py`` runs schemathesis with every check against a live
server to hold the document and the server to each other.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

from arbiter.events.feedback import MAX_CLICKS, MAX_LABEL_CHARS
from arbiter.events.outcomes import EVENT_NAME, MAX_UNIT_ID_CHARS, MIN_TS_US
from arbiter.features import InputSchema

_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
_MODEL_PATHS = ("/models/{name}", "/v2/models/{name}")
_INT32_MAX = 2**31 - 1

_NUMBER = {"double": "number", "float": "number", "long": "integer", "integer": "integer"}
_OTHER = {"string": "string", "boolean": "boolean"}


def feature_row_schema(schema: InputSchema | None) -> dict[str, Any]:
    """JSON Schema of one row of ``features`` for a model with input ``schema``."""
    if schema is None:  # no signature: any non-empty object of one table's keys
        return {"type": "object", "minProperties": 1, "additionalProperties": True}
    properties: dict[str, Any] = {}
    for spec in schema.features:
        kind = _NUMBER.get(spec.type) or _OTHER.get(spec.type)
        prop: dict[str, Any] = {"type": kind} if kind else {}
        if not spec.required:
            prop["nullable"] = True
        properties[spec.name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": [f.name for f in schema.features if f.required],
        "additionalProperties": False,
    }


def _unit_schema() -> dict[str, Any]:
    # predict.unit_from: a string or an integer; null means none.
    return {"oneOf": [{"type": "string"}, {"type": "integer"}], "nullable": True}


def _json_body(operation: dict[str, Any]) -> dict[str, Any] | None:
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    return body if isinstance(body, dict) else None


def _model_body(operation: dict[str, Any], unit_field: str, row: dict[str, Any], rows: int) -> None:
    """Put the configured unit field and the model's feature schema into a body schema."""
    body = _json_body(operation)
    schema = body.get("schema") if body else None
    if not isinstance(schema, dict) or "features" not in schema.get("properties", {}):
        return
    props = dict(schema["properties"])
    props.pop("unit_id", None)
    props[unit_field] = _unit_schema()
    if isinstance(props["features"], dict) and "oneOf" in props["features"]:
        many = {"type": "array", "items": row, "minItems": 1, "maxItems": rows}
        props["features"] = {"oneOf": [row, many]}
    else:  # /rank: one query row
        props["features"] = row
    schema["properties"] = props
    schema["additionalProperties"] = False


def _invocations_body(operation: dict[str, Any], row: dict[str, Any], rows: int) -> None:
    """The MLflow scoring body, as far as JSON Schema can state it: ``dataframe_records``.

    The other forms (``dataframe_split``, ``instances``, ``inputs``, CSV, Parquet) are
    accepted too and described in the text; their constraints (equal column lengths, a
    header matching the signature) cannot be written in OpenAPI 3.0, so a generator
    following the schema would send invalid ones.
    """
    if "requestBody" not in operation:
        return
    records = {"type": "array", "items": row, "minItems": 1, "maxItems": rows}
    operation["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["dataframe_records"],
                    "properties": {"dataframe_records": records},
                    "additionalProperties": False,
                }
            }
        },
    }


def _v2_body(operation: dict[str, Any], schema: InputSchema | None) -> None:
    """The v2 body for a model whose columns are all numbers: one ``[1, n]`` FP64 tensor.

    One layout of the protocol's several (per-column tensors, batches, binary data, all in
    the text): the only one whose element count (the product of ``shape``) JSON Schema can
    tie to ``data``.
    """
    json_body = _json_body(operation)
    if json_body is None or schema is None or not schema.all_numeric:
        return
    n = len(schema.features)
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string", "enum": ["input"]},
            "shape": {"type": "array", "items": {"type": "integer"}, "enum": [[1, n]]},
            "datatype": {"type": "string", "enum": ["FP64"]},
            "data": {"type": "array", "items": {"type": "number"}, "minItems": n, "maxItems": n},
        },
        "additionalProperties": False,
    }
    json_body["schema"] = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": tensor, "minItems": 1, "maxItems": 1},
        },
        "additionalProperties": False,
    }
    operation["requestBody"]["content"] = {"application/json": json_body}


def _declare_path_params(path: str, operation: dict[str, Any]) -> None:
    params = operation.setdefault("parameters", [])
    have = {p.get("name") for p in params if p.get("in") == "path"}
    for name in _PARAM.findall(path):
        if name not in have:
            params.append(
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1},
                }
            )
    if not params:
        operation.pop("parameters")


def _feedback_schema(max_ts: int) -> dict[str, Any]:
    ts = {"type": "integer", "minimum": MIN_TS_US, "maximum": max_ts}
    common = {
        "request_id": {"type": "string", "minLength": 1},
        "row_index": {"type": "integer", "minimum": 0, "maximum": _INT32_MAX},
        "ts": ts,
    }
    label = {
        "oneOf": [
            {"type": "string", "minLength": 1, "maxLength": MAX_LABEL_CHARS},
            {"type": "number"},
            {"type": "boolean"},
        ]
    }
    item = {
        "oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "integer"},
        ]
    }
    labelled = {
        "type": "object",
        "required": ["request_id", "label"],
        "properties": {**common, "label": label},
        "additionalProperties": False,
    }
    clicked = {
        "type": "object",
        "required": ["request_id", "clicks"],
        "properties": {
            **common,
            "row_index": {"type": "integer", "enum": [0]},
            "clicks": {"type": "array", "items": item, "maxItems": MAX_CLICKS},
        },
        "additionalProperties": False,
    }
    row = {"oneOf": [labelled, clicked]}
    rows = {"type": "array", "items": row, "minItems": 1}
    return {
        "oneOf": [
            labelled,
            clicked,
            {
                "type": "object",
                "required": ["feedback"],
                "properties": {"feedback": rows},
                "additionalProperties": False,
            },
            rows,
        ]
    }


def _outcomes_schema(max_ts: int) -> dict[str, Any]:
    row = {
        "type": "object",
        "required": ["unit_id", "event"],
        "properties": {
            "unit_id": {"type": "string", "minLength": 1, "maxLength": MAX_UNIT_ID_CHARS},
            "event": {"type": "string", "pattern": EVENT_NAME.pattern},
            "value": {"type": "number"},
            "ts": {"type": "integer", "minimum": MIN_TS_US, "maximum": max_ts},
            "request_id": {"type": "string", "minLength": 1},
        },
        "additionalProperties": False,
    }
    rows = {"type": "array", "items": row, "minItems": 1}
    return {
        "oneOf": [
            row,
            {
                "type": "object",
                "required": ["outcomes"],
                "properties": {"outcomes": rows},
                "additionalProperties": False,
            },
            rows,
        ]
    }


def complete(base: dict[str, Any], state: Any | None) -> dict[str, Any]:
    """``base`` (the docstrings' document) completed from the running gateway ``state``.

    Parameters
    ----------
    base : dict
        From :meth:`starlette.schemas.SchemaGenerator.get_schema`; not modified.
    state : arbiter.gateway.state.GatewayState or None
        None before the lifespan ran: the model routes stay generic.
    """
    doc = copy.deepcopy(base)
    paths: dict[str, Any] = doc.get("paths", {})
    if state is not None:
        now_us = time.time_ns() // 1000  # a bound that only grows more valid with time
        for path, body in (("/feedback", _feedback_schema), ("/outcomes", _outcomes_schema)):
            json_body = _json_body(paths.get(path, {}).get("post", {}))
            if json_body is not None:
                json_body["schema"] = body(now_us)
        paths = _per_model(paths, state)
    for path, item in paths.items():
        for operation in item.values():
            if isinstance(operation, dict):
                _declare_path_params(path, operation)
    doc["paths"] = paths
    return doc


def _per_model(paths: dict[str, Any], state: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    max_rows = state.config.server.max_batch_rows
    for path, item in paths.items():
        prefix = next((p for p in _MODEL_PATHS if path.startswith(p)), None)
        if prefix is None:
            out[path] = item
            continue
        for name, endpoint in state.pool.endpoints.items():
            concrete = copy.deepcopy(item)
            champion = endpoint.model(endpoint.config.champion_alias)
            if path.endswith("/rank") and champion is not None and champion.raw is not None:
                continue  # a scikit-learn estimator is no ranker: /rank refuses it (routes.rank)
            signature = champion.schema if champion is not None else None
            row = feature_row_schema(signature)
            exp = endpoint.config.experiment
            for operation in concrete.values():
                if not isinstance(operation, dict):
                    continue
                operation["parameters"] = [
                    p for p in operation.get("parameters", []) if p.get("name") != "name"
                ]
                if "operationId" in operation:
                    operation["operationId"] = f"{operation['operationId']}_{name}"
                _model_body(operation, exp.unit_field, row, max_rows)
                if path.endswith("/invocations"):
                    _invocations_body(operation, row, max_rows)
                elif path.startswith("/v2/") and path.endswith("/infer"):
                    _v2_body(operation, signature)
            out[path.replace("{name}", name, 1)] = concrete
    single = out.get("/invocations", {}).get("post")
    if single is not None and len(state.pool.endpoints) == 1:  # /invocations serves it
        (name,) = state.pool.endpoints
        model_op = out.get(f"/models/{name}/invocations", {}).get("post", {})
        for key in ("requestBody", "responses"):
            if key in model_op:
                single[key] = copy.deepcopy(model_op[key])
    return out


__all__ = ["complete", "feature_row_schema"]
