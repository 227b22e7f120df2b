"""Retraining: an Optuna search over a model space, every trial an MLflow run.

:func:`retrain` trains on the training data plus recent labelled traffic
(:func:`labelled_traffic`), registers the best model as a new version with the ``challenger``
alias and returns a :class:`RetrainResult`. See ``docs/retrain-and-gate.md``.
"""

from __future__ import annotations

from arbiter.retrain.search import RetrainResult, default_metric, infer_task, retrain
from arbiter.retrain.space import (
    SPACES,
    ModelFactory,
    Weighting,
    extra_requirements,
    families_of,
    model_space,
    weighting_for,
)
from arbiter.retrain.table import TrainingTable, prepare_table, validation_folds
from arbiter.retrain.tracking import SEARCH_ID_TAG, MLflowTrialLogger, TrialSummary
from arbiter.retrain.traffic import labelled_traffic

__all__ = [
    "SEARCH_ID_TAG",
    "SPACES",
    "MLflowTrialLogger",
    "ModelFactory",
    "RetrainResult",
    "TrainingTable",
    "TrialSummary",
    "Weighting",
    "default_metric",
    "extra_requirements",
    "families_of",
    "infer_task",
    "labelled_traffic",
    "model_space",
    "prepare_table",
    "retrain",
    "validation_folds",
    "weighting_for",
]
