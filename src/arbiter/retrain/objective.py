"""The search objective: the mean cross-validated score of one trial's estimator.

A class rather than a closure so that worker processes of a shared search
(:mod:`arbiter.retrain.study`) can receive it pickled, and so that the in-process search and
every worker score trials with exactly the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from arbiter.retrain.space import ModelFactory
from arbiter.retrain.tracking import CV_MEAN, CV_STD


@dataclass(frozen=True)
class CVObjective:
    """``objective(trial) -> mean CV score`` for ``study.optimize``.

    Parameters
    ----------
    factory : callable
        ``trial -> unfitted estimator`` (see :mod:`arbiter.retrain.space`).
    matrix : DataFrame or numpy.ndarray
        Training rows: the raw DataFrame, or a float matrix when every column is numeric.
    labels : numpy.ndarray
        Their labels.
    metric : str
        scikit-learn scorer name (higher is better).
    folds : CV splitter
        Seeded, so every trial and every worker scores on the same folds.
    n_jobs : int
        Parallel folds in ``cross_val_score``.
    max_trials : int, optional
        In a shared study, trial numbers are handed out by the storage in order: a trial whose
        number is ``>= max_trials`` was asked for after the study already had its trials (two
        workers asked at once). It is pruned without training and its worker stops, so the
        study ends with exactly ``max_trials`` scored trials.
    """

    factory: ModelFactory
    matrix: Any  # the raw DataFrame, or a float matrix when every column is numeric
    labels: np.ndarray
    metric: str
    folds: Any
    n_jobs: int = 1
    max_trials: int | None = None

    def __call__(self, trial: Any) -> float:
        import optuna
        from sklearn.model_selection import cross_val_score

        if self.max_trials is not None and trial.number >= self.max_trials:
            trial.study.stop()
            raise optuna.TrialPruned(f"the study already has its {self.max_trials} trials")
        estimator = self.factory(trial)
        scores = cross_val_score(
            estimator,
            self.matrix,
            self.labels,
            scoring=self.metric,
            cv=self.folds,
            n_jobs=self.n_jobs,
            error_score="raise",
        )
        trial.set_user_attr(CV_MEAN, float(np.mean(scores)))
        trial.set_user_attr(CV_STD, float(np.std(scores)))
        return float(np.mean(scores))


__all__ = ["CVObjective"]
