"""``arbiter ui``: the web dashboard over a home's registry and event log."""

from __future__ import annotations

from pathlib import Path

import typer

from arbiter.cli.options import HomeOption


def ui(
    home: Path = HomeOption,
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to bind. Anything but loopback needs the API token, as `serve` does.",
    ),
    port: int = typer.Option(8080, "--port", "-p", min=0, max=65535, help="Port to listen on."),
    gateway: str = typer.Option(
        None,
        "--gateway",
        help="Gateway whose admin API takes the canary actions "
        "(default: http://server.host:server.port of arbiter.yaml, loopback for 0.0.0.0).",
    ),
    refresh: float = typer.Option(
        5.0, "--refresh", min=0.5, help="Seconds between two live updates of a page."
    ),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn's log level."),
) -> None:
    """Serve the dashboard: overview, experiments, canary, drift and history pages.

    Pages update live (no reloads) and need no internet: Plotly and htmx are served by arbiter.
    Read-only except the canary's Pause / Resume / Promote / Abort buttons, which call the
    gateway's admin API with the admin token you enter once per browser session.
    See docs/dashboard.md.
    """
    import os

    import uvicorn

    from arbiter.errors import NotFoundError
    from arbiter.gateway.server import check_bind
    from arbiter.home import Home
    from arbiter.logs import setup
    from arbiter.ui import create_ui_app

    # The drift page reads reference profiles from the registry: no progress bars on stderr.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    h = Home.at(home)
    if not h.root.exists():
        raise NotFoundError(f"home {h.root} does not exist; run `arbiter demo` or create it")
    config = h.config()
    check_bind(host, config.api_token(), config.admin_token())
    if gateway is None:
        bound = config.server.host
        # A gateway bound to every address is reachable on loopback.
        gateway_host = "127.0.0.1" if bound in ("0.0.0.0", "::", "") else bound
        if ":" in gateway_host:
            gateway_host = f"[{gateway_host}]"
        gateway = f"http://{gateway_host}:{config.server.port}"
    elif not gateway.startswith(("http://", "https://")):
        from arbiter.errors import InvalidInputError

        raise InvalidInputError(
            f"--gateway must be an http:// or https:// URL, got {gateway!r}", field="--gateway"
        )
    app = create_ui_app(h, gateway_url=gateway, refresh_s=refresh)
    logs = setup(log_level)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"arbiter ui: http://{shown}:{port}/ (home {h.root}; actions via {gateway})")
    uvicorn.run(app, host=host, port=port, log_level=log_level, log_config=logs)
