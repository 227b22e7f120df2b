"""The search objective: the mean cross-validated score of one trial's estimator.

A class rather than a closure so that worker processes of a shared search
(:mod:`arbiter.retrain.study`) can receive it pickled, and so that the in-process search and
every worker score trials with exactly the same code.

Two things keep a search on a large table affordable without changing what a trial scores:

- **The column preparation is fitted once per fold, not once per trial.** Every built-in
  estimator is ``Pipeline([...preparation steps..., ("model", estimator)])`` and only the
  model's hyperparameters are searched: the preparation of a family (imputation, one-hot or
  ordinal codes, TF-IDF/SVD of the text) is the same in every trial of that family. Its
  fitted output on each fold is cached, keyed by the fold and the preparation's parameters
  (``joblib.hash``), so trial 2 of LightGBM fits only the booster. This is what
  ``Pipeline(memory=...)`` does, kept in memory and keyed by the fold index instead of by a
  hash of a 200,000-row DataFrame at every fit.
- **Folds are scored one after the other and reported to Optuna**, so the study's pruner
  (``MedianPruner``) can stop a trial whose first folds already score below the median of
  earlier trials at the same fold: a hopeless trial does not pay for its other folds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arbiter.retrain.space import ModelFactory
from arbiter.retrain.tracking import CV_FOLDS_SCORED, CV_MEAN, CV_STD

#: Distinct preparations kept in the cache (one per built-in family kind: linear, trees,
#: LightGBM's categorical frame, plus one). A custom space that searches its preparation's
#: parameters would otherwise grow the cache with every trial; the oldest one is dropped.
MAX_CACHED_PREPARATIONS = 4


def split_pipeline(estimator: Any) -> tuple[Any, Any] | None:
    """``(preparation, model)`` of a multi-step ``Pipeline``; ``None`` for anything else."""
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, Pipeline) or len(estimator.steps) < 2:
        return None
    return Pipeline(estimator.steps[:-1]), estimator.steps[-1][1]


def _take(data: Any, rows: np.ndarray) -> Any:
    return data.iloc[rows] if hasattr(data, "iloc") else data[rows]


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
        Parallel folds. With 1 (the default) folds run in sequence and each is reported to
        the study's pruner; with more, they run in parallel and the trial is never pruned.
    max_trials : int, optional
        In a shared study, trial numbers are handed out by the storage in order: a trial whose
        number is ``>= max_trials`` was asked for after the study already had its trials (two
        workers asked at once). It is pruned without training and its worker stops, so the
        study ends with exactly ``max_trials`` scored trials.
    cache_preparation : bool
        Fit each distinct preparation once per fold and reuse its output (see the module
        docstring). Off, every trial refits it (the scores are the same: the preparation is
        deterministic for a seed).
    """

    factory: ModelFactory
    matrix: Any  # the raw DataFrame, or a float matrix when every column is numeric
    labels: np.ndarray
    metric: str
    folds: Any
    n_jobs: int = 1
    max_trials: int | None = None
    cache_preparation: bool = True
    #: ``{(fold, hash of the preparation): (prepared train rows, prepared validation rows)}``
    cache: dict[tuple[int, str], tuple[Any, Any]] = field(
        default_factory=dict, compare=False, repr=False
    )
    #: Preparations fitted and cache hits, for tests and logs.
    stats: dict[str, int] = field(
        default_factory=lambda: {"fitted": 0, "reused": 0}, compare=False, repr=False
    )

    def __getstate__(self) -> dict[str, Any]:
        # A worker process starts with an empty cache: prepared folds are not worth pickling.
        state = dict(self.__dict__)
        state["cache"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __call__(self, trial: Any) -> float:
        import optuna

        if self.max_trials is not None and trial.number >= self.max_trials:
            trial.study.stop()
            raise optuna.TrialPruned(f"the study already has its {self.max_trials} trials")
        estimator = self.factory(trial)
        if self.n_jobs != 1:
            scores = self._parallel(estimator)
        else:
            scores = []
            for fold, (train, test) in enumerate(self.folds.split(self.matrix, self.labels)):
                scores.append(self._score_fold(estimator, fold, train, test))
                trial.report(float(np.mean(scores)), step=fold)
                trial.set_user_attr(CV_FOLDS_SCORED, len(scores))
                if trial.should_prune():
                    trial.set_user_attr(CV_MEAN, float(np.mean(scores)))
                    trial.set_user_attr(CV_STD, float(np.std(scores)))
                    raise optuna.TrialPruned(
                        f"mean score {np.mean(scores):.4f} after {len(scores)} folds is below "
                        "the median of earlier trials"
                    )
        trial.set_user_attr(CV_MEAN, float(np.mean(scores)))
        trial.set_user_attr(CV_STD, float(np.std(scores)))
        return float(np.mean(scores))

    def _parallel(self, estimator: Any) -> list[float]:
        from sklearn.model_selection import cross_val_score

        scores = cross_val_score(
            estimator,
            self.matrix,
            self.labels,
            scoring=self.metric,
            cv=self.folds,
            n_jobs=self.n_jobs,
            error_score="raise",
        )
        return [float(s) for s in scores]

    def _score_fold(self, estimator: Any, fold: int, train: np.ndarray, test: np.ndarray) -> float:
        import joblib
        from sklearn.base import clone
        from sklearn.metrics import get_scorer

        scorer = get_scorer(self.metric)
        y_train, y_test = self.labels[train], self.labels[test]
        parts = split_pipeline(estimator) if self.cache_preparation else None
        if parts is None:
            fitted = clone(estimator).fit(_take(self.matrix, train), y_train)
            return float(scorer(fitted, _take(self.matrix, test), y_test))
        preparation, model = parts
        digest = joblib.hash(preparation.get_params(deep=True))
        key = (fold, digest)
        prepared = self.cache.get(key)
        if prepared is None:
            self._make_room(digest)
            fitted_prep = clone(preparation)
            x_train = fitted_prep.fit_transform(_take(self.matrix, train), y_train)
            prepared = (x_train, fitted_prep.transform(_take(self.matrix, test)))
            self.cache[key] = prepared
            self.stats["fitted"] += 1
        else:
            self.stats["reused"] += 1
        fitted = clone(model).fit(prepared[0], y_train)
        return float(scorer(fitted, prepared[1], y_test))

    def _make_room(self, digest: str) -> None:
        """Drop the oldest preparation's folds if ``digest`` would exceed the cache's bound."""
        digests = list(dict.fromkeys(d for _, d in self.cache))  # insertion order
        if digest in digests or len(digests) < MAX_CACHED_PREPARATIONS:
            return
        for key in [k for k in self.cache if k[1] == digests[0]]:
            del self.cache[key]


__all__ = ["CV_FOLDS_SCORED", "CVObjective", "split_pipeline"]
