"""The request path shared by every protocol: route, score, shadow, log.

Protocol handlers parse their wire format into a :class:`ModelInput`, call
:meth:`Dispatcher.serve`, and encode the :class:`Outcome` back into their wire format. So the
experiment logic exists once, whatever the client speaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from arbiter.errors import ArbiterError, InvalidInputError, ModelError, ModelTimeoutError
from arbiter.features import coerce_frame, coerce_rows
from arbiter.gateway.batching import Batcher, BatchLimits, BatchPart, batch_part, score_parts
from arbiter.gateway.metrics import GatewayMetrics
from arbiter.gateway.pool import Endpoint
from arbiter.gateway.responses import NotReadyError
from arbiter.gateway.shadow import ShadowExecutor, ShadowJob
from arbiter.prediction_log import RequestContext, encode_features, prediction_columns
from arbiter.request_ids import new_request_id
from arbiter.routing import CHAMPION, Route
from arbiter.servable import Scored, ServableModel

log = logging.getLogger(__name__)
T = TypeVar("T")


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

    def batch_part(self, model: ServableModel) -> BatchPart | None:
        """The input as coerced for ``model`` (checked before), as one part of a batched
        call; None when it must be scored alone (:func:`arbiter.gateway.batching.batch_part`)."""
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
            if model.unnamed_tensor:
                raise InvalidInputError(
                    f"model {model.name!r} v{model.version} takes a tensor without column "
                    "names, so named rows cannot be mapped to it: send the tensor to "
                    "/invocations ('inputs' or 'instances'), or log the model with the column "
                    "names in its MLmodel metadata (arbiter.columns)",
                    field=self.field,
                )
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

    def batch_part(self, model: ServableModel) -> BatchPart | None:
        return batch_part(
            model, "rows", self._rows_for(model), None, finite=not self.allow_non_finite
        )


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

    def batch_part(self, model: ServableModel) -> BatchPart | None:
        return batch_part(
            model, "frame", self._frame_for(model), self.params, finite=not self.allow_non_finite
        )


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
    #: The assigned arm whose model failed, when the champion answered in its place.
    fallback_from: str | None = None


#: Role of the champion's row when it answered for a failed challenger (not ``served``: the
#: analyses count the request once, by assignment, as the challenger's failure).
FALLBACK = "fallback"

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
    role: str = "served"


class _ScoringPool:
    """A few daemon threads that score for the event loop and answer on an asyncio future.

    Not a ``ThreadPoolExecutor``, for two reasons. Its threads are joined at interpreter exit,
    so one hung model call would keep a stopping server alive for as long as the call hangs;
    these are daemon threads, abandoned at exit. And the hop is leaner: the thread sets the
    asyncio future with one ``call_soon_threadsafe``, without the concurrent future, its lock
    and the callback chain of ``run_in_executor``/``wrap_future`` (the hop is what isolation
    costs every request, see :meth:`Dispatcher.aserve`).
    """

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run ``fn(*args)`` in a pool thread; from the event loop thread only."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((loop, future, fn, args))
        if not self._idle.acquire(blocking=False):
            with self._lock:
                if len(self._threads) < self.size:
                    thread = threading.Thread(
                        target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
                    )
                    self._threads.append(thread)
                    thread.start()
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            loop, future, fn, args = item
            try:
                outcome: tuple[bool, Any] = (True, fn(*args))
            except BaseException as exc:  # handed to the awaiting request, which decides
                outcome = (False, exc)
            # The loop may close between the check and the call (shutdown): nobody waits.
            if not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, future, outcome)
            self._idle.release()

    def close(self) -> None:
        """Let idle threads exit; a hung call's thread is abandoned (a daemon)."""
        for _ in self._threads:
            self._queue.put(None)


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():  # the request stopped waiting (its deadline passed)
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _timed(inp: ModelInput, model: ServableModel) -> tuple[Scored, float]:
    """Score in a pool thread; also return when scoring started (``perf_counter``)."""
    start = time.perf_counter()
    return inp.score(model), start


@dataclass(frozen=True, slots=True)
class _BatchEntry:
    """One request's share of a batched call: its model (any arm's object of the version)
    and its coerced rows."""

    model: ServableModel
    part: BatchPart
    champion: bool


