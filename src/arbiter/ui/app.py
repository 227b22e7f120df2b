"""The dashboard's Starlette app: pages, their live fragments, JSON views and the canary proxy.

Each page is a Jinja2 template around a *live* fragment; htmx re-fetches the fragment every
few seconds (the ``HX-Request`` header asks for the fragment alone), so tables update without
a page reload, and ``static/ui.js`` redraws the charts from the figures the fragment carries
(Plotly's ``react``: zoom and hover survive an update). ``/api/...`` answers the same view
models as JSON, for scripts.

Operator actions on a canary go to the gateway's admin API (``POST /admin/canary/...``): the
browser posts to ``/api/models/{model}/canary/{action}`` with the admin token the operator
typed (kept in ``sessionStorage``, sent as ``Authorization``) and this app forwards it
unchanged, so the gateway alone checks the token, applies the action to its workers at once
and answers the refusal (401, 403, 409) that the page then shows. The dashboard itself never
holds the token.

Views block (DuckDB, the MLflow registry), so they run in worker threads, and each is cached
for :data:`CACHE_S` seconds: ten browsers polling one page cost one analysis per interval.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from arbiter.errors import ArbiterError, InvalidInputError, NotFoundError
from arbiter.home import Home
from arbiter.report.format import decision_colour, format_number, format_timestamp
from arbiter.ui import views
from arbiter.ui.assets import plotly_js

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
#: How long a computed view is reused before the next poll recomputes it.
CACHE_S = 2.0
#: Default seconds between two live updates of a page.
REFRESH_S = 5.0
CANARY_ACTIONS = ("pause", "resume", "promote", "abort")
#: Scripts and styles only from this server; Plotly sets inline styles on the charts it draws.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)


class ViewCache:
    """The last value of each view, reused while fresh (per view and arguments).

    A value stays fresh for :data:`CACHE_S` seconds, or three times as long as it took to
    compute when that is longer: an analysis that takes 2 s on a busy machine is recomputed
    at most every 6 s however many browsers poll it, so watching never costs more than a third
    of a core per page. Concurrent requests for one view wait for one computation.
    """

    def __init__(self, ttl_s: float = CACHE_S) -> None:
        self.ttl_s = ttl_s
        self._values: dict[tuple[Any, ...], tuple[float, Any]] = {}  # key -> (expires, value)
        self._locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        with self._lock:
            key_lock = self._locks.setdefault(key, threading.Lock())
        with key_lock:
            hit = self._values.get(key)
            if hit is not None and time.monotonic() < hit[0]:
                return hit[1]
            started = time.monotonic()
            value = compute()
            took = time.monotonic() - started
            self._values[key] = (time.monotonic() + max(self.ttl_s, 3.0 * took), value)
            return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters["number"] = lambda v, digits=4: format_number(v, digits=digits)
    env.filters["percent"] = lambda v: "–" if v is None else f"{float(v):.1%}"
    env.filters["timestamp"] = _timestamp
    env.globals["decision_colour"] = decision_colour
    return templates


def _timestamp(value: Any) -> str:
    """A Unix time (seconds), microseconds or an ISO string, in UTC as the CLI prints it."""
    if isinstance(value, int | float):
        value = int(value * 1e6) if value < 1e11 else int(value)
    return format_timestamp(value)


async def _view(request: Request, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
    cache: ViewCache = request.app.state.cache
    return await asyncio.to_thread(cache.get, key, compute)


def _page(template: str, fragment: str) -> Callable[..., Any]:
    """A route rendering ``template`` (or only ``fragment`` for htmx polls) from a view."""

    def decorator(build: Callable[[Request], tuple[tuple[Any, ...], Callable[[], Any]]]) -> Any:
        async def endpoint(request: Request) -> Response:
            key, compute = build(request)
            try:
                view = await _view(request, key, compute)
            except NotFoundError as exc:
                return _error_page(request, 404, str(exc))
            except ArbiterError as exc:
                return _error_page(request, 422, str(exc))
            d: views.Dashboard = request.app.state.dashboard
            context = {
                "view": view,
                "models": d.models(),
                "refresh_s": request.app.state.refresh_s,
                "live_url": str(request.url.path),
                "json_url": "/api" + (request.url.path if request.url.path != "/" else "/overview"),
                "now": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            }
            name = fragment if request.headers.get("hx-request") else template
            response = request.app.state.templates.TemplateResponse(request, name, context)
            response.headers["vary"] = "HX-Request"  # a fragment is not the page
            return response

        return endpoint

    return decorator


def _error_page(request: Request, status: int, message: str) -> Response:
    d: views.Dashboard = request.app.state.dashboard
    return request.app.state.templates.TemplateResponse(
        request,
        "error.html.j2",
        {
            "message": message,
            "models": d.models(),
            "status": status,
            "refresh_s": request.app.state.refresh_s,
        },
        status_code=status,
    )


def _model(request: Request) -> str:
    return str(request.path_params["model"])


@_page("overview.html.j2", "overview_live.html.j2")
def overview_page(request: Request) -> Any:
    d = request.app.state.dashboard
    return ("overview",), lambda: views.overview(d)


@_page("experiment.html.j2", "experiment_live.html.j2")
def experiment_page(request: Request) -> Any:
    d = request.app.state.dashboard
    model, name = _model(request), str(request.path_params["experiment"])
    return ("experiment", model, name), lambda: views.experiment(d, model, name)


@_page("model.html.j2", "model_live.html.j2")
def model_page(request: Request) -> Any:
    d = request.app.state.dashboard
    model = _model(request)

    def compute() -> Any:
        d.check_model(model)
        return {"model": model, "experiments": views.experiment_names(d, model)}

    return ("model", model), compute


@_page("canary.html.j2", "canary_live.html.j2")
def canary_page(request: Request) -> Any:
    d = request.app.state.dashboard
    model = _model(request)
    return ("canary", model), lambda: views.canary(d, model)


@_page("drift.html.j2", "drift_live.html.j2")
def drift_page(request: Request) -> Any:
    d = request.app.state.dashboard
    model = _model(request)
    return ("drift", model), lambda: views.drift(d, model)


@_page("history.html.j2", "history_live.html.j2")
def history_page(request: Request) -> Any:
    d = request.app.state.dashboard
    model = _model(request)
    return ("history", model), lambda: views.history(d, model)


_JSON_VIEWS: dict[str, Callable[[views.Dashboard, str], Any]] = {
    "canary": views.canary,
    "drift": views.drift,
    "history": views.history,
}


async def api_overview(request: Request) -> Response:
    d = request.app.state.dashboard
    return _json(await _view(request, ("overview",), lambda: views.overview(d)))


async def api_model_view(request: Request) -> Response:
    d = request.app.state.dashboard
    model, page = _model(request), str(request.path_params["page"])
    build = _JSON_VIEWS.get(page)
    if build is None:
        return _json_error(404, "not_found", f"no view {page!r}; views: {', '.join(_JSON_VIEWS)}")
    try:
        return _json(await _view(request, (page, model), lambda: build(d, model)))
    except NotFoundError as exc:
        return _json_error(404, "not_found", str(exc))


async def api_experiment(request: Request) -> Response:
    d = request.app.state.dashboard
    model, name = _model(request), str(request.path_params["experiment"])
    try:
        view = await _view(
            request, ("experiment", model, name), lambda: views.experiment(d, model, name)
        )
    except NotFoundError as exc:
        return _json_error(404, "not_found", str(exc))
    return _json(view)


def _json(value: Any) -> Response:
    import orjson

    options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    return Response(orjson.dumps(value, option=options, default=str), media_type="application/json")


def _json_error(status: int, code: str, message: str, field: str | None = None) -> Response:
    return JSONResponse({"error": {"code": code, "message": message, "field": field}}, status)


async def canary_action(request: Request) -> Response:
    """Forward an operator action to the gateway's admin API, token and reason unchanged."""
    model, action = _model(request), str(request.path_params["action"])
    if action not in CANARY_ACTIONS:
        message = f"action must be one of {', '.join(CANARY_ACTIONS)}"
        return _json_error(422, "invalid_input", message, "action")
    dashboard: views.Dashboard = request.app.state.dashboard
    if model not in dashboard.models():  # only configured models reach the gateway's URL
        return _json_error(404, "not_found", f"model {model!r} is not configured", "model")
    gateway = dashboard.gateway_url
    if not gateway:
        message = (
            "the dashboard was started without a gateway URL (arbiter ui --gateway URL); "
            "actions go through its admin API"
        )
        return _json_error(503, "no_gateway", message)
    body = await request.body()
    if len(body) > 64 * 1024:
        return _json_error(413, "too_large", "an action's body holds one short reason", "body")
    headers = {"content-type": "application/json"}
    if "authorization" in request.headers:
        headers["authorization"] = request.headers["authorization"]
    headers["x-arbiter-actor"] = "dashboard"
    client: httpx.AsyncClient = request.app.state.http
    try:
        answer = await client.post(
            f"{gateway}/admin/canary/{model}/{action}", content=body, headers=headers
        )
    except httpx.HTTPError as exc:
        message = (
            f"the gateway at {gateway} did not answer ({type(exc).__name__}); "
            "is `arbiter serve` running?"
        )
        return _json_error(502, "gateway_unreachable", message)
    request.app.state.cache.clear()  # the next poll shows the new status
    return Response(
        answer.content,
        status_code=answer.status_code,
        media_type=answer.headers.get("content-type", "application/json"),
    )


