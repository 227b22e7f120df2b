"""A shared Optuna study: several processes, or several hosts, search one model space together.

Optuna keeps a study in a storage; every process that opens the same study name in the same
storage asks it for the next trial, and the storage hands out trial numbers in order under a
row lock. That is all a distributed search needs (what hyperopt's ``SparkTrials`` gives Spark
users), so arbiter adds no scheduler of its own:

- ``--storage postgresql://...`` (any SQLAlchemy URL Optuna's ``RDBStorage`` takes) shares the
  study across hosts; a file path uses Optuna's journal file (one host, or a shared disk);
- ``--workers N`` starts N processes on this host, each running :class:`SearchWorker`;
- the study name is derived from the model, the training data and the search settings
  (:func:`study_name_for`), so the same command on another host joins the same study.

The process that *created* the study registers the best trial once every trial is finished;
processes that joined only contribute trials. Trial numbers at or past the requested count are
pruned unscored (:class:`~arbiter.retrain.objective.CVObjective`), so the study ends with the
requested number of scored trials however many workers raced for the last one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import socket
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arbiter.errors import ArbiterError, InvalidInputError
from arbiter.redact import redact
from arbiter.retrain.encoding import TableLayout
from arbiter.retrain.objective import CVObjective
from arbiter.retrain.space import ModelFactory, Task, Weighting, model_space
from arbiter.retrain.tracking import CV_STD, MLflowTrialLogger, TrialSummary

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: Study user attributes: how joining processes find the search's MLflow parent run.
ATTR_SEARCH_ID = "arbiter.search_id"
ATTR_PARENT_RUN = "arbiter.parent_run_id"
ATTR_MODEL = "arbiter.model"
#: Set by the creating process once it registered the best trial.
ATTR_VERSION = "arbiter.version"

# SQLAlchemy's bare "postgresql://" means psycopg2; arbiter ships psycopg 3.
_PG_SCHEMES = ("postgresql://", "postgres://")


def storage_for(url: str) -> Any:
    """An Optuna storage for ``url``: a SQLAlchemy database URL or a journal file path.

    ``postgresql://`` URLs use psycopg 3 (``postgresql+psycopg://``). Errors name the storage
    with its password masked.
    """
    import optuna

    if "://" not in url:
        from optuna.storages.journal import JournalFileBackend

        path = Path(url).expanduser()
        if not path.parent.is_dir():
            raise InvalidInputError(
                f"the folder of the study journal {path.parent} does not exist", field="--storage"
            )
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    for scheme in _PG_SCHEMES:
        if url.lower().startswith(scheme):
            url = "postgresql+psycopg://" + url[len(scheme) :]
    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(url)
        except Exception as exc:
            # Two processes opening a fresh database race to create Optuna's tables; the loser
            # gets a duplicate-object error and finds the tables on the next attempt.
            if attempt == 2 or "already exists" not in str(exc).lower():
                raise InvalidInputError(
                    f"cannot open the study storage {redact(url)}: {redact(exc)}",
                    field="--storage",
                ) from exc
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


def close_storage(storage: Any) -> None:
    """Return a database storage's pooled connections (a no-op for journal files)."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def study_name_for(
    model: str, frame: pd.DataFrame, labels: np.ndarray, settings: dict[str, Any]
) -> str:
    """``arbiter-<model>-<digest>``: the same on every host given the same data and settings.

    The digest covers the training rows, the labels and the search settings (space, metric,
    task, folds, seed, number of trials), so a changed file or setting starts a new study
    instead of silently joining an old one, and re-running a finished command finds its study.
    """
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(pd.util.hash_pandas_object(pd.Series(labels), index=False).to_numpy().tobytes())
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return f"arbiter-{model}-{digest.hexdigest()[:12]}"


def worker_sampler(seed: int, worker: int) -> Any:
    """A TPE sampler for one worker: seeded per host and worker, lying about running trials.

    Workers seeded alike would try the same random start-up points; mixing in the host name
    and worker index keeps them apart. ``constant_liar`` makes TPE treat trials still running
    elsewhere as bad, so parallel workers do not all sample next to the same optimum.
    """
    import optuna

    host = zlib.crc32(socket.gethostname().encode())
    mixed = int(np.random.SeedSequence([seed, worker, host]).generate_state(1)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=mixed, constant_liar=True)


def search_pruner(prune: bool) -> Any:
    """The pruner of a search: ``MedianPruner`` over the CV folds, or none.

    A trial is stopped after a fold when its mean score so far is below the median of the
    earlier trials' at the same fold. The first 5 trials are never pruned (the median needs
    trials to be a median of), nor is any trial before its first fold is scored.
    """
    import optuna

    if not prune:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)


def open_study(storage: Any, name: str, *, sampler: Any, pruner: Any = None) -> tuple[Any, bool]:
    """Create the study ``name`` in ``storage``, or load it; also return whether we created it."""
    import optuna

    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction="maximize",
            sampler=sampler,
            pruner=pruner,
        )
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise InvalidInputError(
            f"study {name!r} exists and does not maximize a score; pass another --study",
            field="--study",
        )
    return study, False


def wait_for_user_attr(study: Any, key: str, *, timeout: float) -> Any:
    """The study's user attribute ``key``, waiting up to ``timeout`` s for its creator to set it."""
    deadline = time.monotonic() + timeout
    while True:
        value = study.user_attrs.get(key)
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise ArbiterError(
                f"study {study.study_name!r} has no {key!r}: it was not created by arbiter "
                "retrain, or its creator failed; pass another --study"
            )
        time.sleep(0.2)