def _score_batch(
    entries: list[_BatchEntry], on_alone: Callable[[], None]
) -> list[tuple[bool, Any]]:
    """Score a batch in a pool thread: per entry ``(True, (Scored, start))`` or
    ``(False, exception)``. A batch that fails is re-scored per request
    (:func:`arbiter.gateway.batching.score_parts`), and ``on_alone`` counts it."""
    results, alone = score_parts(entries[0].model, [entry.part for entry in entries])
    if alone:
        on_alone()
    return [(ok, (value, start) if ok else value) for ok, value, start, _end in results]


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
        request_id=new_request_id(),
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
        self._champion_pool = _ScoringPool("champion", SCORING_THREADS)
        self._challenger_pool = _ScoringPool("challenger", SCORING_THREADS)
        self._batcher: Batcher[_BatchEntry] = Batcher(self._launch_batch)
        self._batch_metrics: dict[str, tuple[Any, Any, Any]] = {}

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
        The HTTP routes use :meth:`aserve`, which puts a deadline on every call. A challenger
        that raises is answered by the champion here too (``fallback_to_champion``).

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
        """:meth:`serve` for the event loop, with a deadline on every call.

        With ``experiment.isolate_arms`` (on by default, every strategy) every served arm
        scores off the event loop, the champion in one small thread pool and the other arms in
        another, and the loop waits at most ``champion_timeout_s`` / ``challenger_timeout_s``:

        * no model can stall the worker's event loop (and with it the other requests,
          ``/healthz`` and the controllers); a call past its deadline is logged as that arm's
          error (``model_timeout``, which a canary's guardrail counts) and answers 504, or the
          champion's answer when the challenger may fall back. A timed-out call keeps its
          thread until it returns: once all :data:`SCORING_THREADS` threads of a pool are
          stuck, further calls of that pool time out too, while the other pool is untouched;
        * both arms go through the same path, so the latency guardrail compares like with like
          (inline for one arm and a thread for the other biased the challenger's p99 by the
          GIL hand-offs of the thread).

        The hop is what this costs every request: about 0.3 ms p50 on a quiet machine, tens of
        milliseconds on a CPU-starved one, where the scoring thread and then the event loop
        each wait for the scheduler (docs/benchmarks.md, "Deadlines on every call");
        ``isolate_arms: false`` scores inline, without a deadline.

        A challenger that raises or times out is answered by the champion
        (``fallback_to_champion``, on for ab and bandit): see :meth:`_fallback_request`.

        Latency is measured from when the model starts, in its thread.
        """
        request = self._prepare(endpoint, inp, unit_id, protocol, forced_arm)
        exp = endpoint.config.experiment
        if not exp.arms_isolated():
            return self._score_inline(endpoint, request, inp)
        try:
            return await self._score_isolated(endpoint, request, inp)
        except ModelError:
            fallback = self._fallback_request(endpoint, request, inp)
            if fallback is None:
                raise
            return await self._score_isolated(endpoint, fallback, inp, fallback_from=request.arm)

    async def _score_isolated(
        self,
        endpoint: Endpoint,
        request: _Request,
        inp: ModelInput,
        fallback_from: str | None = None,
    ) -> Outcome:
        """Score in the arm's pool and wait at most the arm's deadline; log either way."""
        champion = request.arm == CHAMPION
        timeout = endpoint.config.experiment.timeout_s(request.arm)
        start = time.perf_counter()
        future = self._submit(endpoint, request, inp, champion)
        try:
            scored, model_start = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            model = request.model
            setting = "champion_timeout_s" if champion else "challenger_timeout_s"
            exc = ModelTimeoutError(
                f"model {model.name} v{model.version} ({request.alias}) did not answer "
                f"within {timeout:g} s (experiment.{setting})"
            )
            self._failed(endpoint, request, inp, start, exc)
            raise exc from None
        except ModelError as exc:
            self._failed(endpoint, request, inp, start, exc)
            raise
        return self._served(endpoint, request, inp, model_start, scored, fallback_from)

    def _submit(
        self, endpoint: Endpoint, request: _Request, inp: ModelInput, champion: bool
    ) -> asyncio.Future[tuple[Scored, float]]:
        """Queue the call in the batcher (docs/batching.md) or, batching off or an input that
        must run alone, hand it to the arm's pool; the future gives ``(scored, start)``."""
        model = request.model
        cfg = endpoint.config
        limits = BatchLimits.of(cfg.max_batch_size, cfg.max_batch_delay_ms)
        part = inp.batch_part(model) if limits.enabled else None
        if part is None:
            pool = self._champion_pool if champion else self._challenger_pool
            return pool.submit(_timed, inp, model)
        # The key is the version, not the arm: two arms on one version share calls.
        key = (model.name, model.version, part.signature)
        return self._batcher.submit(key, _BatchEntry(model, part, champion), part.n_rows, limits)

    def _launch_batch(
        self, key: Any, entries: list[_BatchEntry]
    ) -> asyncio.Future[list[tuple[bool, Any]]]:
        """One batched call in a scoring pool: the champion's when a champion request is in
        it (the version is the champion's then), else the other arms'."""
        champion = any(entry.champion for entry in entries)
        pool = self._champion_pool if champion else self._challenger_pool
        name = entries[0].model.name
        rows, requests, retries = self._batch_metrics.get(name) or self._batch_metrics_of(name)
        rows.observe(sum(e.part.n_rows for e in entries))
        requests.observe(len(entries))
        return pool.submit(_score_batch, entries, retries.inc)

    def _batch_metrics_of(self, name: str) -> tuple[Any, Any, Any]:
        """The batch metrics' children of one model (``labels()`` takes a lock: once)."""
        children = (
            self.metrics.batch_rows.labels(name),
            self.metrics.batch_requests.labels(name),
            self.metrics.batch_retries.labels(name),
        )
        self._batch_metrics[name] = children
        return children

    def _fallback_request(
        self,
        endpoint: Endpoint,
        failed: _Request,
        inp: ModelInput,
    ) -> _Request | None:
        """The champion's stand-in for a failed challenger call, or None (the error stands).

        None when the failed arm is the champion, a tester forced the arm, the experiment does
        not fall back (``fallback_to_champion``), or the champion is not loaded or cannot take
        this input. The stand-in keeps the request id and logs with role ``fallback`` and the
        champion's arm, alias and version. The analyses count the request by assignment
        (intention to treat): once, as the failed arm's error row, which is what its error-rate
        guardrail and a unit's exposure read; the ``fallback`` row is left out of every
        analysis view (:mod:`arbiter.events.views`) and records what the user got.
        """
        if failed.arm == CHAMPION or failed.ctx.forced:
            return None
        if not endpoint.config.experiment.falls_back():
            return None
        alias = endpoint.config.champion_alias
        model = failed.models.get(alias)
        if model is None:
            return None
        try:
            inp.check(model)
        except ArbiterError:
            return None
        ctx = dataclasses.replace(failed.ctx, arm=CHAMPION)
        return dataclasses.replace(
            failed, arm=CHAMPION, alias=alias, model=model, ctx=ctx, role=FALLBACK
        )

    async def call(self, endpoint: Endpoint, arm: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in ``arm``'s scoring pool, waiting at most the arm's deadline.

        For request paths that score models themselves (``/rank``): the same pools and
        deadlines as :meth:`aserve`. Raises ModelTimeoutError past the deadline (nothing
        logged: the caller logs its own rows).
        """
        exp = endpoint.config.experiment
        pool = self._champion_pool if arm == CHAMPION else self._challenger_pool
        timeout = exp.timeout_s(arm) if exp.arms_isolated() else None
        try:
            return await asyncio.wait_for(pool.submit(fn, *args), timeout)  # type: ignore[no-any-return]
        except TimeoutError:
            setting = "champion_timeout_s" if arm == CHAMPION else "challenger_timeout_s"
            raise ModelTimeoutError(
                f"{arm} did not answer within {timeout:g} s (experiment.{setting})"
            ) from None

    def close(self) -> None:
        """Stop the scoring threads (a hung call is abandoned, not waited for)."""
        for pool in (self._champion_pool, self._challenger_pool):
            pool.close()

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
        try:
            inp.check(model)
        except ArbiterError as exc:
            exc.arm = arm  # type: ignore[attr-defined]  # for the request metric's label
            raise
        ctx = request_context(endpoint, route, arm, unit_id, protocol, forced_arm, ts_us)
        return _Request(route, models, arm, alias, model, ctx)

    def _score_inline(
        self,
        endpoint: Endpoint,
        request: _Request,
        inp: ModelInput,
        fallback_from: str | None = None,
    ) -> Outcome:
        start = time.perf_counter()
        try:
            scored = inp.score(request.model)
        except ModelError as exc:
            self._failed(endpoint, request, inp, start, exc)
            if fallback_from is None:
                fallback = self._fallback_request(endpoint, request, inp)
                if fallback is not None:
                    return self._score_inline(endpoint, fallback, inp, request.arm)
            raise
        return self._served(endpoint, request, inp, start, scored, fallback_from)

    def _failed(
        self,
        endpoint: Endpoint,
        request: _Request,
        inp: ModelInput,
        start: float,
        exc: ModelError,
    ) -> None:
        """Log the failed call as its arm's error and count it under the arm's label."""
        latency = (time.perf_counter() - start) * 1000.0
        self._log(
            request.ctx, request.role, request.alias, request.model, inp, None, latency, str(exc)
        )
        kind = "model_timeout" if isinstance(exc, ModelTimeoutError) else "model_error"
        self.metrics.errors.labels(endpoint.name, kind).inc()
        self.metrics.arm_errors.labels(endpoint.name, request.arm, kind).inc()
        exc.arm = request.arm  # type: ignore[attr-defined]  # the request metric's label

    def _served(
        self,
        endpoint: Endpoint,
        request: _Request,
        inp: ModelInput,
        start: float,
        scored: Scored,
        fallback_from: str | None = None,
    ) -> Outcome:
        latency = (time.perf_counter() - start) * 1000.0
        alias, model, ctx = request.alias, request.model, request.ctx
        self.metrics.model_latency.labels(endpoint.name, alias, request.role).observe(
            latency / 1000.0
        )
        self._log(ctx, request.role, alias, model, inp, scored, latency, None)
        if fallback_from is not None:
            self.metrics.fallbacks.labels(endpoint.name, fallback_from).inc()
        shadow = request.route.shadow_alias
        if shadow is not None and request.role == "served":
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
            fallback_from,
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

        if not executor.submit(ShadowJob(model, *inp.payload(model)), done):
            self.metrics.shadow.labels(endpoint.name, "dropped").inc()


__all__ = [
    "FALLBACK",
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
