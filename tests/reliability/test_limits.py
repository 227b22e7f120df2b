"""Issue 14, item 4 (resource exhaustion) and the HTTP answers of items 5 and 9.

Every test runs a real gateway on 127.0.0.1. Slow bodies and huge headers are sent through raw
sockets, so nothing in a client library hides what the server does; the 413 test uses urllib,
the client that saw "connection reset by peer" before.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from arbiter.home import Home

TOKEN = "a-test-token-of-thirty-two-chars"


def _raw(sock: socket.socket, timeout_s: float) -> bytes:
    """Everything the server sends until it closes the connection (bounded by timeout_s)."""
    sock.settimeout(timeout_s)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _status_and_json(raw: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=30)


# --- bodies --------------------------------------------------------------------------------


def test_posting_far_over_the_limit_reads_the_413_json(running: Callable[..., Any]) -> None:
    """Before: urllib raised 'connection reset'/'broken pipe' from 4 MB over a 1 MiB limit."""
    server, _ = running({"fraud": {}}, server={"max_body_bytes": 1_048_576})
    for megabytes in (4, 16):
        body = b'{"features": [' + b"1," * (megabytes * 1_048_576 // 2) + b"1]}"
        request = urllib.request.Request(
            server.url + "/models/fraud/predict",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=60)
        assert caught.value.code == 413
        error = json.loads(caught.value.read())["error"]
        assert error["code"] == "body_too_large" and "max_body_bytes" in error["message"]

    # Without Content-Length the limit is found while streaming, and the rest is drained.
    def chunks() -> Any:
        for _ in range(64):
            yield b"x" * 65536

    r = httpx.post(server.url + "/models/fraud/predict", content=chunks(), timeout=60)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


def test_urllib_posting_without_the_token_reads_the_401_json(
    running: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 401 is also answered before the body is read: the body is drained first."""
    monkeypatch.setenv("ARBITER_API_TOKEN", TOKEN)
    server, home = running({"fraud": {}})
    size = 4_000_000
    assert size < home.config().server.max_body_bytes
    request = urllib.request.Request(
        server.url + "/feedback",
        data=b"[" + b"1," * (size // 2) + b"1]",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 401
    assert json.loads(caught.value.read())["error"]["code"] == "unauthorized"


def test_gzip_bomb_is_refused_at_max_body_bytes(running: Callable[..., Any]) -> None:
    """Before: a v2 body inflated up to 256 MiB whatever max_body_bytes said (then 400)."""
    server, _ = running({"fraud": {}}, server={"max_body_bytes": 1_048_576})
    bomb = gzip.compress(b" " * (64 * 1_048_576), compresslevel=9)  # ~64 KB on the wire
    assert len(bomb) < 1_048_576
    r = httpx.post(
        server.url + "/v2/models/fraud/infer",
        content=bomb,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 413, r.text
    assert "max_body_bytes" in r.text
    assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200


def test_compressed_requests_are_served_on_every_endpoint(
    running: Callable[..., Any], fraud_rows: list[dict[str, float]]
) -> None:
    server, _ = running({"fraud": {}})
    names = list(fraud_rows[0])
    doc = {
        "inputs": [
            {"name": n, "shape": [2], "datatype": "FP64", "data": [r[n] for r in fraud_rows[:2]]}
            for n in names
        ]
    }
    for encoding, data in (
        ("gzip", gzip.compress(orjson.dumps(doc))),
        ("deflate", __import__("zlib").compress(orjson.dumps(doc))),
    ):
        r = httpx.post(
            server.url + "/v2/models/fraud/infer",
            content=data,
            headers={"Content-Encoding": encoding, "Content-Type": "application/json"},
            timeout=60,
        )
        assert r.status_code == 200, (encoding, r.text)
        assert r.json()["outputs"][0]["shape"][0] == 2
    r = httpx.post(
        server.url + "/v2/models/fraud/infer",
        content=gzip.compress(orjson.dumps(doc))[:-12],
        headers={"Content-Encoding": "gzip"},
        timeout=60,
    )
    assert r.status_code == 400 and "truncated" in r.text
    # Every endpoint takes compressed bodies now (before: only v2; /predict answered 400).
    r = httpx.post(
        server.url + "/models/fraud/predict",
        content=gzip.compress(orjson.dumps({"features": fraud_rows[:3]})),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 200 and len(r.json()["predictions"]) == 3


def test_a_full_batch_fits_the_default_body_limit(
    running: Callable[..., Any], fraud_rows: list[dict[str, float]]
) -> None:
    """Before: max_batch_rows 10000 could not be reached under the 1 MiB body (8,810 rows)."""
    server, home = running({"fraud": {}})
    rows = home.config().server.max_batch_rows
    batch = (fraud_rows * (rows // len(fraud_rows) + 1))[:rows]
    body = orjson.dumps({"features": batch})
    assert len(body) > 1_048_576  # the old fixed limit
    r = httpx.post(
        server.url + "/models/fraud/predict",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=120,
    )
    assert r.status_code == 200, r.text[:300]
    assert len(r.json()["predictions"]) == rows


# --- headers and read time -----------------------------------------------------------------


def test_a_huge_header_is_refused_with_431(running: Callable[..., Any]) -> None:
    """Before: a 16 MB header was accepted (200)."""
    server, _ = running({"fraud": {}})
    with _connect(server.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(256):  # up to 16 MB, unless the server has closed before
                sock.sendall(b"a" * 65536)
            sock.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = _raw(sock, 60)
    status, body = _status_and_json(raw)
    assert status == 431 and body["error"]["code"] == "headers_too_large"
    assert "max_header_bytes" in body["error"]["message"]


def test_too_many_headers_are_refused_with_431(running: Callable[..., Any]) -> None:
    server, _ = running({"fraud": {}})
    count = 101  # server.max_header_count defaults to 100
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(count))
    with _connect(server.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        status, body = _status_and_json(_raw(sock, 60))
    assert status == 431 and body["error"]["code"] == "too_many_headers"


def test_a_slow_body_is_cut_off_with_408(
    running: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a body that never finished held its connection open indefinitely."""
    server, _ = running({"fraud": {}}, server={"read_timeout_s": 1.0})
    uvicorn_log = logging.getLogger("uvicorn.error")  # uvicorn's loggers do not propagate
    uvicorn_log.addHandler(caplog.handler)
    try:
        with _connect(server.url) as sock:
            sock.sendall(
                b"POST /models/fraud/predict HTTP/1.1\r\nHost: x\r\n"
                b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"features": '
            )
            started = time.monotonic()
            raw = _raw(sock, 60)  # the bound: the server must close well before it
            waited = time.monotonic() - started
        assert httpx.get(server.url + "/healthz").status_code == 200
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    status, body = _status_and_json(raw)
    assert status == 408 and body["error"]["code"] == "request_timeout"
    assert waited < 55
    assert "Exception in ASGI application" not in caplog.text  # a slow client is not a 500


def test_a_silent_connection_is_closed_but_a_slow_model_is_not_cut_off(
    running: Callable[..., Any], fraud_rows: list[dict[str, float]]
) -> None:
    """Before: a connection that sent nothing stayed open. The read clock bounds the client's
    sending only: it stops once the request has arrived, so a slow model keeps its time."""
    server, _ = running({"faulty": {"champion_alias": "hanging"}}, server={"read_timeout_s": 1.0})
    with _connect(server.url) as sock:
        status, _ = _status_and_json(_raw(sock, 60))
    assert status == 408
    started = time.monotonic()
    r = httpx.post(
        server.url + "/models/faulty/predict", json={"features": fraud_rows[0]}, timeout=120
    )
    # The model sleeps 30 s (or meets its deadline): either way long after the read timeout.
    assert r.status_code != 408 and time.monotonic() - started > 1.0


# --- JSON for the router's own errors, tokens ---------------------------------------------


def test_404_and_405_answer_json(running: Callable[..., Any]) -> None:
    server, _ = running({"fraud": {}})
    r = httpx.get(server.url + "/no/such/route")
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "not_found"
    r = httpx.get(server.url + "/models/fraud/predict")
    assert r.status_code == 405 and r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in r.headers["allow"]


@pytest.mark.parametrize("credential", ["Bearer \u00e9t\u00e9".encode(), b"Bearer \xff\xfe"])
def test_non_ascii_tokens_are_401_not_500(
    running: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    fraud_rows: list[dict[str, float]],
    credential: bytes,
) -> None:
    """Before: hmac.compare_digest raised TypeError on a non-ASCII str: 500."""
    monkeypatch.setenv("ARBITER_API_TOKEN", TOKEN)
    server, _ = running({"fraud": {"experiment": {"strategy": "ab"}}})
    r = httpx.get(server.url + "/admin/experiments/fraud", headers={"Authorization": credential})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = httpx.post(
        server.url + "/models/fraud/predict",
        json={"features": fraud_rows[0]},
        headers={"Authorization": credential, "X-Arbiter-Arm": "challenger"},
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = httpx.post(server.url + "/feedback", json={}, headers={"Authorization": credential})
    assert r.status_code == 401
    # and the right token still works
    r = httpx.get(
        server.url + "/admin/experiments/fraud", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert r.status_code == 200


def test_a_short_token_is_refused_for_a_public_bind(make_home: Callable[..., Home]) -> None:
    """Before: a one-character token was accepted on 0.0.0.0."""
    home = make_home({"fraud": {}})
    env = {**os.environ, "ARBITER_API_TOKEN": "x", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "arbiter", "serve", "--home", str(home.root), "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "fewer than 16" in output and "Traceback" not in output
