"""Running the gateway under uvicorn: in the foreground (``arbiter serve``) or in a thread.

The thread runner is for the demo, notebooks and tests: a real uvicorn server on a real
loopback socket, started and stopped from Python.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

from arbiter.errors import ConfigError
from arbiter.home import Home

log = logging.getLogger(__name__)


#: How long an idle keep-alive connection stays open. uvicorn's default (5 s) equals httpx's
#: pool expiry (5 s), so a client could reuse a connection at the moment the server closed
#: it and see a ReadError (seen in the demo under load). Servers should outlive their
#: clients' idle timeouts (load balancers idle at 60 s, e.g. AWS ALB), so 75 s, as nginx.
KEEP_ALIVE_S = 75


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: Shortest token accepted on an address other machines can reach: a one-character token
#: falls to a few hundred guesses, 16 random characters do not.
MIN_PUBLIC_TOKEN_LENGTH = 16


def check_bind(host: str, token: str | None, admin_token: str | None = None) -> None:
    """Refuse to listen beyond this machine without an API token, or with a short one."""
    if is_loopback(host):
        return
    if not token:
        raise ConfigError(
            f"refusing to bind {host}: it is reachable from other machines and no API token is "
            "set. Set ARBITER_API_TOKEN (or server.api_token_env) or bind 127.0.0.1."
        )
    for which, value in (("API token", token), ("admin token", admin_token)):
        if value is not None and len(value) < MIN_PUBLIC_TOKEN_LENGTH:
            raise ConfigError(
                f"refusing to bind {host}: the {which} has {len(value)} characters, fewer than "
                f"{MIN_PUBLIC_TOKEN_LENGTH}; on an address other machines can reach use a long "
                "random one (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
                " or bind 127.0.0.1."
            )


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket; port 0 picks a free port (no race between choosing and binding)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(
    home: Home,
    *,
    host: str,
    port: int,
    workers: int,
    log_level: str = "info",
    log_config: dict[str, Any] | None = None,
) -> None:
    """Run the gateway in the foreground until SIGINT/SIGTERM (then flush and exit).

    ``log_config`` (:func:`arbiter.logs.log_config`) is applied by uvicorn in every worker
    process too, so all workers log with the same format; None keeps uvicorn's default.
    """
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from arbiter.gateway.http_limits import ENV, IMPORT_PATH, HttpLimits

    config = home.config()
    check_bind(host, config.api_token(), config.admin_token())
    # Header limits and the read timeout live in arbiter's protocol class (gateway.http_limits);
    # worker processes import it by name and read the limits from the environment.
    os.environ[ENV] = HttpLimits.of(config.server).to_env()
    if not config.models:
        raise ConfigError(
            f"{home.config_path} configures no models; add one under 'models:' "
            "(see the README, Configuration) or run `arbiter demo` first"
        )
    if workers > 1:
        # Each worker is its own process: metrics go through files, the home through the env.
        metrics_dir = home.root / "run" / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        os.environ["ARBITER_HOME"] = str(home.root)
        uvicorn.run(
            "arbiter.gateway.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            log_config=log_config or LOGGING_CONFIG,
            timeout_graceful_shutdown=30,
            timeout_keep_alive=KEEP_ALIVE_S,
            http=IMPORT_PATH,
        )
        return
    from arbiter.gateway.startup import pause_collection

    pause_collection()  # until the lifespan's freeze: the imports and models are long-lived
    from arbiter.gateway.app import create_app

    uvicorn.run(
        create_app(home, config=config),
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config or LOGGING_CONFIG,
        timeout_graceful_shutdown=30,
        timeout_keep_alive=KEEP_ALIVE_S,
        http=IMPORT_PATH,
    )


class ServerThread:
    """A uvicorn server on a loopback socket, in a background thread.

    >>> with ServerThread(app) as server:   # doctest: +SKIP
    ...     httpx.get(server.url + "/healthz")
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        limits: Any = None,
    ) -> None:
        import uvicorn

        from arbiter.gateway.http_limits import HttpLimits, LimitedHttpToolsProtocol, attach

        self.sock = bind_socket(host, port)
        self.host, self.port = self.sock.getsockname()[:2]
        self.config = uvicorn.Config(
            app,
            log_level=log_level,
            lifespan="on",
            timeout_graceful_shutdown=10,
            timeout_keep_alive=KEEP_ALIVE_S,
            http=LimitedHttpToolsProtocol,
        )
        # The app's own server settings (create_app keeps them on app.state), else defaults.
        server_config = getattr(getattr(app, "state", None), "server_config", None)
        if limits is None:
            limits = HttpLimits.of(server_config) if server_config is not None else HttpLimits()
        attach(self.config, limits)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self._run, name="arbiter-uvicorn", daemon=True)
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # surfaced by start()
            self.error = exc

    def start(self, timeout_s: float = 180.0) -> ServerThread:
        # A bound, not a delay: start-up (imports, loading every model from the registry)
        # takes seconds on a quiet machine and took over 60 s beside `stress-ng --cpu 2`.
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if self.error is not None or not self.thread.is_alive():
                raise RuntimeError(f"gateway failed to start: {self.error}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway did not start within {timeout_s} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)
        self.sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def home_path(path: str | Path) -> Home:
    return Home.at(path, create=True)


__all__ = [
    "MIN_PUBLIC_TOKEN_LENGTH",
    "ServerThread",
    "bind_socket",
    "check_bind",
    "is_loopback",
    "serve",
]
