"""The input-coercion step (arbiter.features): the same rules for rows and frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from arbiter.errors import InvalidInputError
from arbiter.features import FeatureSpec, InputSchema, coerce_frame, coerce_rows

SCHEMA = InputSchema(
    (
        FeatureSpec("amount", "double"),
        FeatureSpec("count", "long"),
        FeatureSpec("city", "string"),
        FeatureSpec("online", "boolean"),
        FeatureSpec("score", "double", required=False),
    )
)
ROW = {"amount": 3, "count": 2.0, "city": "Lyon", "online": True, "score": 0.5}


def test_rows_ints_become_doubles_and_integral_floats_become_longs() -> None:
    [row] = coerce_rows([ROW], SCHEMA)
    assert row == {"amount": 3.0, "count": 2, "city": "Lyon", "online": True, "score": 0.5}
    assert type(row["amount"]) is float and type(row["count"]) is int
    assert ROW["amount"] == 3 and type(ROW["amount"]) is int  # the client's rows are untouched


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"amount": "3"}, "features[0].amount", "must be a number"),
        ({"amount": True}, "features[0].amount", "must be a number"),
        ({"amount": math.inf}, "features[0].amount", "must be finite"),
        ({"amount": -math.inf}, "features[0].amount", "must be finite"),
        ({"amount": math.nan}, "features[0].amount", "required but is null"),
        ({"amount": None}, "features[0].amount", "required but is null"),
        ({"count": 2.5}, "features[0].count", "must be an integer"),
        ({"city": 7}, "features[0].city", "must be a string"),
        ({"online": 1}, "features[0].online", "must be a boolean"),
        ({"extra": 1}, "features[0].extra", "unexpected feature"),
    ],
)
def test_rows_refuse_naming_the_field(change: dict, field: str, words: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        coerce_rows([{**ROW, **change}], SCHEMA)
    assert err.value.field == field and words in str(err.value)


def test_rows_missing_required_and_optional() -> None:
    with pytest.raises(InvalidInputError) as err:
        coerce_rows([{k: v for k, v in ROW.items() if k != "city"}], SCHEMA, single=True)
    assert err.value.field == "features.city"
    [row] = coerce_rows([{k: v for k, v in ROW.items() if k != "score"}], SCHEMA)
    assert "score" not in row
    [row] = coerce_rows([{**ROW, "score": None}], SCHEMA)
    assert math.isnan(row["score"])
    with pytest.raises(InvalidInputError, match="at least one row"):
        coerce_rows([], SCHEMA)


def test_rows_allow_non_finite_is_an_opt_in() -> None:
    [row] = coerce_rows([{**ROW, "amount": math.inf}], SCHEMA, allow_non_finite=True)
    assert row["amount"] == math.inf
    [row] = coerce_rows([{**ROW, "amount": math.nan}], SCHEMA, allow_non_finite=True)
    assert math.isnan(row["amount"])
    with pytest.raises(InvalidInputError, match="required but is null"):
        coerce_rows([{**ROW, "amount": None}], SCHEMA, allow_non_finite=True)


def test_rows_without_schema_must_be_a_table() -> None:
    assert coerce_rows([{"a": 1}, {"a": 2}], None) == [{"a": 1}, {"a": 2}]
    with pytest.raises(InvalidInputError) as err:
        coerce_rows([{"a": 1}, {"b": 2}], None)
    assert err.value.field == "features[1].a"


def _frame(**changes: list) -> pd.DataFrame:
    data = {k: [v, v] for k, v in ROW.items()}
    data.update(changes)
    return pd.DataFrame(data)


def test_frame_casts_to_the_signature_dtypes_and_drops_unknown_columns() -> None:
    frame = _frame(extra=[1, 2])
    assert frame["amount"].dtype == np.int64
    out = coerce_frame(frame, SCHEMA)
    assert list(out.columns) == list(SCHEMA.names)
    assert out["amount"].dtype == np.float64 and out["count"].dtype == np.int64
    assert out["amount"].tolist() == [3.0, 3.0]
    assert frame["amount"].dtype == np.int64  # the input frame is untouched


@pytest.mark.parametrize(
    ("changes", "column", "words"),
    [
        ({"amount": ["1.5", "2"]}, "amount", "must be a number (double), got str in row 0"),
        ({"amount": [True, False]}, "amount", "got boolean"),
        ({"amount": [1.0, math.inf]}, "amount", "must be finite"),
        ({"amount": [1.0, math.nan]}, "amount", "required but is null in row 1"),
        ({"count": [1.0, 2.5]}, "count", "must be an integer"),
        ({"count": [1.0, math.nan]}, "count", "required but is null"),
        ({"city": ["Lyon", 3]}, "city", "must be a string"),
        ({"online": [True, "yes"]}, "online", "must be a boolean"),
    ],
)
def test_frame_refuses_naming_the_column(changes: dict, column: str, words: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        coerce_frame(_frame(**changes), SCHEMA, field_of=lambda c: f"inputs.{c}")
    assert err.value.field == f"inputs.{column}"
    assert words in str(err.value)


def test_frame_empty_and_missing_columns() -> None:
    with pytest.raises(InvalidInputError, match="at least one row") as err:
        coerce_frame(_frame().iloc[:0], SCHEMA, field_of=lambda c: c or "body")
    assert err.value.field == "body"
    with pytest.raises(InvalidInputError, match="missing feature 'count'") as err:
        coerce_frame(_frame().drop(columns=["count", "city"]), SCHEMA)
    assert err.value.field == "count"
    out = coerce_frame(_frame().drop(columns=["score"]), SCHEMA)  # optional: may be absent
    assert "score" not in out.columns


def test_frame_optional_nulls_and_the_non_finite_opt_in() -> None:
    out = coerce_frame(_frame(score=[None, 1.0]), SCHEMA)
    assert math.isnan(out["score"][0])
    out = coerce_frame(_frame(amount=[math.inf, math.nan]), SCHEMA, allow_non_finite=True)
    assert out["amount"][0] == math.inf and math.isnan(out["amount"][1])


def test_rows_and_frames_agree() -> None:
    """The same values are accepted or refused, and coerced alike, whatever the protocol."""
    cases = [3, 3.0, 1e308, -0.0, "3", True, None, math.nan, math.inf]
    schema = InputSchema((FeatureSpec("x", "double"),))
    for value in cases:
        try:
            rows = coerce_rows([{"x": value}], schema)
        except InvalidInputError:
            rows = None
        try:
            frame = coerce_frame(pd.DataFrame({"x": [value]}), schema)
        except InvalidInputError:
            frame = None
        assert (rows is None) == (frame is None), value
        if rows is not None and frame is not None:
            assert rows[0]["x"] == frame["x"][0] and frame["x"].dtype == np.float64


def test_out_of_range_values_are_refused_when_ranges_are_given() -> None:
    ranges = {"amount": (0.0, 100.0)}
    assert coerce_rows([ROW], SCHEMA, ranges=ranges)[0]["amount"] == 3.0
    with pytest.raises(InvalidInputError, match="outside the range seen in training") as err:
        coerce_rows([{**ROW, "amount": 1e308}], SCHEMA, ranges=ranges)
    assert err.value.field == "features[0].amount"
    assert coerce_rows([{**ROW, "amount": 1e308}], SCHEMA)[0]["amount"] == 1e308  # off
    with pytest.raises(InvalidInputError, match="outside the range") as err:
        coerce_frame(_frame(amount=[1.0, -5.0]), SCHEMA, ranges=ranges)
    assert err.value.field == "amount" and "row 1" not in str(err.value)
    out = coerce_frame(_frame(amount=[1.0, math.nan]), SCHEMA, allow_non_finite=True, ranges=ranges)
    assert math.isnan(out["amount"][1])  # NaN is not a range question


@pytest.mark.parametrize("null", [None, math.nan])
def test_frame_string_nulls_are_missing_values_not_numbers(null: object) -> None:
    """A null in a string column decodes as None or NaN (pandas' string dtype): refused in
    a required column as a null, accepted in an optional one (a nullable categorical)."""
    with pytest.raises(InvalidInputError, match="'city' is required but is null in row 1"):
        coerce_frame(_frame(city=["Lyon", null]), SCHEMA)
    schema = InputSchema((FeatureSpec("city", "string", required=False),))
    out = coerce_frame(pd.DataFrame({"city": ["Lyon", null]}), schema)
    assert out["city"][0] == "Lyon" and pd.isna(out["city"][1])
    with pytest.raises(InvalidInputError, match="must be a string, got int in row 2"):
        coerce_frame(pd.DataFrame({"city": ["Lyon", null, 3]}), schema)
