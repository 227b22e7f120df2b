"""The request path shared by every protocol: route, score, shadow, log.

Protocol handlers parse their wire format into a :class:`ModelInput`, call
:meth:`Dispatcher.serve`, and encode the :class:`Outcome` back into their wire format. So the
experiment logic exists once, whatever the client speaks.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from arbiter.errors import ArbiterError, InvalidInputError, ModelError
from arbiter.features import validate_rows
from arbiter.gateway.metrics import GatewayMetrics
from arbiter.gateway.pool import Endpoint
from arbiter.gateway.responses import NotReadyError
from arbiter.gateway.shadow import ShadowExecutor, ShadowJob
from arbiter.prediction_log import RequestContext, encode_features, prediction_columns
from arbiter.routing import CHAMPION, Route
from arbiter.servable import Scored, ServableModel

log = logging.getLogger(__name__)


class PredictionSink(Protocol):
    """Where prediction rows go (the event writer)."""

    def append_predictions(self, columns: dict[str, list[Any]]) -> None: ...


class ModelInput(Protocol):
    """One request's input rows, in whatever form its protocol produced."""

    @property
    def n_rows(self) -> int: ...

    def features_json(self) -> list[str]: ...

    def check(self, model: ServableModel) -> None:
        """Raise InvalidInputError if ``model`` cannot take this input."""
        ...

    def score(self, model: ServableModel) -> Scored: ...

    def payload(self) -> tuple[str, Any, dict[str, Any] | None]:
        """``(kind, data, params)`` to score elsewhere (a shadow worker process)."""
        ...


class RowsInput:
    """Rows as JSON objects (arbiter's protocol, Open Inference Protocol)."""

    def __init__(
        self, rows: Sequence[Mapping[str, Any]], field: str = "features", *, single: bool = False
    ) -> None:
        self.rows = rows
        self.field = field
        self.single = single
        self._json: list[str] | None = None

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def features_json(self) -> list[str]:
        if self._json is None:
            self._json = encode_features(self.rows)
        return self._json

    def check(self, model: ServableModel) -> None:
        validate_rows(self.rows, model.schema, field=self.field, single=self.single)

    def score(self, model: ServableModel) -> Scored:
        return model.predict_rows(self.rows)

    def payload(self) -> tuple[str, Any, dict[str, Any] | None]:
        return "rows", self.rows, None


