"""A real webhook receiver on 127.0.0.1 (the standard library's threading HTTP server).

It records every delivery (headers and raw body, as signed) and can be told to answer with
a status or to hang until released, which is what the retry, dead-letter and latency tests
need from a receiver.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

SECRET = "alert-test-secret-0123456789"


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float


@dataclass
class Receiver:
    """What the handler reads: the answer to give, and what it got."""

    url: str = ""
    status: int = 200
    hang: threading.Event | None = None  # set: hang until released
    deliveries: list[Delivery] = field(default_factory=list)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self) -> list[str]:
        with self.lock:
            return [d.headers.get("x-arbiter-event", "") for d in self.deliveries]

    def hang_until_released(self) -> threading.Event:
        self.hang = threading.Event()
        return self.hang


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.attempts += 1
            hang = receiver.hang
            if hang is not None:
                hang.wait(60)
            status = receiver.status
            if 200 <= status < 300:
                with receiver.lock:
                    receiver.deliveries.append(
                        Delivery(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.time(),
                        )
                    )
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver; its ``url`` takes POSTs on any path."""
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/arbiter"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    if state.hang is not None:
        state.hang.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_url() -> str:
    """A loopback URL nobody listens on (connection refused): a receiver that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/arbiter"
