"""How a raw table becomes model input: one scikit-learn ``ColumnTransformer`` per family.

The registered model is ``Pipeline([("prepare", ColumnTransformer), ("model", estimator)])``
taking the RAW columns (strings, missing values and all), so the gateway serves the rows
clients send and the preprocessing learned in training travels with the model. Each column is
encoded by its kind (:func:`arbiter.column_kinds.column_kinds`) and the estimator family:

========== =============================================== ===================================
kind       linear (LogisticRegression / Ridge)             tree families (HGB, LightGBM,
                                                           XGBoost)
========== =============================================== ===================================
numeric    median imputation + missing indicator, then     passed through with its NaN: the
           standardised                                    boosters learn, per split, which
                                                           side missing values go (a learned
                                                           imputation that a median cannot
                                                           match)
categorical one-hot, categories rarer than 0.1 % pooled,   ordinal codes (unknown and missing
           at most 50 columns per feature; an unseen       -> NaN) declared *categorical* to
           category maps to the pooled column or to zeros  the booster (HGB
                                                           ``categorical_features``, LightGBM
                                                           pandas categoricals, XGBoost
                                                           ``feature_types``): native splits
                                                           on category sets, no width blow-up
text       TF-IDF on words (20 000 terms, sublinear tf):   hashed TF-IDF reduced to
           a linear model is at its best on sparse         ``TEXT_COMPONENTS`` SVD components,
           high-dimensional text                           plus the length in characters and
                                                           words
========== =============================================== ===================================

Why the tree families get SVD components and not the TF-IDF matrix: histogram boosters bin
dense columns, so 20 000 sparse term columns would be densified (memory) and scanned at every
split (time) for features each of which is almost always zero. A few dense SVD components
("topics") are cheap to split on and keep most of the signal a tree can use; the hashing
vectorizer needs no vocabulary (nothing to learn, nothing unseen at serving time) and
guarantees the SVD has enough input columns however small the training table. Length and word
count are the cheapest text signals and often the strongest ones (empty notes, long
complaints).

When every column is numeric the pipeline is fitted on a float matrix, selecting columns by
position: the model then has no ``feature_names_in_`` and the gateway keeps its numeric fast
path (rows straight into a float matrix, no DataFrame).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from arbiter.column_kinds import ColumnKind, column_kinds

Family = Literal["linear", "hist_gradient_boosting", "lightgbm", "xgboost"]
TREE_FAMILIES: tuple[str, ...] = ("hist_gradient_boosting", "lightgbm", "xgboost")

#: SVD components per text column for the tree families.
TEXT_COMPONENTS = 16
#: Hashed term columns a text column is reduced from (tree families).
_TEXT_HASH_FEATURES = 2**12
#: Vocabulary of the linear family's TF-IDF.
_TEXT_MAX_TERMS = 20_000
#: One-hot columns per categorical feature (linear) and the share under which a category is
#: pooled into "infrequent".
_ONEHOT_MAX_CATEGORIES = 50
_ONEHOT_MIN_FREQUENCY = 0.001
#: Ordinal codes per categorical feature (tree families): HistGradientBoosting takes at most
#: ``max_bins`` (255) categories; the rarest ones share one code.
TREE_MAX_CATEGORIES = 254


@dataclass(frozen=True, slots=True)
class TableLayout:
    """The training table's feature columns, their kinds and how estimators receive them.

    ``frame_input`` is false when every column is numeric: estimators then get a float64
    matrix (columns selected by position), else the DataFrame itself (selected by name).
    """

    columns: tuple[str, ...]
    kinds: tuple[ColumnKind, ...]
    frame_input: bool

    def _select(self, kind: str) -> list[Any]:
        picked = [i for i, k in enumerate(self.kinds) if k == kind]
        return [self.columns[i] for i in picked] if self.frame_input else picked

    @property
    def numeric(self) -> list[Any]:
        """Numeric columns: names, or positions for matrix input."""
        return self._select("numeric")

    @property
    def categorical(self) -> list[Any]:
        """Categorical columns: names (categoricals always mean frame input)."""
        return self._select("categorical")

    @property
    def text(self) -> list[Any]:
        """Text columns: names."""
        return self._select("text")

    def kind_of(self) -> dict[str, ColumnKind]:
        """``{column: kind}``."""
        return dict(zip(self.columns, self.kinds, strict=True))


def layout_for(frame: Any, overrides: Mapping[str, ColumnKind] | None = None) -> TableLayout:
    """The :class:`TableLayout` of a feature DataFrame, kinds from :func:`column_kinds`."""
    kinds = column_kinds(frame, overrides)
    columns = tuple(str(c) for c in frame.columns)
    values = tuple(kinds[c] for c in columns)
    return TableLayout(columns, values, any(k != "numeric" for k in values))


def text_values(x: Any) -> np.ndarray:
    """One string per row of a text column; a missing value is the empty document."""
    import pandas as pd

    arr = np.asarray(x, dtype=object).ravel()
    arr = arr.copy()
    arr[pd.isna(arr)] = ""
    return arr.astype(str)


def text_stats(x: Any) -> np.ndarray:
    """``[log1p(characters), log1p(words)]`` per document (the tree families' text signal)."""
    docs = np.asarray(x, dtype=object).ravel()
    chars = np.fromiter((len(d) for d in docs), dtype=np.float64, count=docs.size)
    words = np.fromiter((len(d.split()) for d in docs), dtype=np.float64, count=docs.size)
    return np.log1p(np.column_stack([chars, words]))


def as_lightgbm_frame(x: Any, *, categorical: tuple[int, ...] = ()) -> Any:
    """The encoded matrix as a DataFrame whose ``categorical`` columns are pandas categoricals.

    LightGBM's scikit-learn API takes categorical features from the categorical dtype of a
    DataFrame (``categorical_feature="auto"``); a constructor parameter is ignored. The
    categories are the fixed codes ``0 .. TREE_MAX_CATEGORIES - 1`` of the ordinal encoder, so
    training and serving map codes to LightGBM categories identically; NaN (missing or
    unknown) stays missing.
    """
    import pandas as pd

    matrix = np.asarray(x, dtype=np.float64)
    frame = pd.DataFrame(matrix, columns=[f"f{i}" for i in range(matrix.shape[1])])
    categories = np.arange(TREE_MAX_CATEGORIES)
    for i in categorical:
        col = matrix[:, i]
        codes = np.where(np.isnan(col), -1, col).astype(np.int64)
        frame[f"f{i}"] = pd.Categorical.from_codes(codes, categories=categories)
    return frame


def _text_pipeline(family: str, seed: int) -> Any:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import (
        HashingVectorizer,
        TfidfTransformer,
        TfidfVectorizer,
    )
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    prepare = FunctionTransformer(text_values)
    if family == "linear":
        return make_pipeline(
            prepare, TfidfVectorizer(max_features=_TEXT_MAX_TERMS, sublinear_tf=True)
        )
    topics = make_pipeline(
        HashingVectorizer(n_features=_TEXT_HASH_FEATURES, alternate_sign=False, norm=None),
        TfidfTransformer(sublinear_tf=True),
        TruncatedSVD(n_components=TEXT_COMPONENTS, random_state=seed),
    )
    return make_pipeline(
        prepare, FeatureUnion([("topics", topics), ("stats", FunctionTransformer(text_stats))])
    )


def preprocessor(layout: TableLayout, family: str, *, seed: int = 0) -> Any:
    """An unfitted ``ColumnTransformer`` encoding ``layout``'s columns for ``family``.

    Output columns are ordered numeric, categorical, then each text column's block, so
    :func:`categorical_positions` can tell the tree families where the categoricals are.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    linear = family == "linear"
    parts: list[tuple[str, Any, Any]] = []
    if layout.numeric:
        numeric = (
            make_pipeline(
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                StandardScaler(),
            )
            if linear
            else "passthrough"
        )
        parts.append(("num", numeric, layout.numeric))
    if layout.categorical:
        if linear:
            encoder = OneHotEncoder(
                handle_unknown="infrequent_if_exist",
                min_frequency=_ONEHOT_MIN_FREQUENCY,
                max_categories=_ONEHOT_MAX_CATEGORIES,
            )
        else:
            encoder = OrdinalEncoder(
                handle_unknown="use_encoded_value",
                unknown_value=np.nan,
                encoded_missing_value=np.nan,
                max_categories=TREE_MAX_CATEGORIES,
            )
        parts.append(("cat", encoder, layout.categorical))
    for i, column in enumerate(layout.text):
        # A scalar column selector: text vectorizers take one column as a 1-D sequence.
        parts.append((f"text{i}", _text_pipeline(family, seed), column))
    # sparse_threshold: keep one-hot/TF-IDF sparse for the linear family; trees want dense.
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.3 if linear else 0.0)


def categorical_positions(layout: TableLayout) -> tuple[int, ...]:
    """Output columns of a tree-family :func:`preprocessor` that hold categorical codes."""
    start = len(layout.numeric)
    return tuple(range(start, start + len(layout.categorical)))


def n_tree_outputs(layout: TableLayout) -> int:
    """Output width of a tree-family :func:`preprocessor`."""
    per_text = TEXT_COMPONENTS + 2
    return len(layout.numeric) + len(layout.categorical) + per_text * len(layout.text)


def missing_counts(frame: Any) -> dict[str, int]:
    """``{column: rows missing a value}`` for the columns that have gaps."""
    counts = frame.isna().sum()
    return {str(c): int(n) for c, n in counts.items() if n}


__all__ = [
    "TEXT_COMPONENTS",
    "TREE_FAMILIES",
    "TREE_MAX_CATEGORIES",
    "Family",
    "TableLayout",
    "as_lightgbm_frame",
    "categorical_positions",
    "layout_for",
    "missing_counts",
    "n_tree_outputs",
    "preprocessor",
    "text_stats",
    "text_values",
]
