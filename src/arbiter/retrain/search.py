"""Retraining: a seeded Optuna search over a model space, each trial an MLflow run.

:func:`retrain` cross-validates candidates on the training data (plus recent labelled
traffic, if given), refits the best on all of it and registers it as a new version with the
``challenger`` alias. It prints nothing: progress goes to an optional ``on_trial`` callback,
so the same call works in a notebook and behind the CLI's progress bar.

The registered model takes the RAW columns: it is a scikit-learn ``Pipeline`` whose first step
encodes numeric, categorical and text columns and imputes missing values
(:mod:`arbiter.retrain.encoding`), logged with a signature naming string and nullable columns
so the gateway validates and serves the rows clients send.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arbiter.errors import ArbiterError, InvalidInputError
from arbiter.registry.mlflow_registry import DEFAULT_EXPERIMENT, MLflowRegistry
from arbiter.retrain.objective import CVObjective
from arbiter.retrain.space import (
    ModelFactory,
    SpaceName,
    Task,
    extra_requirements,
    model_space,
    weighting_for,
)
from arbiter.retrain.study import (
    ATTR_MODEL,
    ATTR_PARENT_RUN,
    ATTR_SEARCH_ID,
    ATTR_VERSION,
    SearchWorker,
    close_storage,
    open_study,
    run_workers,
    search_pruner,
    storage_for,
    study_name_for,
    wait_for_running,
    wait_for_user_attr,
)
from arbiter.retrain.table import (
    TrainingTable,
    input_schema,
    prepare_table,
    search_rows_of,
    validation_folds,
)
from arbiter.retrain.tracking import (
    CV_MEAN,
    CV_STD,
    SEARCH_ID_TAG,
    MLflowTrialLogger,
    TrialSummary,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: Model version tags written by :func:`retrain`.
TAG_PARENT_RUN = "arbiter.retrain.parent_run_id"
TAG_METRIC = "arbiter.retrain.metric"
TAG_CV_SCORE = "arbiter.retrain.cv_score"
TAG_N_ROWS = "arbiter.retrain.n_rows"
TAG_N_TRAFFIC_ROWS = "arbiter.retrain.n_traffic_rows"
TAG_STUDY = "arbiter.retrain.study"
TAG_ROWS_WITH_GAPS = "arbiter.retrain.n_rows_with_gaps"
TAG_TIME_COLUMN = "arbiter.retrain.time_column"
TAG_THRESHOLD = "arbiter.retrain.threshold"
TAG_N_SEARCH_ROWS = "arbiter.retrain.n_search_rows"

#: Rows the search scores its trials on by default (see :func:`search_rows_of`); the best
#: trial is refitted on every row.
DEFAULT_SEARCH_ROWS = 200_000

# Scorers whose value does not depend on a decision threshold: tuning one for them is moot.
_RESPONSE_METHODS_WITHOUT_THRESHOLD = ("predict_proba", "decision_function")

# How long the creator of a shared study waits for trials still running on other hosts, and
# how long a joining process waits for the creator to record the search's MLflow run.
_WAIT_FOR_OTHER_HOSTS_S = 600.0
_WAIT_FOR_CREATOR_S = 60.0


@dataclass(frozen=True, slots=True)
class RetrainResult:
    """What :func:`retrain` registered and how it was chosen.

    ``best_score`` is the mean cross-validated ``metric`` of the best trial (higher is better:
    error metrics are negated, as sklearn's ``neg_*`` scorers do). ``duration`` is in seconds.
    For a shared search, ``study`` names the Optuna study and ``n_trials`` counts the scored
    trials of every process; ``joined`` is true when this process joined a study another one
    created (which registers: ``version`` is empty until it has), and ``trial_run_ids`` is
    empty when the trials ran in worker processes.

    ``missing`` counts, per column, the training rows that lacked a value (kept and imputed
    by the pipeline; columns without gaps are left out) and ``n_rows_with_gaps`` the rows
    lacking at least one. ``column_kinds`` is how each raw column was encoded.
    ``n_search_rows`` is how many rows the trials were scored on (a subset of the
    ``n_rows`` the registered model was refitted on when the table is larger than
    ``search_rows``: see :func:`~arbiter.retrain.table.search_rows_of`), ``n_pruned`` how
    many trials the pruner stopped after some of their folds.
    ``threshold`` is the decision threshold tuned for ``threshold_metric`` (binary
    classification with ``tune_threshold``), which the registered model's ``predict``
    applies; ``None`` means the estimator's own (0.5 on the probability).
    """

    version: str
    best_params: dict[str, Any]
    best_score: float
    n_trials: int
    search_id: str
    duration: float
    best_score_std: float = math.nan
    metric: str = ""
    task: str = ""
    alias: str = "challenger"
    n_rows: int = 0
    n_traffic_rows: int = 0
    parent_run_id: str = ""
    trial_run_ids: tuple[str, ...] = field(default_factory=tuple)
    profile_logged: bool = False
    study: str = ""
    joined: bool = False
    n_rows_with_gaps: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    column_kinds: dict[str, str] = field(default_factory=dict)
    time_column: str = ""
    class_weights: bool = False
    threshold: float | None = None
    threshold_metric: str = ""
    n_search_rows: int = 0
    n_pruned: int = 0

    @property
    def search_note(self) -> str:
        """``"searched on 200,000 of 1,000,000 rows; refit on all"`` (or on every row)."""
        if self.n_search_rows and self.n_search_rows < self.n_rows:
            return (
                f"searched on {self.n_search_rows:,} of {self.n_rows:,} rows; "
                "the best refitted on all"
            )
        return f"searched and refitted on all {self.n_rows:,} rows"

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a dict of plain Python values."""
        out = asdict(self)
        out["trial_run_ids"] = list(self.trial_run_ids)
        return out


def infer_task(y: np.ndarray) -> Task:
    """``"classification"`` for binary/multi-class targets, else ``"regression"``."""
    from sklearn.utils.multiclass import type_of_target

    kind = type_of_target(y)
    if kind in ("binary", "multiclass"):
        return "classification"
    if kind in ("continuous",):
        return "regression"
    raise InvalidInputError(f"cannot train on a {kind!r} target", field="y")


def default_metric(task: Task, y: np.ndarray) -> str:
    """``roc_auc`` (binary), ``roc_auc_ovr`` (multi-class), ``neg_root_mean_squared_error``."""
    if task == "regression":
        return "neg_root_mean_squared_error"
    return "roc_auc" if np.unique(y).size <= 2 else "roc_auc_ovr"


def _threshold_metric(tune: bool | str, metric: str, task: Task, labels: np.ndarray) -> str:
    """The scorer a decision threshold is tuned for, or "" (no tuning)."""
    from sklearn.metrics import get_scorer

    if tune is False or tune is None or tune == "":
        return ""
    if task != "classification" or np.unique(labels).size != 2:
        raise InvalidInputError(
            "a decision threshold is tuned for binary classification only", field="tune_threshold"
        )
    name = metric if tune is True else str(tune)
    try:
        scorer = get_scorer(name)
    except ValueError as exc:
        raise InvalidInputError(
            f"unknown threshold metric {name!r}: use a scikit-learn scorer name (f1, "
            "balanced_accuracy, ...)",
            field="tune_threshold",
        ) from exc
    response = getattr(scorer, "_response_method", "predict")
    if not isinstance(response, str):
        response = response[0]
    if response in _RESPONSE_METHODS_WITHOUT_THRESHOLD:
        raise InvalidInputError(
            f"{name} does not depend on the decision threshold; tune it for a label metric "
            "(--threshold-metric f1, balanced_accuracy, precision, recall ...)",
            field="tune_threshold",
        )
    return name


def _with_threshold(estimator: Any, scoring: str, table: TrainingTable, seed: int) -> Any:
    """``estimator`` behind a decision threshold tuned by cross-validation for ``scoring``.

    ``TunedThresholdClassifierCV`` (scikit-learn >= 1.5) tunes the cut on
    ``predict_proba`` over internal folds (time-ordered when the table is), refits on all
    rows and applies the threshold in ``predict``; ``predict_proba`` is the pipeline's own,
    so scores logged by the gateway are unchanged.
    """
    from sklearn.model_selection import TunedThresholdClassifierCV

    folds = validation_folds(table, "classification", 3, seed)
    return TunedThresholdClassifierCV(estimator, scoring=scoring, cv=folds, random_state=seed)


def _training_output(estimator: Any, matrix: np.ndarray) -> np.ndarray:
    """What the model outputs on its training rows: P(positive) for binary classifiers."""
    proba = getattr(estimator, "predict_proba", None)
    classes = getattr(estimator, "classes_", None)
    if proba is not None and classes is not None and len(classes) == 2:
        return np.asarray(proba(matrix))[:, 1]
    return np.asarray(estimator.predict(matrix))


def _store_reference_profile(
    registry: MLflowRegistry,
    name: str,
    version: str,
    frame: pd.DataFrame,
    prediction: np.ndarray,
    metadata: dict[str, str],
    kinds: dict[str, str] | None = None,
) -> bool:
    """Hook: store the training data's drift reference profile with the new version.

    Uses :func:`arbiter.drift.build_profile` on the raw (mixed) frame with the column kinds
    retraining used, and :func:`arbiter.registry.profiles.log_profile` (the profile goes on
    the version's run); returns whether a profile was stored; without :mod:`arbiter.drift`,
    nothing. A ``build_profile`` that refuses a kind (an older drift package without text
    columns) profiles the columns it takes and logs which it left out.
    """
    try:
        from arbiter.drift import build_profile
        from arbiter.registry.profiles import log_profile
    except ImportError:
        log.debug("arbiter.drift is not available: no reference profile stored")
        return False
    kinds = dict(kinds or {})
    try:
        profile = build_profile(frame, prediction=prediction, metadata=metadata, kinds=kinds)
    except (InvalidInputError, ValueError, TypeError) as exc:
        keep = [c for c, k in kinds.items() if k != "text"]
        log.warning(
            "the drift profile refused the mixed table (%s); profiling %s without the text columns",
            exc,
            name,
        )
        profile = build_profile(
            frame[keep],
            prediction=prediction,
            metadata=metadata,
            kinds={c: kinds[c] for c in keep},
        )
    log_profile(registry.tracking_uri, name, version, profile, registry_uri=registry.registry_uri)
    return True


@dataclass
class _SharedSearch:
    """The shell around a shared study: its storage, name, and the search's MLflow run."""

    study: Any
    study_name: str
    storage_url: str
    created: bool
    search_id: str
    parent_run_id: str
    storage: Any = None
    _tmp: Any = None  # keeps a temporary journal folder alive for the search

    @classmethod
    def open(
        cls,
        registry: MLflowRegistry,
        name: str,
        frame: pd.DataFrame,
        labels: np.ndarray,
        run_params: dict[str, Any],
        *,
        storage: str | None,
        study_name: str | None,
        seed: int,
        experiment: str,
    ) -> _SharedSearch:
        import optuna

        tmp = None
        if storage is None:  # workers on this host only: a journal file they all open
            tmp = tempfile.TemporaryDirectory(prefix="arbiter-study-")
            storage = str(Path(tmp.name) / "study.log")
        study_name = study_name or study_name_for(name, frame, labels, run_params)
        optuna_storage = storage_for(storage)
        try:
            study, created = open_study(
                optuna_storage, study_name, sampler=optuna.samplers.TPESampler(seed=seed)
            )
        except BaseException:
            close_storage(optuna_storage)
            raise
        if created:
            search_id = uuid.uuid4().hex
            parent_run_id = registry.start_run(
                run_name=f"retrain-{name}",
                params=run_params,
                tags={SEARCH_ID_TAG: search_id, "arbiter.model": name, TAG_STUDY: study_name},
                experiment=experiment,
            )
            study.set_user_attr(ATTR_MODEL, name)
            study.set_user_attr(ATTR_SEARCH_ID, search_id)
            study.set_user_attr(ATTR_PARENT_RUN, parent_run_id)
        else:
            parent_run_id = wait_for_user_attr(study, ATTR_PARENT_RUN, timeout=_WAIT_FOR_CREATOR_S)
            search_id = study.user_attrs[ATTR_SEARCH_ID]
            if study.user_attrs.get(ATTR_MODEL) != name:
                raise InvalidInputError(
                    f"study {study_name!r} searches for model "
                    f"{study.user_attrs.get(ATTR_MODEL)!r}, not {name!r}; pass another --study",
                    field="--study",
                )
        log.info("study %s (%s)", study_name, "created" if created else "joined")
        return cls(
            study, study_name, storage, created, search_id, parent_run_id, optuna_storage, tmp
        )

    def close(self) -> None:
        """Release the storage's connections and the temporary journal, if any."""
        close_storage(self.storage)
        if self._tmp is not None:
            self._tmp.cleanup()

    def joined_result(
        self, name: str, metric: str, task: str, alias: str, duration: float
    ) -> RetrainResult:
        """What a joining process reports: the study's state; the creator registers."""
        complete = [t for t in self.study.trials if t.state.name == "COMPLETE"]
        best = max(complete, key=lambda t: t.value) if complete else None
        return RetrainResult(
            version=str(self.study.user_attrs.get(ATTR_VERSION, "")),
            best_params=dict(best.params) if best else {},
            best_score=float(best.value) if best else math.nan,
            n_trials=len(complete),
            search_id=self.search_id,
            duration=duration,
            best_score_std=float(best.user_attrs.get(CV_STD, math.nan)) if best else math.nan,
            metric=metric,
            task=task,
            alias=alias,
            parent_run_id=self.parent_run_id,
            study=self.study_name,
            joined=True,
        )


def retrain(
    registry: MLflowRegistry,
    name: str,
    x: pd.DataFrame,
    y: Any,
    *,
    traffic: tuple[pd.DataFrame, Any] | None = None,
    search: SpaceName | ModelFactory = "all",
    metric: str | None = None,
    task: Task | None = None,
    n_trials: int | None = 20,
    timeout: float | None = None,
    cv: int = 5,
    seed: int = 0,
    alias: str = "challenger",
    experiment: str = DEFAULT_EXPERIMENT,
    on_trial: Callable[[TrialSummary], None] | None = None,
    reference_profile: bool = True,
    n_jobs: int = 1,
    storage: str | None = None,
    study_name: str | None = None,
    workers: int = 1,
    categorical: Sequence[str] = (),
    text: Sequence[str] = (),
    time_column: str | None = None,
    class_weights: bool = True,
    tune_threshold: bool | str = False,
    search_rows: int | None = DEFAULT_SEARCH_ROWS,
    prune: bool = True,
) -> RetrainResult:
    """Search a model space with Optuna, register the best model as ``name@alias``.

    Parameters
    ----------
    registry : MLflowRegistry
        Where trial runs are logged and the new version is registered.
    name : str
        Registered model name.
    x : pandas.DataFrame
        Training features, raw: numeric, categorical (strings, booleans) and free-text
        columns, with missing values (imputed in the pipeline, never dropped). Their names
        and types become the model's signature.
    y : array-like
        Training labels or targets.
    traffic : (DataFrame, array), optional
        Labelled production rows to train on as well (see :func:`labelled_traffic`); aligned
        to ``x``'s columns; a feature a row lacks is imputed like any other gap.
    search : {"sklearn", "lightgbm", "xgboost", "all"} or callable, default "all"
        A built-in space (:func:`model_space`; ``"all"`` includes XGBoost when installed) or
        a factory ``trial -> estimator``; a factory's estimator is fitted on the raw
        DataFrame (a float matrix when every column is numeric) and must encode it itself.
    metric : str, optional
        A scikit-learn scorer name. Default: ``roc_auc`` for binary classification,
        ``roc_auc_ovr`` for multi-class, ``neg_root_mean_squared_error`` for regression.
    task : {"classification", "regression"}, optional
        Inferred from ``y`` by default.
    n_trials, timeout : optional
        Stop after this many trials or seconds, whichever comes first (at least one of them).
    cv : int, default 5
        Cross-validation folds (stratified for classification, shuffled with ``seed``;
        time-ordered with ``time_column``).
    seed : int, default 0
        Seeds the TPE sampler, the folds and the estimators: same data and seed, same result.
    alias : str, default "challenger"
        Alias given to the new version.
    experiment : str
        MLflow experiment of the runs.
    on_trial : callable, optional
        Called with a :class:`TrialSummary` after each trial (progress bars).
    reference_profile : bool, default True
        Store the training data's drift profile with the version (when :mod:`arbiter.drift`
        is available).
    n_jobs : int, default 1
        Parallel folds in ``cross_val_score``.
    storage : str, optional
        Share the search through this Optuna storage: a database URL (``postgresql://...``)
        for several hosts, or a journal file path. ``n_trials`` is then the study's total.
        Processes that join a study someone else created contribute trials and return a
        result with ``joined=True`` and no version; the creator registers the best trial.
    study_name : str, optional
        The shared study; default :func:`~arbiter.retrain.study.study_name_for` (the same
        for the same model, data and settings, so other hosts join it).
    workers : int, default 1
        Processes on this host working on the study (more than one implies a shared study,
        in a temporary journal file when no ``storage`` is given).
    categorical, text : sequence of str
        Columns encoded as categories / free text whatever their values look like (by
        default :func:`arbiter.column_kinds.column_kinds` decides).
    time_column : str, optional
        Column of ``x`` that orders rows in time: folds train on the past and validate on the
        future (``TimeSeriesSplit``), as production will. It is not a feature.
    class_weights : bool, default True
        Weigh classes inversely to their frequency (``class_weight="balanced"``, XGBoost's
        ``scale_pos_weight``), so a rare positive class is not ignored.
    tune_threshold : bool or str, default False
        Binary classification: tune the decision threshold of the registered model for the
        configured ``metric`` (True) or for the scorer named (``"f1"``); its ``predict``
        applies it. Threshold-free metrics (``roc_auc``) are refused.
    search_rows : int or None, default 200,000
        Score the trials on at most this many rows: the most recent ones with
        ``time_column``, else a stratified (classification) or uniform sample, seeded
        (:func:`~arbiter.retrain.table.search_rows_of`). The best trial is then refitted on
        every row. ``None`` or 0: search on every row. Recorded on the search's run
        (``search_rows``, ``n_search_rows``) and the version (``arbiter.retrain.n_search_rows``).
    prune : bool, default True
        Let Optuna's ``MedianPruner`` stop a trial after a fold whose running mean score is
        below the median of earlier trials at that fold (the first 5 trials run in full).
        Pruned trials are logged (state ``PRUNED``) and never chosen.

    Returns
    -------
    RetrainResult

    Raises
    ------
    InvalidInputError
        Bad data, space, metric or limits.
    RegistryError
        MLflow failed; the search's parent run is marked FAILED.
    """
    import optuna
    from sklearn.metrics import get_scorer

    if n_trials is None and timeout is None:
        raise InvalidInputError("give n_trials or timeout (or both)", field="n_trials")
    if n_trials is not None and n_trials < 1:
        raise InvalidInputError(f"n_trials must be >= 1, got {n_trials}", field="n_trials")
    if cv < 2:
        raise InvalidInputError(f"cv must be >= 2 folds, got {cv}", field="cv")
    if workers < 1:
        raise InvalidInputError(f"workers must be >= 1, got {workers}", field="workers")
    if search_rows is not None and search_rows < 0:
        raise InvalidInputError(
            f"search_rows must be >= 0 (0: every row), got {search_rows}", field="search_rows"
        )
    if (storage is not None or workers > 1) and n_trials is None:
        raise InvalidInputError(
            "a shared search needs n_trials (the study's total)", field="n_trials"
        )
    started = time.perf_counter()
    table = prepare_table(
        x, y, traffic=traffic, categorical=categorical, text=text, time_column=time_column
    )
    frame, labels, n_traffic = table.features, table.labels, table.n_traffic
    task = task or infer_task(labels)
    metric = metric or default_metric(task, labels)
    try:
        get_scorer(metric)
    except ValueError as exc:
        raise InvalidInputError(
            f"unknown metric {metric!r}: use a scikit-learn scorer name (roc_auc, accuracy, "
            "neg_root_mean_squared_error, ...)",
            field="metric",
        ) from exc
    threshold_metric = _threshold_metric(tune_threshold, metric, task, labels)
    weights = weighting_for(labels, balanced=class_weights and task == "classification")
    factory = (
        search
        if callable(search)
        else model_space(search, task=task, seed=seed, layout=table.layout, weights=weights)
    )
    space_name = search if isinstance(search, str) else getattr(search, "__name__", "custom")
    matrix = table.model_input
    rows = search_rows_of(table, task, search_rows, seed)
    searched = table if rows.size == table.n_rows else table.take(rows)
    if searched is not table:
        log.info("searching on %d of %d rows; the best refitted on all", rows.size, len(frame))
    search_matrix = matrix if searched is table else searched.model_input
    folds = validation_folds(searched, task, cv, seed)
    run_params = {
        "search": space_name,
        "metric": metric,
        "task": task,
        "n_trials": n_trials,
        "timeout": timeout,
        "cv": cv,
        "seed": seed,
        "n_rows": len(frame),
        "n_traffic_rows": n_traffic,
        "n_rows_with_gaps": table.n_rows_with_gaps,
        "time_column": time_column,
        "class_weights": weights.class_weight is not None,
        "threshold_metric": threshold_metric or None,
        "column_kinds": ",".join(f"{c}:{k}" for c, k in table.layout.kind_of().items()),
        "search_rows": search_rows or None,
        "n_search_rows": searched.n_rows,
        "prune": prune,
    }
    shared = None
    if storage is not None or workers > 1:
        shared = _SharedSearch.open(
            registry, name, frame, labels, run_params,
            storage=storage, study_name=study_name, seed=seed, experiment=experiment,
        )  # fmt: skip
        search_id, parent_run_id = shared.search_id, shared.parent_run_id
    else:
        search_id = uuid.uuid4().hex
        parent_run_id = registry.start_run(
            run_name=f"retrain-{name}",
            params=run_params,
            tags={SEARCH_ID_TAG: search_id, "arbiter.model": name},
            experiment=experiment,
        )
    trial_logger = MLflowTrialLogger(
        registry, parent_run_id, search_id, model=name, metric=metric, experiment=experiment
    )
    objective = CVObjective(factory, search_matrix, searched.labels, metric, folds, n_jobs=n_jobs)

    def report(study: Any, trial: Any) -> None:
        if on_trial is None:
            return
        try:
            best = float(study.best_value)
        except ValueError:  # no complete trial yet
            best = None
        on_trial(
            TrialSummary(
                number=trial.number,
                state=trial.state.name,
                value=trial.value,
                cv_std=trial.user_attrs.get(CV_STD),
                params=dict(trial.params),
                duration_s=trial.duration.total_seconds() if trial.duration else 0.0,
                best_value=best,
                n_finished=len(study.trials),
                run_id=trial_logger.run_ids.get(trial.number),
            )
        )

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no per-trial INFO lines on stderr
    try:
        if shared is None:
            study = optuna.create_study(
                direction="maximize",
                sampler=optuna.samplers.TPESampler(seed=seed),
                pruner=search_pruner(prune),
                study_name=search_id,
            )
            study.optimize(
                objective, n_trials=n_trials, timeout=timeout, callbacks=[trial_logger, report]
            )
        else:
            study = shared.study
            worker = SearchWorker(
                storage=shared.storage_url,
                study_name=shared.study_name,
                search=search,
                task=task,
                seed=seed,
                matrix=search_matrix,
                labels=searched.labels,
                metric=metric,
                folds=folds,
                n_jobs=n_jobs,
                n_trials=n_trials,
                timeout=timeout,
                tracking_uri=registry.tracking_uri,
                registry_uri=registry.registry_uri,
                artifact_location=registry.artifact_location,
                parent_run_id=parent_run_id,
                search_id=search_id,
                model=name,
                experiment=experiment,
                layout=table.layout,
                weights=weights,
                prune=prune,
            )
            run_workers(worker, workers, study, on_trial)
            if not shared.created:
                duration = time.perf_counter() - started
                return shared.joined_result(name, metric, task, alias, duration)
            wait_for_running(study, n_trials, timeout=_WAIT_FOR_OTHER_HOSTS_S)
        complete = [t for t in study.trials if t.state.name == "COMPLETE"]
        if not complete:
            raise ArbiterError(
                f"no trial of the search finished (timeout {timeout} s); allow more time"
            )
        best = study.best_trial
        estimator = factory(optuna.trial.FixedTrial(best.params, number=best.number))
        if threshold_metric:
            estimator = _with_threshold(estimator, threshold_metric, table, seed)
        estimator.fit(matrix, labels)
        threshold = getattr(estimator, "best_threshold_", None)
        version = registry.log_sklearn_model(
            name,
            estimator,
            frame.head(5),
            aliases=(alias,),
            params=best.params,
            metrics={
                f"cv_{metric}_mean": best.user_attrs[CV_MEAN],
                f"cv_{metric}_std": best.user_attrs[CV_STD],
            },
            tags={
                SEARCH_ID_TAG: search_id,
                TAG_PARENT_RUN: parent_run_id,
                TAG_METRIC: metric,
                TAG_CV_SCORE: repr(float(best.value)),
                TAG_N_ROWS: str(len(frame)),
                TAG_N_TRAFFIC_ROWS: str(n_traffic),
                TAG_ROWS_WITH_GAPS: str(table.n_rows_with_gaps),
                TAG_N_SEARCH_ROWS: str(searched.n_rows),
                **({TAG_STUDY: shared.study_name} if shared is not None else {}),
                **({TAG_TIME_COLUMN: time_column} if time_column else {}),
                **({TAG_THRESHOLD: repr(float(threshold))} if threshold is not None else {}),
            },
            experiment=experiment,
            extra_pip_requirements=extra_requirements(estimator),
            input_schema=input_schema(table),
        )
        if shared is not None:
            study.set_user_attr(ATTR_VERSION, version)
        profile_logged = reference_profile and _store_reference_profile(
            registry,
            name,
            version,
            frame,
            _training_output(estimator, matrix),
            {"model": name, "version": version, SEARCH_ID_TAG: search_id},
            kinds=dict(table.layout.kind_of()),
        )
    except BaseException:
        if shared is None or shared.created:
            try:
                registry.end_run(parent_run_id, status="FAILED")
            except Exception:  # keep the original error; this one is only worth a log line
                log.warning("could not mark run %s as FAILED", parent_run_id, exc_info=True)
        raise
    finally:
        optuna.logging.set_verbosity(verbosity)
        if shared is not None:
            shared.close()
    duration = time.perf_counter() - started
    registry.end_run(
        parent_run_id,
        metrics={f"best_cv_{metric}": float(best.value), "duration_s": duration},
        tags={"arbiter.best_version": version, "arbiter.best_trial": str(best.number)},
    )
    return RetrainResult(
        version=version,
        best_params=dict(best.params),
        best_score=float(best.value),
        n_trials=len(complete),
        search_id=search_id,
        duration=duration,
        best_score_std=float(best.user_attrs[CV_STD]),
        metric=metric,
        task=task,
        alias=alias,
        n_rows=len(frame),
        n_traffic_rows=n_traffic,
        parent_run_id=parent_run_id,
        trial_run_ids=tuple(trial_logger.run_ids[n] for n in sorted(trial_logger.run_ids)),
        profile_logged=profile_logged,
        study=shared.study_name if shared is not None else "",
        n_rows_with_gaps=table.n_rows_with_gaps,
        missing=dict(table.missing),
        column_kinds=dict(table.layout.kind_of()),
        time_column=time_column or "",
        class_weights=weights.class_weight is not None,
        threshold=None if threshold is None else float(threshold),
        threshold_metric=threshold_metric,
        n_search_rows=searched.n_rows,
        # Trials numbered past n_trials were pruned unscored in a race for the last one.
        n_pruned=sum(
            t.state.name == "PRUNED" and (n_trials is None or t.number < n_trials)
            for t in study.trials
        ),
    )


__all__ = [
    "RetrainResult",
    "TrainingTable",
    "default_metric",
    "infer_task",
    "prepare_table",
    "retrain",
    "validation_folds",
]
