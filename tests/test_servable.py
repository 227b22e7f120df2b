"""The serving fast path gives exactly what the estimator's own predict() gives."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification

from arbiter.features import FeatureSpec, InputSchema
from arbiter.servable import ARGMAX_CONSISTENT, ServableModel


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
    assert seen == ARGMAX_CONSISTENT


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