class FrameInput:
    """A DataFrame (or array) from the MLflow scoring protocol, scored through pyfunc."""

    def __init__(self, frame: Any, params: dict[str, Any] | None = None) -> None:
        self.frame = frame
        self.params = params
        self._json: list[str] | None = None

    @property
    def n_rows(self) -> int:
        return len(self.features_json())

    def features_json(self) -> list[str]:
        """One JSON object per row: DataFrame records, column dicts as rows, array rows."""
        if self._json is None:
            import pandas as pd

            frame = self.frame
            if isinstance(frame, dict):
                try:
                    frame = pd.DataFrame(frame)
                except ValueError:  # not columns of equal length: log it as one input
                    self._json = encode_features([frame])
                    return self._json
            if isinstance(frame, pd.DataFrame):
                text = frame.to_json(orient="records", lines=True, date_format="iso")
                self._json = text.splitlines() if text else []
            else:
                self._json = encode_features([{"input": row} for row in list(frame)])
        return self._json

    def check(self, model: ServableModel) -> None:
        return None  # MLflow's own schema enforcement runs inside pyfunc.predict

    def score(self, model: ServableModel) -> Scored:
        return model.predict_frame(self.frame, self.params)

    def payload(self) -> tuple[str, Any, dict[str, Any] | None]:
        return "frame", self.frame, self.params


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the caller gets back."""

    request_id: str
    model: str
    arm: str
    alias: str
    version: str
    experiment: str
    strategy: str
    scored: Scored


class Dispatcher:
    """Runs one request through the experiment of its endpoint."""

    def __init__(
        self,
        sink: PredictionSink,
        metrics: GatewayMetrics,
        shadows: dict[str, ShadowExecutor],
        rng: random.Random | None = None,
    ) -> None:
        self.sink = sink
        self.metrics = metrics
        self.shadows = shadows
        self.rng = rng or random.Random()

    def serve(
        self,
        endpoint: Endpoint,
        inp: ModelInput,
        *,
        unit_id: str | None,
        protocol: str,
        forced_arm: str | None = None,
    ) -> Outcome:
        """Score ``inp`` with the arm the experiment picks; mirror to the shadow if any.

        ``forced_arm`` (a tester's ``X-Arbiter-Arm``) overrides the experiment: the request is
        served by that arm, not shadowed, and logged with ``forced`` so analyses leave it out.

        Raises InvalidInputError (nothing logged), NotReadyError, or ModelError (logged with the
        error, since the request was valid and a model failed on it).
        """
        ts_us = time.time_ns() // 1000
        route = endpoint.strategy.route(unit_id, self.rng.random())
        if forced_arm is not None:
            alias = (
                endpoint.config.champion_alias
                if forced_arm == CHAMPION
                else endpoint.config.experiment.challenger_alias
            )
            route = Route(forced_arm, alias, None, unit_random=route.unit_random)
        models = endpoint.models  # one read: a concurrent swap cannot mix versions in a request
        arm, alias = route.arm, route.alias
        model = models.get(alias)
        if model is None and arm != CHAMPION and forced_arm is None:  # challenger not loaded
            arm, alias = CHAMPION, endpoint.config.champion_alias
            model = models.get(alias)
        if model is None:
            raise NotReadyError(
                f"model {endpoint.name!r} has no loaded {alias!r} version yet "
                f"({endpoint.load_errors.get(alias, 'still loading')})"
            )
        inp.check(model)
        ctx = RequestContext(
            request_id=uuid.uuid4().hex,
            ts_us=ts_us,
            model=endpoint.name,
            experiment=endpoint.experiment,
            strategy=endpoint.strategy.name,
            unit_id=unit_id or None,
            unit_random=route.unit_random,
            arm=arm,
            protocol=protocol,
            forced=forced_arm is not None,
        )
        start = time.perf_counter()
        try:
            scored = inp.score(model)
        except InvalidInputError:
            raise
        except ModelError as exc:
            latency = (time.perf_counter() - start) * 1000.0
            self._log(ctx, "served", alias, model, inp, None, latency, str(exc))
            self.metrics.errors.labels(endpoint.name, "model_error").inc()
            raise
        latency = (time.perf_counter() - start) * 1000.0
        self.metrics.model_latency.labels(endpoint.name, alias, "served").observe(latency / 1000.0)
        self._log(ctx, "served", alias, model, inp, scored, latency, None)
        if route.shadow_alias is not None:
            self._shadow(endpoint, models.get(route.shadow_alias), route.shadow_alias, ctx, inp)
        return Outcome(
            ctx.request_id,
            endpoint.name,
            arm,
            alias,
            model.version,
            endpoint.experiment,
            endpoint.strategy.name,
            scored,
        )

    def _log(
        self,
        ctx: RequestContext,
        role: str,
        alias: str,
        model: ServableModel,
        inp: ModelInput,
        scored: Scored | None,
        latency_ms: float,
        error: str | None,
    ) -> None:
        self.sink.append_predictions(
            prediction_columns(
                ctx,
                role=role,
                alias=alias,
                version=model.version,
                features_json=inp.features_json(),
                predictions=scored.predictions if scored else None,
                proba=scored.proba if scored else None,
                classes=scored.classes if scored else None,
                latency_ms=latency_ms,
                error=error,
            )
        )

    def _shadow(
        self,
        endpoint: Endpoint,
        model: ServableModel | None,
        alias: str,
        ctx: RequestContext,
        inp: ModelInput,
    ) -> None:
        executor = self.shadows.get(endpoint.name)
        if model is None or executor is None:
            return
        try:
            inp.check(model)
        except ArbiterError as exc:  # the challenger takes other features: log, never fail
            self._log(ctx, "shadow", alias, model, inp, None, 0.0, f"input rejected: {exc}")
            self.metrics.shadow.labels(endpoint.name, "error").inc()
            return

        def done(scored: Any, error: str | None, latency_ms: float) -> None:
            outcome = (
                "ok" if error is None else ("timeout" if error.startswith("timeout") else "error")
            )
            self.metrics.shadow.labels(endpoint.name, outcome).inc()
            if error is None:
                self.metrics.model_latency.labels(endpoint.name, alias, "shadow").observe(
                    latency_ms / 1000.0
                )
            self._log(ctx, "shadow", alias, model, inp, scored, latency_ms, error)

        if not executor.submit(ShadowJob(model, *inp.payload()), done):
            self.metrics.shadow.labels(endpoint.name, "dropped").inc()


__all__ = ["Dispatcher", "FrameInput", "ModelInput", "Outcome", "PredictionSink", "RowsInput"]
