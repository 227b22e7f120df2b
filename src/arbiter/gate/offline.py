"""The offline gate: champion and challenger scored on one holdout snapshot, then judged.

:func:`offline_gate` stores the holdout as a content-addressed snapshot, loads both versions
from the registry, scores the snapshot's rows with each raw estimator, runs
:func:`~arbiter.gate.compare.compare_models` and records the verdict on the challenger
version (:mod:`arbiter.gate.blessing`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from arbiter.errors import InvalidInputError, ModelError, NotFoundError
from arbiter.gate.blessing import record_blessing
from arbiter.gate.compare import ModelOutputs, compare_models
from arbiter.gate.result import GateConfig, GateResult
from arbiter.gate.snapshot import write_snapshot
from arbiter.registry.mlflow_registry import MLflowRegistry
from arbiter.servable import ServableModel

if TYPE_CHECKING:
    import pandas as pd


def _resolve(registry: MLflowRegistry, name: str, version: str | None, alias: str) -> str:
    if version is not None:
        return str(version)
    aliases = registry.aliases(name)
    if alias not in aliases:
        raise NotFoundError(
            f"model {name!r} has no {alias!r} alias (aliases: {sorted(aliases) or 'none'}); "
            f"pass the version explicitly"
        )
    return aliases[alias]


def _feature_names(model: ServableModel, frame: pd.DataFrame, label: str) -> list[str]:
    if model.schema is not None:
        names = list(model.schema.names)
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise InvalidInputError(
                f"holdout lacks the features {missing} of {model.name} v{model.version}",
                field="holdout",
            )
        return names
    return [c for c in frame.columns if c != label]


def _outputs(
    model: ServableModel, frame: pd.DataFrame, label: str
) -> tuple[ModelOutputs, list[Any] | None]:
    names = _feature_names(model, frame, label)
    raw = model.raw
    try:
        if raw is None:  # a pyfunc-only model: predictions, no probabilities
            predictions = np.asarray(model.pyfunc.predict(frame[names])).reshape(-1)
            return ModelOutputs(predictions), None
        # Estimators fitted on bare arrays get the matrix in signature order; those fitted
        # on a DataFrame know their column names and get one.
        x = frame[names] if hasattr(raw, "feature_names_in_") else frame[names].to_numpy()
        predictions = np.asarray(raw.predict(x)).reshape(-1)
        classes = getattr(raw, "classes_", None)
        if classes is None:
            return ModelOutputs(predictions), None
        classes = list(np.asarray(classes).tolist())
        scores = None
        if len(classes) == 2 and hasattr(raw, "predict_proba"):
            scores = np.asarray(raw.predict_proba(x), dtype=np.float64)[:, 1]
        return ModelOutputs(predictions, scores), classes
    except (InvalidInputError, NotFoundError):
        raise
    except Exception as exc:
        raise ModelError(f"{model.name} v{model.version} failed on the holdout: {exc}") from exc


def offline_gate(
    registry: MLflowRegistry,
    name: str,
    holdout: pd.DataFrame,
    label: str,
    *,
    home: str | os.PathLike[str],
    champion_version: str | None = None,
    challenger_version: str | None = None,
    champion_alias: str = "champion",
    challenger_alias: str = "challenger",
    config: GateConfig | None = None,
    slices: Sequence[str] | None = None,
    record: bool = True,
) -> GateResult:
    """Gate a challenger version against the champion on one holdout.

    Parameters
    ----------
    registry : MLflowRegistry
        Holds both versions; the verdict is written there.
    name : str
        Registered model name.
    holdout : pandas.DataFrame
        Features (the models' signature columns), the ``label`` column and any slice columns.
    label : str
        The column with the true labels/targets.
    home : path
        The arbiter home: the snapshot goes to ``HOME/snapshots/<sha256>.parquet``.
    champion_version, challenger_version : str, optional
        Default: the versions the ``champion_alias``/``challenger_alias`` aliases point at.
    config : GateConfig, optional
        Thresholds (defaults: see :class:`GateConfig`).
    slices : sequence of str, optional
        Overrides ``config.slices``.
    record : bool, default True
        Write the verdict as tags on the challenger version (:func:`record_blessing`).

    Returns
    -------
    GateResult

    Raises
    ------
    NotFoundError
        A version or alias does not exist.
    InvalidInputError
        The holdout lacks the label, a feature or a slice column, or the models disagree on
        their classes.
    ModelError
        A model raised while scoring the holdout.
    """
    import pandas as pd

    config = config or GateConfig()
    if slices is not None:
        config = GateConfig(**{**config.to_dict(), "slices": tuple(slices)})
    if not isinstance(holdout, pd.DataFrame):
        raise InvalidInputError("the holdout must be a pandas DataFrame", field="holdout")
    needed = [label, *config.slices]
    missing = [c for c in needed if c not in holdout.columns]
    if missing:
        raise InvalidInputError(
            f"holdout has no column(s) {missing}; it has {list(holdout.columns)}",
            field="holdout",
        )
    if len(holdout) == 0:
        raise InvalidInputError("the holdout has no rows", field="holdout")
    if holdout[label].isna().any():
        raise InvalidInputError(f"the label column {label!r} has missing values", field=label)
    champion_v = _resolve(registry, name, champion_version, champion_alias)
    challenger_v = _resolve(registry, name, challenger_version, challenger_alias)

    path, digest = write_snapshot(home, holdout)
    # Score what was stored, not what was passed in: the snapshot is the record.
    frame = pd.read_parquet(path)
    y = frame[label].to_numpy()
    champion = registry.load(name, champion_v)
    challenger = registry.load(name, challenger_v)
    out_a, classes_a = _outputs(champion, frame, label)
    out_b, classes_b = _outputs(challenger, frame, label)
    if classes_a != classes_b:
        raise InvalidInputError(
            f"champion v{champion_v} predicts classes {classes_a} and challenger "
            f"v{challenger_v} {classes_b}; the gate compares models of one task",
            field="challenger_version",
        )
    if classes_a is not None:
        y = y.astype(np.asarray(classes_a).dtype, copy=False)
    slice_values = {}
    for column in config.slices:
        col = frame[column]
        numeric = pd.api.types.is_numeric_dtype(col)
        slice_values[column] = (
            col.to_numpy() if numeric else col.astype("string").fillna("null").to_numpy(str)
        )
    comparison = compare_models(
        y, out_a, out_b, classes=classes_a, slices=slice_values, config=config
    )
    result = GateResult(
        passed=comparison.passed,
        criteria=comparison.criteria,
        tests=comparison.tests,
        snapshot_path=str(path),
        snapshot_sha256=digest,
        champion_version=champion_v,
        challenger_version=challenger_v,
        model=name,
        metric=comparison.metric,
        primary_test=comparison.primary_test,
        champion_score=comparison.champion_score,
        challenger_score=comparison.challenger_score,
        improvement=comparison.improvement,
        n_rows=comparison.n,
        recorded=record,
    )
    if record:
        record_blessing(registry, name, result)
    return result


__all__ = ["offline_gate"]
