"""The serving fast path gives exactly what the estimator's own predict() gives."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification

from arbiter.errors import ModelError
from arbiter.features import FeatureSpec, InputSchema
from arbiter.servable import ARGMAX_CONSISTENT, BoosterClassifier, ServableModel


def _estimators() -> list[object]:
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier

    return [
        make_pipeline(StandardScaler(), LogisticRegression()),
        HistGradientBoostingClassifier(max_iter=20),
        GradientBoostingClassifier(n_estimators=20),
        RandomForestClassifier(n_estimators=10, random_state=0),
        ExtraTreesClassifier(n_estimators=10, random_state=0),
        DecisionTreeClassifier(random_state=0),
        ExtraTreeClassifier(random_state=0),
        GaussianNB(),
        KNeighborsClassifier(n_neighbors=4),
        LGBMClassifier(n_estimators=20, verbose=-1),
    ]


@pytest.mark.parametrize("n_classes", [2, 3])
def test_argmax_path_equals_predict(n_classes: int) -> None:
    pytest.importorskip("lightgbm")
    x, y = make_classification(
        600, n_features=5, n_informative=4, n_redundant=0, n_classes=n_classes, random_state=1
    )
    schema = InputSchema(tuple(FeatureSpec(f"f{i}", "double") for i in range(5)))
    rows = [dict(zip(schema.names, row, strict=True)) for row in x[:300].tolist()]
    seen = set()
    for estimator in _estimators():
        estimator.fit(x[300:], y[300:])
        model = ServableModel("m", "1", pyfunc=None, schema=schema, raw=estimator)
        assert model.fast_path and model._proba_only
        scored = model.predict_rows(rows)
        np.testing.assert_array_equal(scored.raw, estimator.predict(x[:300]))
        np.testing.assert_allclose(scored.proba, estimator.predict_proba(x[:300]))
        final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
        seen.add(type(final).__name__)
    # A LightGBM Booster (lightgbm.train) seen as a classifier: labels from argmax, and the
    # booster's own output (P(class 1), or rows x classes) kept as the raw answer.
    import lightgbm

    objective = {"objective": "binary"} if n_classes == 2 else {"objective": "multiclass"}
    booster = lightgbm.train(
        {**objective, "num_class": n_classes if n_classes > 2 else 1, "verbose": -1},
        lightgbm.Dataset(x[300:], y[300:]),
        num_boost_round=20,
    )
    wrapped = BoosterClassifier.wrap(booster)
    assert wrapped is not None and wrapped.classes_.tolist() == list(range(n_classes))
    model = ServableModel("m", "1", pyfunc=None, schema=schema, raw=wrapped)
    assert model.fast_path and model._proba_only and model.classes == list(range(n_classes))
    scored = model.predict_rows(rows)
    own = booster.predict(x[:300])
    np.testing.assert_allclose(scored.raw, own)
    assert scored.predictions == wrapped.predict(x[:300]).tolist()
    np.testing.assert_allclose(scored.proba.sum(axis=1), 1.0)
    expected = (own > 0.5).astype(int) if n_classes == 2 else own.argmax(axis=1)
    assert scored.predictions == expected.tolist()
    seen.add(type(wrapped).__name__)
    assert seen == ARGMAX_CONSISTENT


def test_regression_booster_is_not_a_classifier() -> None:
    import lightgbm

    x, y = make_classification(100, n_features=3, n_informative=3, n_redundant=0, random_state=3)
    booster = lightgbm.train(
        {"objective": "regression", "verbose": -1}, lightgbm.Dataset(x, y), num_boost_round=3
    )
    assert BoosterClassifier.wrap(booster) is None


def test_model_answering_too_few_rows_is_a_model_error() -> None:
    """A text pipeline handed a DataFrame vectorises its column names: one answer for the
    batch. It is refused rather than logged against the wrong rows."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    text = ["free money now", "lunch at noon", "win a free prize", "meeting notes"] * 5
    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(text, [1, 0, 1, 0] * 5)
    schema = InputSchema((FeatureSpec("message", "string"),))
    rows = [{"message": t} for t in text[:4]]
    model = ServableModel("m", "1", pyfunc=None, schema=schema, raw=pipe)
    assert model.predict_rows(rows).predictions == [1, 0, 1, 0]  # the column, not the frame
    # Under a two-column signature the pipeline gets the frame: two "documents", four rows.
    two = InputSchema((FeatureSpec("message", "string"), FeatureSpec("subject", "string")))
    model = ServableModel("m", "1", pyfunc=None, schema=two, raw=pipe)
    with pytest.raises(ModelError, match="returned 2 predictions for 4 rows"):
        model.predict_rows([dict(r, subject="x") for r in rows])


def test_other_classifiers_call_predict() -> None:
    """A threshold-tuned classifier's predict() is not argmax(proba): it must be called."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import FixedThresholdClassifier

    x, y = make_classification(200, n_features=3, n_informative=3, n_redundant=0, random_state=2)
    schema = InputSchema(tuple(FeatureSpec(f"f{i}", "double") for i in range(3)))
    tuned = FixedThresholdClassifier(LogisticRegression(), threshold=0.2).fit(x, y)
    model = ServableModel("m", "1", pyfunc=None, schema=schema, raw=tuned)
    assert not model._proba_only
    rows = [dict(zip(schema.names, row, strict=True)) for row in x.tolist()]
    got = model.predict_rows(rows).raw
    np.testing.assert_array_equal(got, tuned.predict(x))
    assert (got != tuned.predict_proba(x).argmax(axis=1)).any()  # the case that matters
