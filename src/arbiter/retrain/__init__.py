"""Retraining: an Optuna search over a model space, every trial an MLflow run.

:func:`retrain` trains on the training data plus recent labelled traffic
(:func:`labelled_traffic`), registers the best model as a new version with the ``challenger``
alias and returns a :class:`RetrainResult`. See ``docs/retrain-and-gate.md``.
"""

from __future__ import annotations

from arbiter.retrain.search import RetrainResult, default_metric, infer_task, retrain
from arbiter.retrain.space import SPACES, ModelFactory, extra_requirements, model_space
from arbiter.retrain.tracking import SEARCH_ID_TAG, MLflowTrialLogger, TrialSummary
from arbiter.retrain.traffic import labelled_traffic

__all__ = [
    "SEARCH_ID_TAG",
    "SPACES",
    "MLflowTrialLogger",
    "ModelFactory",
    "RetrainResult",
    "TrialSummary",
    "default_metric",
    "extra_requirements",
    "infer_task",
    "labelled_traffic",
    "model_space",
    "retrain",
]
