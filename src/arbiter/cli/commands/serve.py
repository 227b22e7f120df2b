"""``arbiter serve``: run the gateway."""

from __future__ import annotations

from pathlib import Path

import typer

from arbiter.cli.options import HomeOption


def serve(
    home: Path = HomeOption,
    host: str = typer.Option(
        None, "--host", help="Address to bind (default: server.host, 127.0.0.1)."
    ),
    port: int = typer.Option(None, "--port", "-p", help="Port (default: server.port, 8000)."),
    workers: int = typer.Option(
        None, "--workers", "-w", min=1, help="Worker processes (default: server.workers, 1)."
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve every model configured in HOME/arbiter.yaml over HTTP.

    Endpoints: /models/{name}/predict (arbiter JSON), /models/{name}/invocations and
    /invocations (MLflow scoring protocol), /v2/... (Open Inference Protocol, tritonclient),
    /feedback, /models, /metrics, /healthz, /readyz, /openapi.json.
    Binds 127.0.0.1 unless told otherwise, and refuses other addresses without an API token.
    """
    from arbiter.threads import single_threaded_native_pools

    single_threaded_native_pools()
    import logging

    from arbiter.gateway.server import serve as run
    from arbiter.home import Home

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    h = Home.at(home)
    if not h.root.exists():
        from arbiter.errors import NotFoundError

        raise NotFoundError(f"home {h.root} does not exist; run `arbiter demo` or create it")
    config = h.config()
    run(
        h,
        host=host or config.server.host,
        port=port if port is not None else config.server.port,
        workers=workers or config.server.workers,
        log_level=log_level,
    )
