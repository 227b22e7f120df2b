"""The reference profile: what a drift check needs to know about the training data.

Built once at training time by :func:`build_profile` and stored as JSON next to the model
(see :mod:`arbiter.registry.profiles`), so checks never need the raw training set. Per column:

* numeric: ``n``, mean, std (ddof 0), min/max, reference-quantile bin edges with their exact
  counts (for PSI), and a quantile sketch — ``sketch_size + 1`` quantiles at levels ``k/K`` —
  from which KS and Wasserstein run approximately. The sketch's CDF is the linear interpolation
  between its knots, so where the reference is continuous it is within ``1/K`` of the empirical
  CDF (KS D within ~``1/K`` of the exact value; 0.001 with the default ``K = 1000``).
* categorical: ``n`` and the count of each category (the ``max_categories`` most frequent; the
  rest pooled into ``other_count``).
* text: ``n`` (rows with a value), the reference vocabulary — the count of each of the
  ``vocabulary_size`` most frequent tokens (lower-cased ``\\w+`` runs) in ``categories`` /
  ``category_counts``, every other token pooled into ``other_count`` (out of vocabulary) and
  their total in ``n_tokens`` — and ``length``, the numeric profile of tokens per value.

Every column stores ``n_missing`` (rows without a value), for the missing-rate signal.
Version 2 added the text kind; version 1 profiles (numeric and categorical only) still load.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arbiter.drift._frame import (
    Frame,
    as_float,
    category_counts,
    column_names,
    infer_kind,
    text_values,
    tokenize,
)
from arbiter.drift.config import KINDS, check_bins, check_vocabulary_size
from arbiter.drift.results import Kind
from arbiter.errors import InvalidInputError
from arbiter.stats import finite_or_none

FORMAT = "arbiter.reference_profile"
FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
PREDICTION = "<prediction>"


@dataclass(frozen=True, slots=True)
class ColumnProfile:
    """Summary of one reference column (see the module docstring)."""

    name: str
    kind: Kind
    n: int
    n_missing: int = 0
    mean: float = math.nan
    std: float = math.nan
    min: float = math.nan
    max: float = math.nan
    bin_edges: tuple[float, ...] = ()
    bin_counts: tuple[int, ...] = ()
    quantiles: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    category_counts: tuple[int, ...] = ()
    other_count: int = 0
    n_tokens: int = 0
    length: ColumnProfile | None = None

    @property
    def n_total(self) -> int:
        """Rows of the reference, with or without a value."""
        return self.n + self.n_missing

    @property
    def bins(self) -> int:
        """Number of PSI bins (``len(bin_edges) + 1``; 0 for categorical columns)."""
        return len(self.bin_counts)

    def counts(self) -> dict[str, int]:
        """Category → count (categorical columns)."""
        return dict(zip(self.categories, self.category_counts, strict=True))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; NaN becomes ``None``."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "n": self.n}
        out["n_missing"] = self.n_missing
        if self.kind == "numeric":
            for key in ("mean", "std", "min", "max"):
                out[key] = finite_or_none(getattr(self, key))
            out["bin_edges"] = list(self.bin_edges)
            out["bin_counts"] = list(self.bin_counts)
            out["quantiles"] = list(self.quantiles)
        else:
            out["categories"] = list(self.categories)
            out["category_counts"] = list(self.category_counts)
            out["other_count"] = self.other_count
        if self.kind == "text":
            out["n_tokens"] = self.n_tokens
            out["length"] = None if self.length is None else self.length.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnProfile:
        """Inverse of :meth:`to_dict`."""
        kind = data.get("kind")
        if kind not in KINDS:
            raise InvalidInputError(
                f"profile column {data.get('name')!r} has unknown kind {kind!r}", field="kind"
            )

        def num(key: str) -> float:
            value = data.get(key)
            return math.nan if value is None else float(value)

        return cls(
            name=str(data["name"]),
            kind=kind,
            n=int(data["n"]),
            n_missing=int(data.get("n_missing", 0)),
            mean=num("mean"),
            std=num("std"),
            min=num("min"),
            max=num("max"),
            bin_edges=tuple(float(v) for v in data.get("bin_edges", ())),
            bin_counts=tuple(int(v) for v in data.get("bin_counts", ())),
            quantiles=tuple(float(v) for v in data.get("quantiles", ())),
            categories=tuple(str(v) for v in data.get("categories", ())),
            category_counts=tuple(int(v) for v in data.get("category_counts", ())),
            other_count=int(data.get("other_count", 0)),
            n_tokens=int(data.get("n_tokens", 0)),
            length=None if data.get("length") is None else cls.from_dict(data["length"]),
        )


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    """Profiles of every reference column, plus the model's output (``prediction``).

    Attributes
    ----------
    columns : tuple of ColumnProfile
        Feature columns in the reference's order.
    prediction : ColumnProfile or None
        The model's output on the reference (scores or labels), for prediction drift.
    bins, sketch_size : int
        PSI bins and quantile-sketch resolution used to build it.
    metadata : mapping of str to str
        Free text (model name, version, data source...).
    """

    columns: tuple[ColumnProfile, ...]
    prediction: ColumnProfile | None = None
    bins: int = 10
    sketch_size: int = 1000
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnProfile:
        """The profile of ``name``; raises ``KeyError`` when absent."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_json(self) -> str:
        """Serialise to a JSON document (``format``/``version`` tagged)."""
        doc = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "bins": self.bins,
            "sketch_size": self.sketch_size,
            "metadata": dict(self.metadata),
            "columns": [c.to_dict() for c in self.columns],
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
        }
        return json.dumps(doc, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        """Parse :meth:`to_json` output; raises InvalidInputError on anything else."""
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise InvalidInputError(f"reference profile is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise InvalidInputError(f"not an arbiter reference profile (format != {FORMAT!r})")
        if doc.get("version") not in _READABLE_VERSIONS:
            raise InvalidInputError(
                f"reference profile version {doc.get('version')!r} is not supported "
                f"(expected {FORMAT_VERSION}); rebuild it with `arbiter drift profile`"
            )
        prediction = doc.get("prediction")
        return cls(
            columns=tuple(ColumnProfile.from_dict(c) for c in doc["columns"]),
            prediction=None if prediction is None else ColumnProfile.from_dict(prediction),
            bins=int(doc["bins"]),
            sketch_size=int(doc["sketch_size"]),
            metadata={str(k): str(v) for k, v in doc.get("metadata", {}).items()},
        )


def sorted_quantiles(xs: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``np.quantile(xs, levels)`` (linear method) for already sorted ``xs``, without a sort."""
    pos = levels * (xs.size - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, xs.size - 1)
    return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])


def quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Interior edges of ``bins`` equal-mass bins of ``values`` (duplicates removed).

    Bins are ``(-inf, e1], (e1, e2], ..., (e_last, inf)``: open at both ends so current values
    outside the reference range still land in a bin.
    """
    if values.size == 0:
        return np.empty(0)
    levels = np.arange(1, bins) / bins
    return np.unique(np.quantile(values, levels))


#: Up to this many edges, bins are counted by one comparison pass per edge.
_COMPARE_MAX_EDGES = 64


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the bins of :func:`quantile_edges` (right-closed).

    The same counts as ``np.bincount(np.searchsorted(edges, values, side="left"))``: the
    values up to bin ``i`` are those ``<= edges[i]``. For a few edges, counting them with one
    vectorised comparison per edge is ~10x faster than a binary search per value (1.6 ms
    against 19 ms for 1M values and 9 edges).
    """
    if edges.size > _COMPARE_MAX_EDGES:
        index = np.searchsorted(edges, values, side="left")
        return np.bincount(index, minlength=edges.size + 1)
    below = np.fromiter(
        (np.count_nonzero(values <= e) for e in edges.tolist()), dtype=np.int64, count=edges.size
    )
    return np.diff(below, prepend=0, append=values.size)


def sorted_bin_counts(xs: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """:func:`bin_counts` of already sorted ``xs`` (a binary search per edge)."""
    return np.diff(np.searchsorted(xs, edges, side="right"), prepend=0, append=xs.size)


def numeric_profile(
    name: str, values: np.ndarray, *, bins: int, sketch_size: int, n_missing: int = 0
) -> ColumnProfile:
    """Profile of finite float values (see the module docstring)."""
    n = int(values.size)
    if n == 0:
        return ColumnProfile(name, "numeric", 0, n_missing)
    # One sort serves the edges, the counts and the sketch (np.quantile with 1,001 levels
    # would partition 1,001 times).
    xs = np.sort(values)
    edges = np.unique(sorted_quantiles(xs, np.arange(1, bins) / bins))
    counts = np.diff(np.searchsorted(xs, edges, side="right"), prepend=0, append=n)
    sketch = sorted_quantiles(xs, np.linspace(0.0, 1.0, sketch_size + 1))
    return ColumnProfile(
        name,
        "numeric",
        n,
        n_missing,
        mean=float(values.mean()),
        std=float(values.std()),
        min=float(sketch[0]),
        max=float(sketch[-1]),
        bin_edges=tuple(edges.tolist()),
        bin_counts=tuple(int(c) for c in counts),
        quantiles=tuple(sketch.tolist()),
    )


def categorical_profile(
    name: str, counts: Mapping[str, int], *, max_categories: int, n_missing: int = 0
) -> ColumnProfile:
    """Profile of category counts; beyond ``max_categories`` the rarest are pooled."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept, rest = ranked[:max_categories], ranked[max_categories:]
    return ColumnProfile(
        name,
        "categorical",
        int(sum(counts.values())),
        n_missing,
        categories=tuple(k for k, _ in kept),
        category_counts=tuple(int(v) for _, v in kept),
        other_count=int(sum(v for _, v in rest)),
    )


def text_profile(
    name: str,
    texts: list[str],
    *,
    vocabulary_size: int,
    bins: int,
    sketch_size: int,
    n_missing: int = 0,
) -> ColumnProfile:
    """Profile of a text column's non-missing values: vocabulary and length (module docstring)."""
    counts, lengths = tokenize(texts)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = ranked[:vocabulary_size]
    n_tokens = int(lengths.sum())
    kept_total = sum(v for _, v in kept)
    return ColumnProfile(
        name,
        "text",
        len(texts),
        n_missing,
        categories=tuple(k for k, _ in kept),
        category_counts=tuple(int(v) for _, v in kept),
        other_count=n_tokens - kept_total,
        n_tokens=n_tokens,
        length=numeric_profile(name, lengths, bins=bins, sketch_size=sketch_size),
    )


def profile_column(
    name: str,
    values: Any,
    *,
    kind: Kind | None = None,
    bins: int = 10,
    sketch_size: int = 1000,
    max_categories: int = 1000,
    vocabulary_size: int = 1000,
) -> ColumnProfile:
    """Profile one column of raw values (array-like or Series)."""
    kind = kind or infer_kind(values)
    total = len(values)
    if kind == "text":
        texts = text_values(values)
        return text_profile(
            name,
            texts,
            vocabulary_size=vocabulary_size,
            bins=bins,
            sketch_size=sketch_size,
            n_missing=total - len(texts),
        )
    if kind == "numeric":
        x = as_float(values)
        return numeric_profile(
            name, x, bins=bins, sketch_size=sketch_size, n_missing=total - int(x.size)
        )
    counts = category_counts(values)
    n = int(sum(counts.values()))
    return categorical_profile(name, counts, max_categories=max_categories, n_missing=total - n)


def build_profile(
    frame: Frame,
    *,
    prediction: Any = None,
    columns: Iterable[str] | None = None,
    kinds: Mapping[str, Kind] | None = None,
    bins: int = 10,
    sketch_size: int = 1000,
    max_categories: int = 1000,
    vocabulary_size: int = 1000,
    metadata: Mapping[str, str] | None = None,
) -> ReferenceProfile:
    """Summarise a training table into a :class:`ReferenceProfile`.

    Parameters
    ----------
    frame : DataFrame or mapping of str to array-like
        The reference (training) features.
    prediction : array-like or str, optional
        The model's output on ``frame`` (scores or labels), or the name of the ``frame``
        column holding it (that column is then not profiled as a feature).
    columns : iterable of str, optional
        Feature columns to profile (default: all).
    kinds : mapping of str to {"numeric", "categorical", "text"}, optional
        Kind overrides; by default the rule of :mod:`arbiter.column_kinds` (int/float numeric,
        strings text when their median value has at least 3 tokens, else categorical).
    bins : int, default 10
        Reference-quantile bins for PSI.
    sketch_size : int, default 1000
        Quantile-sketch resolution ``K`` (``K + 1`` quantiles are stored).
    max_categories : int, default 1000
        Most categories kept per column; rarer ones are pooled.
    vocabulary_size : int, default 1000
        Most frequent tokens kept per text column; the others count as out of vocabulary.
    metadata : mapping of str to str, optional

    Returns
    -------
    ReferenceProfile
    """
    check_bins(bins)
    if isinstance(sketch_size, bool) or not isinstance(sketch_size, int) or sketch_size < 10:
        raise InvalidInputError(
            f"sketch_size must be an int >= 10, got {sketch_size!r}", field="sketch_size"
        )
    check_vocabulary_size(vocabulary_size)
    kinds = dict(kinds or {})
    for col, kind in kinds.items():
        if kind not in KINDS:
            raise InvalidInputError(
                f"kind for column {col!r} must be numeric, categorical or text; got {kind!r}",
                field=f"kinds.{col}",
            )
    names = column_names(frame)
    prediction_name = prediction if isinstance(prediction, str) else None
    wanted: Sequence[str] = list(columns) if columns is not None else names
    missing = [c for c in wanted if c not in names]
    if missing:
        raise InvalidInputError(f"columns not in the reference: {missing}", field="columns")
    options = {
        "bins": bins,
        "sketch_size": sketch_size,
        "max_categories": max_categories,
        "vocabulary_size": vocabulary_size,
    }
    profiles = tuple(
        profile_column(c, frame[c], kind=kinds.get(c), **options)
        for c in wanted
        if c != prediction_name
    )
    pred = None
    if prediction is not None:
        values = frame[prediction_name] if prediction_name is not None else prediction
        pred = profile_column(PREDICTION, values, kind=kinds.get(PREDICTION), **options)
    return ReferenceProfile(
        columns=profiles,
        prediction=pred,
        bins=bins,
        sketch_size=sketch_size,
        metadata=dict(metadata or {}),
    )


__all__ = [
    "PREDICTION",
    "ColumnProfile",
    "ReferenceProfile",
    "build_profile",
    "profile_column",
    "sorted_bin_counts",
    "sorted_quantiles",
    "text_profile",
]
