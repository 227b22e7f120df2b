"""Experiments without a server: shadow and A/B tests in a notebook or a batch job.

Wraps any two objects with ``predict`` (and optionally ``predict_proba``/``classes_``), uses
the same routing core as the gateway, logs to the same event store, and reports with the same
SQL. So an experiment can start in a notebook and move behind the gateway unchanged::

    from arbiter import ShadowExperiment

    with ShadowExperiment(champion, challenger, home="./arbiter-home", model="fraud") as exp:
        answer = exp.predict(frame, unit_id="user-42")   # champion's predictions
        exp.feedback(answer.request_id, labels)           # later, when labels arrive
        exp.record_outcomes({"unit_id": "user-42", "event": "purchase", "value": 12.5})
        print(exp.report()["experiments"][0]["shadow"])   # agreement, accuracy, ...
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arbiter.config import ModelConfig
from arbiter.errors import InvalidInputError
from arbiter.prediction_log import RequestContext, encode_features, prediction_columns
from arbiter.request_ids import new_request_id
from arbiter.routing import CHALLENGER, CHAMPION
from arbiter.servable import Scored
from arbiter.strategies import spec_for
from arbiter.strategies.ab import ABExperimentConfig


@dataclass(frozen=True)
class Answer:
    """What :meth:`predict` returns: the served predictions and where they came from."""

    request_id: str
    arm: str
    predictions: list[Any]
    probabilities: np.ndarray | None
    classes: list[Any] | None


def _records(x: Any) -> tuple[Any, list[Mapping[str, Any]]]:
    """The model input and one mapping per row (for the log)."""
    import pandas as pd

    if isinstance(x, pd.DataFrame):
        return x, x.to_dict("records")
    if isinstance(x, Mapping):
        return pd.DataFrame([x]), [x]
    if isinstance(x, Sequence) and x and all(isinstance(r, Mapping) for r in x):
        return pd.DataFrame(list(x)), list(x)
    array = np.asarray(x)
    if array.ndim != 2:
        raise InvalidInputError(
            "X must be a DataFrame, a mapping, a list of mappings or a 2-D array", field="X"
        )
    return array, [{f"x{j}": v for j, v in enumerate(row)} for row in array.tolist()]


def _score(model: Any, x: Any) -> Scored:
    predictions = np.asarray(model.predict(x))
    proba = None
    classes = getattr(model, "classes_", None)
    if classes is not None and hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(x), dtype=np.float64)
    return Scored(
        predictions.tolist(), proba, None if classes is None else list(np.asarray(classes).tolist())
    )


class _Experiment:
    strategy = "none"

    def __init__(
        self,
        champion: Any,
        challenger: Any,
        *,
        home: str | Path = "./arbiter-home",
        model: str = "model",
        experiment: str | None = None,
        champion_version: str = "champion",
        challenger_version: str = "challenger",
        flush_interval: float = 0.5,
        seed: int | None = None,
    ) -> None:
        from arbiter.events import EventWriter
        from arbiter.events.location import open_event_store
        from arbiter.home import Home

        self.champion = champion
        self.challenger = challenger
        self.model = model
        self.experiment = experiment or f"{model}-{self.strategy}"
        self.versions = {CHAMPION: champion_version, CHALLENGER: challenger_version}
        self.store = open_event_store(Home.at(home, create=True))
        self.writer = EventWriter(self.store, flush_interval=flush_interval).start()
        self._rng = random.Random(seed)

    def _log(
        self,
        ctx: RequestContext,
        role: str,
        arm: str,
        features: list[str],
        scored: Scored | None,
        latency_ms: float,
        error: str | None,
    ) -> None:
        self.writer.append_predictions(
            prediction_columns(
                ctx,
                role=role,
                alias=arm,
                version=self.versions[arm],
                features_json=features,
                predictions=scored.predictions if scored else None,
                proba=scored.proba if scored else None,
                classes=scored.classes if scored else None,
                latency_ms=latency_ms,
                error=error,
            )
        )

    def _run(self, x: Any, unit_id: str | None, arm: str, random_unit: bool) -> Answer:
        model_input, rows = _records(x)
        features = encode_features(rows)
        ctx = RequestContext(
            request_id=new_request_id(),
            ts_us=time.time_ns() // 1000,
            model=self.model,
            experiment=self.experiment,
            strategy=self.strategy,
            unit_id=unit_id,
            unit_random=random_unit,
            arm=arm,
            protocol="inprocess",
        )
        served = self.champion if arm == CHAMPION else self.challenger
        start = time.perf_counter()
        try:
            scored = _score(served, model_input)
        except Exception as exc:
            self._log(
                ctx, "served", arm, features, None, _ms(start), f"{type(exc).__name__}: {exc}"
            )
            raise
        self._log(ctx, "served", arm, features, scored, _ms(start), None)
        self._after(ctx, model_input, features)
        return Answer(ctx.request_id, arm, scored.predictions, scored.proba, scored.classes)

    def _after(self, ctx: RequestContext, model_input: Any, features: list[str]) -> None:
        return None

    def feedback(self, request_id: str, labels: Any) -> int:
        """Store labels for the rows of an earlier :meth:`predict` (durable on return)."""
        values = labels if isinstance(labels, list | tuple | np.ndarray) else [labels]
        rows = [
            {"request_id": request_id, "row_index": i, "label": _plain(v)}
            for i, v in enumerate(values)
        ]
        return self.store.write_feedback(rows)

    def record_outcomes(self, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> int:
        """Store outcome events of units (purchases, sessions...); durable on return.

        The in-process twin of ``POST /outcomes``: ``{"unit_id": ..., "event": ...}`` plus
        optional ``value`` (default 1), ``ts`` (aware datetime or ISO string; default now) and
        ``request_id``. ``unit_id`` is the ``unit_id`` given to :meth:`predict`. All rows are
        validated first and stored together, or none (:class:`InvalidInputError` names the
        row, e.g. ``rows[3].value``). Returns the number of rows stored.
        """
        batch = [rows] if isinstance(rows, Mapping) else list(rows)
        return self.store.write_outcomes(batch)

    def report(self) -> dict[str, Any]:
        """The same summary ``arbiter report`` prints, for this experiment."""
        from arbiter.report.summary import summarize

        self.writer.flush()
        with self.store.connect() as con:
            return summarize(con, self.model, self.experiment)

    def close(self) -> None:
        """Flush every logged event to disk."""
        self.writer.close()

    def __enter__(self) -> _Experiment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ShadowExperiment(_Experiment):
    """The champion answers; the challenger scores the same input and is only logged.

    A challenger that raises is logged with its error and never reaches the caller.
    """

    strategy = "shadow"

    def predict(self, x: Any, unit_id: str | None = None) -> Answer:
        return self._run(x, unit_id, CHAMPION, random_unit=not unit_id)

    def _after(self, ctx: RequestContext, model_input: Any, features: list[str]) -> None:
        start = time.perf_counter()
        try:
            scored = _score(self.challenger, model_input)
        except Exception as exc:  # a failing shadow is data, not an error for the caller
            self._log(
                ctx,
                "shadow",
                CHALLENGER,
                features,
                None,
                _ms(start),
                f"{type(exc).__name__}: {exc}",
            )
            return
        self._log(ctx, "shadow", CHALLENGER, features, scored, _ms(start), None)


class ABExperiment(_Experiment):
    """Units are split between champion and challenger by the gateway's sticky hash."""

    strategy = "ab"

    def __init__(
        self, champion: Any, challenger: Any, *, share: float = 0.5, **kwargs: Any
    ) -> None:
        super().__init__(champion, challenger, **kwargs)
        # The ab strategy's own routing, built as the gateway builds it (arbiter.strategies).
        exp = ABExperimentConfig(name=self.experiment, challenger_share=share)
        self.routing = spec_for(self.strategy).routing(self.model, ModelConfig(experiment=exp))

    def predict(self, x: Any, unit_id: str | None = None) -> Answer:
        route = self.routing.route(unit_id, self._rng.random())
        return self._run(x, unit_id, route.arm, random_unit=route.unit_random)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


__all__ = ["ABExperiment", "Answer", "ShadowExperiment"]
