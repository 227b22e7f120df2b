"""The request path shared by every protocol: route, score, shadow, log.

Protocol handlers parse their wire format into a :class:`ModelInput`, call
:meth:`Dispatcher.serve`, and encode the :class:`Outcome` back into their wire format. So the
experiment logic exists once, whatever the client speaks.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from arbiter.errors import ArbiterError, ModelError, ModelTimeoutError
from arbiter.features import coerce_frame, coerce_rows
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
        """Raise InvalidInputError if ``model`` cannot take this input (before it runs)."""
        ...

    def score(self, model: ServableModel) -> Scored: ...

    def payload(self, model: ServableModel | None = None) -> tuple[str, Any, dict[str, Any] | None]:
        """``(kind, data, params)`` to score elsewhere (a shadow worker process): the input
        as coerced for ``model`` (default: the model checked last)."""
        ...


class _PerModel:
    """The input as coerced for each model that checked it (arms may differ in signature).

    The dispatcher calls ``check(model)`` before ``score(model)`` and before ``payload()`` for a
    shadow, so the coerced data is found by model identity; what the first (served) model
    took is what the request logs.
    """

    def __init__(self) -> None:
        self._coerced: list[tuple[ServableModel, Any]] = []

    def _cached(self, model: ServableModel) -> Any:
        for known, data in self._coerced:
            if known is model:
                return data
        return _MISSING

    def _remember(self, model: ServableModel, data: Any) -> Any:
        self._coerced.append((model, data))
        return data

    def _last(self, default: Any) -> Any:
        return self._coerced[-1][1] if self._coerced else default

    def _first(self, default: Any) -> Any:
        return self._coerced[0][1] if self._coerced else default


_MISSING = object()


class RowsInput(_PerModel):
    """Rows as JSON objects (arbiter's protocol, /rank), coerced by :func:`coerce_rows`."""

    def __init__(
        self,
        rows: Sequence[Mapping[str, Any]],
        field: str = "features",
        *,
        single: bool = False,
        allow_non_finite: bool = False,
    ) -> None:
        super().__init__()
        self.rows = rows
        self.field = field
        self.single = single
        self.allow_non_finite = allow_non_finite
        self._json: list[str] | None = None

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def features_json(self) -> list[str]:
        """The rows as the served model took them (coerced: ``3`` logged as ``3.0`` for a
        double column), so the log shows what was scored."""
        if self._json is None:
            rows = self._first(self.rows)
            if self.allow_non_finite:  # as FrameInput logs them
                rows = [{k: _infinity_as_text(v) for k, v in row.items()} for row in rows]
            self._json = encode_features(rows)
        return self._json

    def _rows_for(self, model: ServableModel) -> list[dict[str, Any]]:
        rows = self._cached(model)
        if rows is _MISSING:
            rows = self._remember(
                model,
                coerce_rows(
                    self.rows,
                    model.schema,
                    field=self.field,
                    single=self.single,
                    allow_non_finite=self.allow_non_finite,
                    ranges=model.ranges,
                ),
            )
        return rows

    def check(self, model: ServableModel) -> None:
        self._rows_for(model)

    def score(self, model: ServableModel) -> Scored:
        return model.predict_rows(self._rows_for(model), finite=not self.allow_non_finite)

    def payload(self, model: ServableModel | None = None) -> tuple[str, Any, dict[str, Any] | None]:
        """The rows as coerced for ``model``; by default for the model checked last (the
        shadow the dispatcher has just checked and is about to submit)."""
        rows = self._rows_for(model) if model is not None else self._last(self.rows)
        return "rows", rows, None


class FrameInput(_PerModel):
    """A DataFrame (or array) from the MLflow scoring protocol or v2, scored through pyfunc.

    ``check`` coerces it against the model's signature (:func:`coerce_frame`) before any model
    runs; ``field_of`` names a column's field in errors (``inputs[2]`` on v2).
    """

    def __init__(
        self,
        frame: Any,
        params: dict[str, Any] | None = None,
        *,
        field_of: Callable[[str], str] | None = None,
        allow_non_finite: bool = False,
    ) -> None:
        super().__init__()
        self.frame = frame
        self.params = params
        self.field_of = field_of or (lambda column: column or "body")
        self.allow_non_finite = allow_non_finite
        self._json: list[str] | None = None

    @property
    def n_rows(self) -> int:
        return len(self.features_json())

    def features_json(self) -> list[str]:
        """One JSON object per row as the served model took it: DataFrame records, column
        dicts as rows, array rows."""
        if self._json is None:
            import pandas as pd

            frame = self._first(self.frame)
            if isinstance(frame, dict):
                try:
                    frame = pd.DataFrame(frame)
                except ValueError:  # not columns of equal length: log it as one input
                    self._json = encode_features([frame])
                    return self._json
            if isinstance(frame, pd.DataFrame):
                # ±Infinity (only with inputs.allow_non_finite) is logged as the string
                # "Infinity"/"-Infinity": JSON has no token for it, and null reads as missing
                # (which is what NaN means to pandas and MLflow, so NaN is logged as null).
                text = frame.to_json(orient="records", lines=True, date_format="iso")
                if text and _has_infinity(frame):
                    self._json = encode_features(
                        [
                            {k: _infinity_as_text(v) for k, v in row.items()}
                            for row in frame.to_dict("records")
                        ]
                    )
                else:
                    self._json = text.splitlines() if text else []
            else:
                self._json = encode_features([{"input": row} for row in list(frame)])
        return self._json

    def _frame_for(self, model: ServableModel) -> Any:
        data = self._cached(model)
        if data is _MISSING:
            data = self._remember(model, self._coerce(model))
        return data

    def _coerce(self, model: ServableModel) -> Any:
        import pandas as pd

        data = self.frame
        if model.schema is None:
            # Tensor signatures, type-hinted and signature-less models: MLflow's enforcement,
            # run here so that its refusal is the client's 4xx and not the model's error.
            model.enforce_input(data, field=self.field_of(""))
            return data
        if isinstance(data, dict):
            try:
                data = pd.DataFrame(data)
            except ValueError:
                data = model.enforce_input(data, field=self.field_of(""))
        elif not isinstance(data, pd.DataFrame):
            data = model.enforce_input(data, field=self.field_of(""))
        return coerce_frame(
            data,
            model.schema,
            field_of=self.field_of,
            allow_non_finite=self.allow_non_finite,
            ranges=model.ranges,
        )

    def check(self, model: ServableModel) -> None:
        self._frame_for(model)

    def score(self, model: ServableModel) -> Scored:
        return model.predict_frame(
            self._frame_for(model), self.params, finite=not self.allow_non_finite
        )

    def payload(self, model: ServableModel | None = None) -> tuple[str, Any, dict[str, Any] | None]:
        """The frame as coerced for ``model``; by default for the model checked last (the
        shadow the dispatcher has just checked and is about to submit)."""
        frame = self._frame_for(model) if model is not None else self._last(self.frame)
        return "frame", frame, self.params


def _has_infinity(frame: Any) -> bool:
    import numpy as np

    numeric = frame.select_dtypes(include="floating")
    return not numeric.empty and bool(np.isinf(numeric.to_numpy()).any())


def _infinity_as_text(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


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


#: Threads per scoring pool (champion, other arms) in served experiments; see
#: :meth:`Dispatcher.aserve`.
SCORING_THREADS = 4


@dataclass(frozen=True, slots=True)
class _Request:
    """One request once routed: what scores it and how it is logged."""

    route: Route
    models: Mapping[str, ServableModel]
    arm: str
    alias: str
    model: ServableModel
    ctx: RequestContext


def _timed(inp: ModelInput, model: ServableModel) -> tuple[Scored, float]:
    """Score in a pool thread; also return when scoring started (``perf_counter``)."""
    start = time.perf_counter()
    return inp.score(model), start


def resolve_model(
    endpoint: Endpoint,
    models: Mapping[str, ServableModel],
    route: Route,
    forced_arm: str | None,
) -> tuple[str, str, ServableModel]:
    """``(arm, alias, model)`` that will answer: a challenger not loaded yet falls back to
    the champion (unless a tester forced it); no model at all is a NotReadyError."""
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
    return arm, alias, model


def request_context(
    endpoint: Endpoint,
    route: Route,
    arm: str,
    unit_id: str | None,
    protocol: str,
    forced_arm: str | None,
    ts_us: int,
) -> RequestContext:
    """The logging context of one request (a new request id)."""
    return RequestContext(
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
        self._champion_pool = ThreadPoolExecutor(SCORING_THREADS, thread_name_prefix="champion")
        self._challenger_pool = ThreadPoolExecutor(SCORING_THREADS, thread_name_prefix="challenger")

    def serve(
        self,
        endpoint: Endpoint,
        inp: ModelInput,
        *,
        unit_id: str | None,
        protocol: str,
        forced_arm: str | None = None,
    ) -> Outcome:
        """Score ``inp`` with the arm the experiment picks, inline; mirror to the shadow if any.

        ``forced_arm`` (a tester's ``X-Arbiter-Arm``) overrides the experiment: the request is
        served by that arm, not shadowed, and logged with ``forced`` so analyses leave it out.
        The HTTP routes use :meth:`aserve`, which keeps challengers off the event loop.

        Raises InvalidInputError (nothing logged), NotReadyError, or ModelError (logged with the
        error, since the request was valid and a model failed on it).
        """
        request = self._prepare(endpoint, inp, unit_id, protocol, forced_arm)
        return self._score_inline(endpoint, request, inp)

    async def aserve(
        self,
        endpoint: Endpoint,
        inp: ModelInput,
        *,
        unit_id: str | None,
        protocol: str,
        forced_arm: str | None = None,
    ) -> Outcome:
        """:meth:`serve` for the event loop.

        By default every arm scores inline: a thread hop costs every request (measured with
        ``benchmarks/gateway.py``: +0.3 ms p50, +2 ms p99 for an A/B test). With
        ``experiment.isolate_arms`` (on by default for a canary, whose challenger is the
        untrusted new model) every arm scores off the event loop, the champion in one small
        thread pool and the other arms in another, so that:

        * a slow challenger cannot stall the worker's event loop (and with it the champion's
          requests and the canary controller), and a hung one answers 504 after
          ``experiment.challenger_timeout_s`` and is logged as the challenger's error, which is
          what rolls a canary back; a timed-out call keeps its thread until it returns, and
          once all :data:`SCORING_THREADS` challenger threads are stuck, further challenger
          requests time out too, while the champion's pool is untouched;
        * both arms go through the same path, so the latency guardrail compares like with like
          (scoring inline for one arm and in a thread for the other biased the challenger's
          p99 by the GIL hand-offs of the thread, a few milliseconds: enough to fail a 2×
          ratio against a 5 ms champion).

        Latency is measured from when the model starts, in its thread.
        """
        request = self._prepare(endpoint, inp, unit_id, protocol, forced_arm)
        if not endpoint.config.experiment.arms_isolated():
            return self._score_inline(endpoint, request, inp)
        champion = request.arm == CHAMPION
        pool = self._champion_pool if champion else self._challenger_pool
        timeout = None if champion else endpoint.config.experiment.challenger_timeout_s
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        try:
            future = loop.run_in_executor(pool, _timed, inp, request.model)
            scored, model_start = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            model = request.model
            exc = ModelTimeoutError(
                f"model {model.name} v{model.version} ({request.alias}) did not answer "
                f"within {timeout:g} s (experiment.challenger_timeout_s)"
            )
            self._failed(endpoint, request, inp, start, exc)
            raise exc from None
        except ModelError as exc:
            self._failed(endpoint, request, inp, start, exc)
            raise
        return self._served(endpoint, request, inp, model_start, scored)

    def close(self) -> None:
        """Stop the scoring threads (a hung call is abandoned, not waited for)."""
        for pool in (self._champion_pool, self._challenger_pool):
            pool.shutdown(wait=False, cancel_futures=True)

    def _prepare(
        self,
        endpoint: Endpoint,
        inp: ModelInput,
        unit_id: str | None,
        protocol: str,
        forced_arm: str | None,
    ) -> _Request:
        ts_us = time.time_ns() // 1000
        route = self.route(endpoint, unit_id, forced_arm)
        models = endpoint.models  # one read: a concurrent swap cannot mix versions in a request
        arm, alias, model = resolve_model(endpoint, models, route, forced_arm)
        inp.check(model)
        ctx = request_context(endpoint, route, arm, unit_id, protocol, forced_arm, ts_us)
        return _Request(route, models, arm, alias, model, ctx)

    def _score_inline(self, endpoint: Endpoint, request: _Request, inp: ModelInput) -> Outcome:
        start = time.perf_counter()
        try:
            scored = inp.score(request.model)
        except ModelError as exc:
            self._failed(endpoint, request, inp, start, exc)
            raise
        return self._served(endpoint, request, inp, start, scored)

    def _failed(
        self,
        endpoint: Endpoint,
        request: _Request,
        inp: ModelInput,
        start: float,
        exc: ModelError,
    ) -> None:
        latency = (time.perf_counter() - start) * 1000.0
        self._log(request.ctx, "served", request.alias, request.model, inp, None, latency, str(exc))
        kind = "model_timeout" if isinstance(exc, ModelTimeoutError) else "model_error"
        self.metrics.errors.labels(endpoint.name, kind).inc()

    def _served(
        self,
        endpoint: Endpoint,
        request: _Request,
        inp: ModelInput,
        start: float,
        scored: Scored,
    ) -> Outcome:
        latency = (time.perf_counter() - start) * 1000.0
        alias, model, ctx = request.alias, request.model, request.ctx
        self.metrics.model_latency.labels(endpoint.name, alias, "served").observe(latency / 1000.0)
        self._log(ctx, "served", alias, model, inp, scored, latency, None)
        shadow = request.route.shadow_alias
        if shadow is not None:
            self._shadow(endpoint, request.models.get(shadow), shadow, ctx, inp)
        return Outcome(
            ctx.request_id,
            endpoint.name,
            request.arm,
            alias,
            model.version,
            endpoint.experiment,
            endpoint.strategy.name,
            scored,
        )

    def route(self, endpoint: Endpoint, unit_id: str | None, forced_arm: str | None) -> Route:
        """The experiment's route for this request, or the tester's forced arm."""
        route = endpoint.strategy.route(unit_id, self.rng.random())
        if forced_arm is not None:
            alias = endpoint.arms[forced_arm]
            route = Route(forced_arm, alias, None, unit_random=route.unit_random)
        return route

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


__all__ = [
    "SCORING_THREADS",
    "Dispatcher",
    "FrameInput",
    "ModelInput",
    "Outcome",
    "PredictionSink",
    "RowsInput",
    "request_context",
    "resolve_model",
]