def wait_for_running(study: Any, max_trials: int, *, timeout: float) -> None:
    """Wait until no trial numbered below ``max_trials`` is still running (on another host).

    After ``timeout`` seconds the search goes on with the finished trials: a worker killed in
    the middle of a trial leaves it ``RUNNING`` for ever.
    """
    from optuna.trial import TrialState

    deadline = time.monotonic() + timeout
    while True:
        running = [
            t.number
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.number < max_trials
        ]
        if not running:
            return
        if time.monotonic() >= deadline:
            log.warning("trials %s still running after %.0f s; going on", running, timeout)
            return
        time.sleep(0.5)


@dataclass(frozen=True)
class SearchWorker:
    """One worker of a shared search: open the study, run trials until it has ``n_trials``.

    Picklable (it is sent to ``spawn``-ed processes), so it carries the space's *name* and
    rebuilds the factory in the worker; a custom factory must be a module-level function.
    """

    storage: str
    study_name: str
    search: str | ModelFactory
    task: Task
    seed: int
    matrix: Any  # the raw DataFrame, or a float matrix when every column is numeric
    labels: np.ndarray
    metric: str
    folds: Any
    n_jobs: int
    n_trials: int
    timeout: float | None
    tracking_uri: str
    registry_uri: str
    artifact_location: str | None
    parent_run_id: str
    search_id: str
    model: str
    experiment: str
    layout: TableLayout | None = None
    weights: Weighting | None = None
    prune: bool = True

    def factory(self) -> ModelFactory:
        """The model factory of :attr:`search`."""
        if callable(self.search):
            return self.search
        return model_space(
            self.search,  # type: ignore[arg-type]
            task=self.task,
            seed=self.seed,
            layout=self.layout,
            weights=self.weights,
        )

    def __call__(self, worker: int, callbacks: tuple[Callable[..., Any], ...] = ()) -> int:
        """Run trials as worker number ``worker``; return how many finished in this process."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = storage_for(self.storage)
        try:
            return self._run(worker, storage, callbacks)
        finally:
            close_storage(storage)

    def _run(self, worker: int, storage: Any, callbacks: tuple[Callable[..., Any], ...]) -> int:
        import optuna
        from optuna.study import MaxTrialsCallback

        from arbiter.registry.mlflow_registry import MLflowRegistry

        registry = MLflowRegistry(
            self.tracking_uri,
            registry_uri=self.registry_uri,
            artifact_location=self.artifact_location,
        )
        study = optuna.load_study(
            study_name=self.study_name,
            storage=storage,
            sampler=worker_sampler(self.seed, worker),
            pruner=search_pruner(self.prune),
        )
        trial_logger = MLflowTrialLogger(
            registry,
            self.parent_run_id,
            self.search_id,
            model=self.model,
            metric=self.metric,
            experiment=self.experiment,
        )
        objective = CVObjective(
            self.factory(),
            self.matrix,
            self.labels,
            self.metric,
            self.folds,
            n_jobs=self.n_jobs,
            max_trials=self.n_trials,
        )
        if len(study.get_trials(deepcopy=False)) >= self.n_trials:
            return 0
        # MaxTrialsCallback (all states, running ones included) stops this worker once the
        # study has handed out its trials; the objective prunes any number asked for in a race.
        study.optimize(
            objective,
            n_trials=self.n_trials,
            timeout=self.timeout,
            callbacks=[trial_logger, MaxTrialsCallback(self.n_trials, states=None), *callbacks],
        )
        return len(trial_logger.run_ids)


def _summary(study: Any, trial: Any, n_finished: int) -> TrialSummary:
    try:
        best = float(study.best_value)
    except ValueError:  # no complete trial yet
        best = None
    return TrialSummary(
        number=trial.number,
        state=trial.state.name,
        value=trial.value,
        cv_std=trial.user_attrs.get(CV_STD),
        params=dict(trial.params),
        duration_s=trial.duration.total_seconds() if trial.duration else 0.0,
        best_value=best,
        n_finished=n_finished,
        run_id=None,
    )


def run_workers(
    worker: SearchWorker,
    workers: int,
    study: Any,
    on_trial: Callable[[TrialSummary], None] | None = None,
) -> None:
    """Run ``workers`` copies of ``worker`` (processes when more than one) until they stop.

    With one worker the trials run in this process. With more, they run in ``spawn``-ed
    processes (fork is unsafe beside MLflow's and SQLAlchemy's threads and pools) while this
    process polls the study to report progress; a worker's exception is re-raised here.
    """
    from optuna.trial import TrialState

    finished_states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

    def report(s: Any, trial: Any) -> None:
        if on_trial is not None:
            done = s.get_trials(deepcopy=False, states=finished_states)
            on_trial(_summary(s, trial, len(done)))

    if workers == 1:
        worker(0, callbacks=(report,))
        return
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    seen: set[int] = set()

    def poll() -> None:
        done = study.get_trials(deepcopy=False, states=finished_states)
        for trial in sorted(done, key=lambda t: t.number):
            if trial.number not in seen:
                seen.add(trial.number)
                if on_trial is not None:
                    on_trial(_summary(study, trial, len(seen)))

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(worker, index) for index in range(workers)]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            poll()
            failed = [f for f in futures if f.done() and f.exception() is not None]
            if failed:
                for f in pending:
                    f.cancel()
                raise failed[0].exception()  # type: ignore[misc]
    poll()


__all__ = [
    "ATTR_MODEL",
    "ATTR_PARENT_RUN",
    "ATTR_SEARCH_ID",
    "ATTR_VERSION",
    "SearchWorker",
    "close_storage",
    "open_study",
    "run_workers",
    "search_pruner",
    "storage_for",
    "study_name_for",
    "wait_for_running",
    "wait_for_user_attr",
    "worker_sampler",
]
