"""The gateway application: Starlette routes wrapped in small middleware, state in a lifespan.

``create_app`` builds nothing heavy; the lifespan (run by uvicorn at start-up) loads the models,
starts the event writer and the registry poller, and tears them down in order on shutdown:
stop polling, let shadows finish (bounded), then flush every buffered event to disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

from arbiter.alerts.sink import open_alerts
from arbiter.config import HomeConfig
from arbiter.errors import EventStoreError
from arbiter.gateway.batching import BatchLimits
from arbiter.gateway.controllers import prime_controllers, start_controllers, stop_controllers
from arbiter.gateway.dispatch import Dispatcher
from arbiter.gateway.loop_lag import LoopLagMonitor, LoopLagSettings
from arbiter.gateway.metrics import GatewayMetrics
from arbiter.gateway.middleware.auth import TokenAuthMiddleware
from arbiter.gateway.middleware.body_limit import BodyLimitMiddleware
from arbiter.gateway.middleware.content_encoding import DecompressMiddleware
from arbiter.gateway.monitoring import GatewayMonitor, run_monitor
from arbiter.gateway.openapi import complete as complete_openapi
from arbiter.gateway.pool import ModelPool
from arbiter.gateway.recent_requests import RecentRequests
from arbiter.gateway.responses import ORJSONResponse
from arbiter.gateway.routes import (
    admin,
    feedback,
    inference_v2,
    invocations,
    ops,
    outcomes,
    predict,
    rank,
)
from arbiter.gateway.shadow import ShadowExecutor
from arbiter.gateway.startup import StartupTimeline, collection_paused, pause_collection
from arbiter.gateway.state import GatewayState
from arbiter.gateway.storage import install_storage_metrics
from arbiter.home import Home
from arbiter.registry.base import ModelRegistry
from arbiter.strategies.shadow import ShadowExperimentConfig

log = logging.getLogger("arbiter.gateway")

SHUTDOWN_SHADOW_GRACE_S = 5.0
DEFAULT_SHADOW_SLOTS = 8  # shadow_max_in_flight unset, without process workers and batching
# /admin checks its own token (routes/admin.py), which may differ from the API token.
PROTECTED_PREFIXES = ("/feedback", "/outcomes")


def _schema_generator() -> SchemaGenerator:
    from arbiter import __version__

    return SchemaGenerator(
        {
            "openapi": "3.0.3",
            "info": {
                "title": "arbiter gateway",
                "version": __version__,
                "description": "Serves champion and challenger models from an MLflow registry, "
                "runs shadow and A/B experiments, and logs every prediction.",
            },
        }
    )


def routes() -> list[Route]:
    return [
        Route("/models", ops.list_models, methods=["GET"]),
        Route("/models/{name}/predict", predict.predict, methods=["POST"]),
        Route("/models/{name}/rank", rank.rank, methods=["POST"]),
        Route("/models/{name}/invocations", invocations.invocations, methods=["POST"]),
        Route("/invocations", invocations.invocations_single, methods=["POST"]),
        Route("/feedback", feedback.feedback, methods=["POST"]),
        Route("/outcomes", outcomes.outcomes, methods=["POST"]),
        Route("/healthz", ops.healthz, methods=["GET"]),
        Route("/readyz", ops.readyz, methods=["GET"]),
        Route("/metrics", ops.metrics, methods=["GET"]),
        Route("/openapi.json", ops.openapi, methods=["GET"], include_in_schema=False),
        *inference_v2.routes(),
        *admin.routes(),
    ]


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (no route, wrong method) in arbiter's JSON error shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no endpoint at {request.url.path}; see /openapi.json"
    else:
        message = f"{request.method} is not allowed on {request.url.path}"
    body = {"error": {"code": _HTTP_CODES.get(exc.status_code, "http_error"), "message": message}}
    return ORJSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _poll_registry(state: GatewayState, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            swaps = await asyncio.to_thread(state.pool.refresh)
        except Exception:  # never let the poller die: log and try again next interval
            log.exception("registry poll failed")
            continue
        state.metrics.registry_up.set(1 if state.pool.status.reachable else 0)
        if state.monitor is not None:
            state.monitor.check_registry(state.pool.status.reachable)  # alerts on a change
        for model, alias, _old, new in swaps:
            state.metrics.swaps.labels(model, alias).inc()
            executor = state.shadows.get(model)
            exp = state.config.models[model].experiment
            if executor is not None and alias in exp.challenger_arms().values():
                executor.ensure_loading(model, new)  # before the first mirrored request


def shadow_slots(exp: ShadowExperimentConfig, limits: BatchLimits) -> int:
    """How many shadows of one model may be in flight: ``shadow_max_in_flight`` when set.

    Unset (null), with the process executor and batching on, enough for each worker to have
    two full batches waiting (``2 × max_batch_size × shadow_workers``, 64 by default): a
    worker takes what queued behind its current call as its next batch, so the former fixed
    default of 8 capped every batch at 8 jobs and a challenger 10× slower than the champion
    dropped most of the traffic. A queued job holds only its request's rows. Otherwise 8
    (the thread executor runs one thread per slot).
    """
    if exp.shadow_max_in_flight is not None:
        return exp.shadow_max_in_flight
    if exp.shadow_executor == "process" and limits.enabled:
        return max(DEFAULT_SHADOW_SLOTS, 2 * limits.max_rows * exp.shadow_workers)
    return DEFAULT_SHADOW_SLOTS


def create_app(
    home: str | Path | Home,
    *,
    config: HomeConfig | None = None,
    registry: ModelRegistry | None = None,
) -> Starlette:
    """Build the gateway for a home folder.

    Parameters
    ----------
    home
        The arbiter home (config, embedded registry, event store).
    config
        Overrides ``HOME/arbiter.yaml`` (tests, embedding).
    registry
        Overrides the registry built from the config's tracking URI.
    """
    home = home if isinstance(home, Home) else Home.at(home, create=True)
    config = config or home.config()
    token = config.api_token()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        timeline = StartupTimeline()
        # Start-up allocates millions of objects (imports, models) that live as long as the
        # process; with the collector on, seven full collections ran during it (0.3 s of CPU
        # here). Paused until the freeze below, which hands them all to the old generation.
        with collection_paused():
            from arbiter.events import EventWriter
            from arbiter.events.location import open_event_store
            from arbiter.registry import MLflowRegistry

            reg = registry or MLflowRegistry(
                home.tracking_uri(config),
                registry_uri=config.registry.registry_uri,
                artifact_location=home.artifact_location(),
            )
            pool = ModelPool(reg, config)
            timeline.mark("registry client")
            await asyncio.to_thread(pool.refresh)
            timeline.mark("models")
            metrics = GatewayMetrics()
            metrics.registry_up.set(1 if pool.status.reachable else 0)
            store = open_event_store(home, config, fallback_dir=home.spill_dir(config))
            try:
                # Predictions spilled by an earlier shutdown on a full disk come home first.
                await asyncio.to_thread(store.recover_spilled)
            except EventStoreError as exc:
                log.error("%s", exc)
            writer = EventWriter(
                store,
                flush_interval=config.events.flush_interval_s,
                max_batch=config.events.max_batch,
            ).start()
            install_storage_metrics(metrics, writer, store)
            timeline.mark("event store")
            # Alerts leave from a background thread (arbiter.alerts), never from a request.
            alerts = open_alerts(
                home.root,
                config,
                component="gateway",
                registry=None if metrics.multiprocess else metrics.registry,
                private_registry=False,
            )
            shadows: dict[str, ShadowExecutor] = {}
            for name, cfg in config.models.items():
                exp = cfg.experiment
                if not isinstance(exp, ShadowExperimentConfig):  # only shadows mirror requests
                    continue
                challenger = pool.endpoints[name].model(exp.challenger_alias)
                limits = BatchLimits.of(cfg.max_batch_size, cfg.max_batch_delay_ms)
                shadows[name] = ShadowExecutor(
                    name,
                    max_in_flight=shadow_slots(exp, limits),
                    timeout_s=exp.shadow_timeout_s,
                    kind=exp.shadow_executor,
                    workers=exp.shadow_workers,
                    tracking_uri=getattr(reg, "tracking_uri", None),
                    registry_uri=getattr(reg, "registry_uri", None),
                    hang_s=exp.shadow_hang_s,  # the watchdog of a hung worker (issue 14)
                    on_restart=metrics.shadow_restarts.labels(name).inc,
                    # Queued shadows share a call in the workers (docs/batching.md).
                    max_batch_size=limits.max_rows if limits.enabled else 1,
                    on_batch=metrics.shadow_batch_requests.labels(name).observe,
                )
                preload = [(name, challenger.version)] if challenger is not None else []
                await asyncio.to_thread(shadows[name].start, preload)
            if shadows:
                timeline.mark("shadow workers")
            recent = RecentRequests(config.events.recent_requests)
            state = GatewayState(
                home=home,
                config=config,
                pool=pool,
                metrics=metrics,
                writer=writer,
                store=store,
                # The dispatcher's rows also feed /feedback's index of recent requests.
                dispatcher=Dispatcher(recent.observe(writer), metrics, shadows),
                shadows=shadows,
                token=token,
                admin_token=config.admin_token(),
                recent=recent,
                alerts=alerts,
            )
            state.monitor = GatewayMonitor(state)
            state.monitor.check_registry(pool.status.reachable)
            app.state.arbiter = state
            await prime_controllers(state)
            poller = asyncio.create_task(_poll_registry(state, config.registry.poll_interval_s))
            controllers = start_controllers(state)
            monitor = asyncio.create_task(run_monitor(state, state.monitor), name="monitor")
            for name, endpoint in pool.endpoints.items():
                log.info(
                    "serving %s: %s (%s)",
                    name,
                    {a: f"v{m.version}" for a, m in endpoint.models.items()} or "no versions",
                    endpoint.experiment_state(),
                )
            timeline.mark("controllers")
            # Everything allocated so far lives as long as the process: move it out of the
            # collector's sight so full collections under load stay short.
            gc.collect()
            gc.freeze()
            # After the freeze, CPython counts no long-lived objects, so its "full collections
            # only when the old generation grew by 25 %" rule never holds and a full collection
            # ran every 100 young ones: 20 in a 30 s tail profile at 1,775 req/s, each a stall of
            # the event loop (docs/benchmarks_gateway.md, "The tail, profiled"). Requests
            # allocate thousands of short-lived objects: collect the young generation every
            # 7,000 allocations (not 700) and the old one every 100 middle collections (not 10).
            gc.set_threshold(7_000, 10, 100)
            timeline.mark("gc")
        state.startup = timeline.as_dict()
        log.info("%s (loads: %s)", timeline.summary(), pool.describe_loads())
        # Opt-in (ARBITER_LOOP_LAG_MS): records what ran while the event loop stalled.
        lag_settings = LoopLagSettings.from_env()
        lag = LoopLagMonitor(lag_settings).start() if lag_settings is not None else None
        try:
            yield
        finally:
            if lag is not None:
                await lag.stop()
            await stop_controllers([*controllers, monitor])
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            for executor in shadows.values():
                await executor.drain(SHUTDOWN_SHADOW_GRACE_S)
            state.dispatcher.close()
            # Never raises for a full or read-only disk: retries (bounded), spills, and logs
            # exactly how many acknowledged rows were written, spilled and lost.
            report = await asyncio.to_thread(
                writer.shutdown,
                retry_s=config.events.shutdown_retry_s,
                spill_dir=home.spill_dir(config),
            )
            # Pending alerts (a rollback just decided) get alerts.flush_timeout_s, no more.
            await asyncio.to_thread(alerts.close)
            if hasattr(store, "close"):
                store.close()  # the PostgreSQL store's connections
            # Give frozen objects back to the collector, so extension modules (DuckDB's
            # nanobind bindings) can be torn down cleanly at interpreter exit.
            gc.unfreeze()
            if report.reason is None:
                log.info("gateway stopped; events flushed")
            else:
                log.info(
                    "gateway stopped; of %d prediction rows, %d written, %d spilled, %d lost, "
                    "%d dropped earlier",
                    report.acknowledged,
                    report.written,
                    report.spilled,
                    report.lost,
                    report.dropped,
                )

    server = config.server
    drain = {"drain_max_bytes": server.drain_max_bytes, "drain_timeout_s": server.drain_timeout_s}
    app = Starlette(
        routes=routes(),
        # Outermost first: wire bytes are counted before anything else reads them; the token
        # is checked before a compressed body costs any work; bodies are inflated last.
        middleware=[
            Middleware(BodyLimitMiddleware, max_bytes=server.max_body_bytes, **drain),
            Middleware(
                TokenAuthMiddleware, token=token, protected_prefixes=PROTECTED_PREFIXES, **drain
            ),
            Middleware(DecompressMiddleware, max_bytes=server.max_body_bytes, **drain),
        ],
        exception_handlers={404: _http_error, 405: _http_error},
        lifespan=lifespan,
    )
    app.state.server_config = server  # ServerThread reads the HTTP limits from here
    generator = _schema_generator()

    def openapi_schema(request: Any) -> dict[str, Any]:
        # The docstrings' document, completed from the running models (gateway/openapi.py).
        base = generator.get_schema(routes=app.routes)
        return complete_openapi(base, getattr(request.app.state, "arbiter", None))

    app.state.openapi_schema = openapi_schema
    return app


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory`` with several workers: the home comes from ARBITER_HOME."""
    import os

    pause_collection()  # until the lifespan's freeze (gateway.startup)
    return create_app(os.environ["ARBITER_HOME"])


__all__ = ["app_from_env", "create_app"]
