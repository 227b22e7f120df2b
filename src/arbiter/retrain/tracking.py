"""Every Optuna trial as an MLflow run: a small study callback.

Optuna's own MLflow callback is deprecated in Optuna 5 and logs through MLflow's process-global
state; this one logs through :class:`~arbiter.registry.MLflowRegistry`, so it writes to the
registry it was given and nothing else. Each search gets a parent run; each trial a child run
tagged with the search id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from arbiter.registry.mlflow_registry import MLflowRegistry

#: Tag on the parent run and every trial run of one search.
SEARCH_ID_TAG = "arbiter.search_id"
TRIAL_TAG = "arbiter.trial"

# Trial user attributes the objective sets; logged as metrics.
CV_MEAN = "cv_mean"
CV_STD = "cv_std"
#: Trial user attribute and metric: how many folds were scored (fewer when pruned).
CV_FOLDS_SCORED = "cv_folds_scored"


@dataclass(frozen=True, slots=True)
class TrialSummary:
    """One finished trial, as reported to a progress callback."""

    number: int
    state: str  # "COMPLETE", "FAIL", "PRUNED"
    value: float | None
    cv_std: float | None
    params: dict[str, Any]
    duration_s: float
    best_value: float | None
    n_finished: int
    run_id: str | None


class MLflowTrialLogger:
    """Optuna study callback that logs each finished trial as a child run of ``parent_run_id``.

    Parameters
    ----------
    registry : MLflowRegistry
        Where runs are logged.
    parent_run_id : str
        The search's run.
    search_id : str
        Tagged on every trial run (:data:`SEARCH_ID_TAG`).
    model : str
        Registered model name, tagged as ``arbiter.model``.
    metric : str
        Name of the CV score (``roc_auc``); the metrics are ``cv_<metric>_mean``/``_std``.
    experiment : str
        MLflow experiment of the runs.
    """

    def __init__(
        self,
        registry: MLflowRegistry,
        parent_run_id: str,
        search_id: str,
        *,
        model: str,
        metric: str,
        experiment: str,
    ) -> None:
        self.registry = registry
        self.parent_run_id = parent_run_id
        self.search_id = search_id
        self.model = model
        self.metric = metric
        self.experiment = experiment
        self.run_ids: dict[int, str] = {}

    def __call__(self, study: Any, trial: Any) -> None:
        run_id = self.registry.start_run(
            run_name=f"trial-{trial.number}",
            params=trial.params,
            tags={
                SEARCH_ID_TAG: self.search_id,
                TRIAL_TAG: str(trial.number),
                "arbiter.model": self.model,
                "arbiter.trial_state": trial.state.name,
            },
            parent_run_id=self.parent_run_id,
            experiment=self.experiment,
        )
        metrics: dict[str, float] = {}
        for key, attr in ((f"cv_{self.metric}_mean", CV_MEAN), (f"cv_{self.metric}_std", CV_STD)):
            value = trial.user_attrs.get(attr)
            if value is not None and math.isfinite(value):
                metrics[key] = float(value)
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        if duration is not None:
            metrics["duration_s"] = duration
        folds = trial.user_attrs.get(CV_FOLDS_SCORED)
        if folds is not None:
            metrics[CV_FOLDS_SCORED] = float(folds)
        # A pruned trial did not fail: it was stopped on purpose after its first folds.
        status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}.get(trial.state.name, "FAILED")
        self.registry.end_run(run_id, metrics=metrics, status=status)
        self.run_ids[trial.number] = run_id


__all__ = [
    "CV_FOLDS_SCORED",
    "CV_MEAN",
    "CV_STD",
    "SEARCH_ID_TAG",
    "TRIAL_TAG",
    "MLflowTrialLogger",
    "TrialSummary",
]
