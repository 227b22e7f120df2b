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
    log_level: str = typer.Option(
        "info", "--log-level", help="Log level of arbiter and uvicorn (debug, info, warning)."
    ),
    log_format: str = typer.Option(
        "text",
        "--log-format",
        help="text: time, level, worker pid, logger, message; json: one JSON object per line.",
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Also show the libraries' INFO lines (MLflow, ...)."
    ),
) -> None:
    """Serve every model configured in HOME/arbiter.yaml over HTTP.

    Endpoints: /models/{name}/predict (arbiter JSON), /models/{name}/invocations and
    /invocations (MLflow scoring protocol), /v2/... (Open Inference Protocol, tritonclient),
    /feedback, /models, /metrics, /healthz, /readyz, /openapi.json.
    Binds 127.0.0.1 unless told otherwise, and refuses other addresses without an API token.
    """
    from arbiter.threads import single_threaded_native_pools

    single_threaded_native_pools()
    from arbiter.gateway.server import serve as run
    from arbiter.home import Home
    from arbiter.logs import LOG_FORMATS, setup

    if log_format not in LOG_FORMATS:
        from arbiter.errors import InvalidInputError

        raise InvalidInputError(
            f"--log-format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}",
            field="--log-format",
        )
    # The same config goes to uvicorn, which applies it again in each worker process.
    logs = setup(log_level, log_format, verbose=verbose)
    h = Home.at(home)
    if not h.root.exists():
        from arbiter.errors import NotFoundError

        raise NotFoundError(f"home {h.root} does not exist; run `arbiter demo` or create it")
    config = h.config()
    if config.alerts.webhooks:  # an unset url_env/secret_env: one line now, not in a worker
        from arbiter.alerts import resolve_webhooks

        resolve_webhooks(config.alerts)
    from arbiter.serve_lock import serving

    # Held while serving: `arbiter demo` refuses to rebuild a home a server uses.
    with serving(h.root):
        run(
            h,
            host=host or config.server.host,
            port=port if port is not None else config.server.port,
            workers=workers or config.server.workers,
            log_level=log_level,
            log_config=logs,
        )