async def plotly(request: Request) -> Response:
    headers = {"cache-control": "max-age=86400"}
    return FileResponse(plotly_js(), media_type="text/javascript", headers=headers)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", "error")
    if request.url.path.startswith("/api/"):
        return _json_error(status, "not_found" if status == 404 else "error", str(detail))
    return _error_page(request, status, f"{request.url.path}: {detail}")


class SecurityHeaders:
    """Adds the Content-Security-Policy and friends to every response (pure ASGI)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_ui_app(
    home: Home | str | Path,
    *,
    gateway_url: str | None = None,
    refresh_s: float = REFRESH_S,
) -> Starlette:
    """The dashboard over ``home``'s registry and event store.

    Parameters
    ----------
    home : Home or path
        The arbiter home (its ``arbiter.yaml`` says where the registry and events are).
    gateway_url : str, optional
        Base URL of the gateway whose admin API takes operator actions (``None``: the canary
        buttons answer that no gateway is configured).
    refresh_s : float
        Seconds between two live updates of a page.
    """
    from contextlib import asynccontextmanager

    from starlette.middleware import Middleware

    h = home if isinstance(home, Home) else Home.at(home)
    if not h.root.exists():
        raise NotFoundError(f"home {h.root} does not exist; run `arbiter demo` or create it")
    if refresh_s <= 0:
        raise InvalidInputError("refresh_s must be positive", field="refresh")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        async with httpx.AsyncClient(timeout=30.0) as client:
            app.state.http = client
            yield

    routes = [
        Route("/", overview_page),
        Route("/models/{model}", model_page),
        Route("/models/{model}/experiments/{experiment}", experiment_page),
        Route("/models/{model}/canary", canary_page),
        Route("/models/{model}/drift", drift_page),
        Route("/models/{model}/history", history_page),
        Route("/api/overview", api_overview),
        Route("/api/models/{model}/experiments/{experiment}", api_experiment),
        Route("/api/models/{model}/{page}", api_model_view),
        Route("/api/models/{model}/canary/{action}", canary_action, methods=["POST"]),
        Route("/static/vendor/plotly.min.js", plotly),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: _not_found},
        lifespan=lifespan,
    )
    app.state.dashboard = views.Dashboard(h, gateway_url=gateway_url and gateway_url.rstrip("/"))
    app.state.templates = _templates()
    app.state.cache = ViewCache()
    app.state.refresh_s = refresh_s
    return app


__all__ = ["CACHE_S", "CANARY_ACTIONS", "REFRESH_S", "ViewCache", "create_ui_app"]
