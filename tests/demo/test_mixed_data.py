"""The mixed-type demo table: deterministic, the intended kinds, gaps, a rare label, drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arbiter.column_kinds import column_kinds
from arbiter.demo.mixed_data import (
    CATEGORICAL_COLUMNS,
    FEATURES,
    NEW_COUNTRY,
    NEW_MERCHANT,
    NUMERIC_COLUMNS,
    TEXT_COLUMN,
    TIME_COLUMN,
    make_accounts,
)


@pytest.fixture(scope="module")
def reference():
    return make_accounts(20_000, seed=11)


@pytest.fixture(scope="module")
def drifted():
    return make_accounts(20_000, seed=12, shift=1.0)


def test_same_seed_same_table_other_seed_other_table():
    a, b, c = (make_accounts(500, seed=s) for s in (3, 3, 4))
    pd.testing.assert_frame_equal(a.features, b.features)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.users, b.users)
    assert not a.features.equals(c.features)


def test_columns_and_dtypes(reference):
    frame = reference.features
    assert tuple(frame.columns) == FEATURES
    assert len(reference) == len(frame) == len(reference.users) == 20_000
    for name in NUMERIC_COLUMNS:
        assert frame[name].dtype == np.float64, name
    for name in (*CATEGORICAL_COLUMNS, TEXT_COLUMN):
        assert pd.api.types.is_string_dtype(frame[name]), name
    assert frame[TIME_COLUMN].dtype.kind == "M"
    assert frame[TIME_COLUMN].is_monotonic_increasing
    assert reference.labels.dtype == np.int64
    assert set(np.unique(reference.labels)) == {0, 1}
    assert reference.users[0].startswith("user-")


def test_column_kinds_are_the_intended_ones(reference):
    kinds = column_kinds(reference.model_inputs())
    assert kinds == {
        **dict.fromkeys(NUMERIC_COLUMNS, "numeric"),
        **dict.fromkeys(CATEGORICAL_COLUMNS, "categorical"),
        TEXT_COLUMN: "text",
    }


def test_label_is_rare(reference):
    assert 0.03 <= reference.labels.mean() <= 0.07


def test_gaps_a_few_percent_and_income_missing_not_at_random(reference):
    missing = reference.features.isna().mean()
    for name in ("avg_session_min", "declared_income", "merchant_category", "device", TEXT_COLUMN):
        assert 0.005 < missing[name] < 0.12, (name, missing[name])
    for name in ("amount", "country", TIME_COLUMN):
        assert missing[name] == 0.0, name
    # Missingness carries signal: rows without an income are fraud more often.
    gap = reference.features["declared_income"].isna().to_numpy()
    assert reference.labels[gap].mean() > 1.15 * reference.labels[~gap].mean()


def test_label_depends_on_categories_and_text(reference):
    frame, labels = reference.features, reference.labels
    by_merchant = pd.Series(labels).groupby(frame["merchant_category"].to_numpy()).mean()
    assert by_merchant["digital_goods"] > 1.5 * by_merchant["grocery"]
    urgent = frame[TEXT_COLUMN].fillna("").str.contains("urgent").to_numpy()
    assert labels[urgent].mean() > 2 * labels[~urgent].mean()


def test_shift_drifts_categories_missing_rate_text_and_numbers(reference, drifted):
    ref, cur = reference.features, drifted.features
    assert NEW_MERCHANT not in set(ref["merchant_category"].dropna())
    assert 0.05 < (cur["merchant_category"] == NEW_MERCHANT).mean() < 0.15
    assert NEW_COUNTRY not in set(ref["country"])
    assert 0.05 < (cur["country"] == NEW_COUNTRY).mean() < 0.15
    assert (cur["account_age_days"] < 30).mean() > (ref["account_age_days"] < 30).mean() + 0.15
    assert cur["declared_income"].isna().mean() > ref["declared_income"].isna().mean() + 0.1
    assert not ref[TEXT_COLUMN].fillna("").str.contains("wallet").any()
    assert cur[TEXT_COLUMN].fillna("").str.contains("wallet").mean() > 0.01
    assert cur["amount"].median() > 1.3 * ref["amount"].median()
    assert cur[TIME_COLUMN].min() > ref[TIME_COLUMN].max()
    assert column_kinds(drifted.model_inputs()) == column_kinds(reference.model_inputs())


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"n": 10, "shift": -1.0}])
def test_bad_arguments(kwargs):
    n = kwargs.pop("n")
    with pytest.raises(ValueError, match="must be >= "):
        make_accounts(n, seed=1, **kwargs)
