"""Issue 14, item 3: no secret, SQL or absolute path in a response or a log line.

Each test runs a real gateway on 127.0.0.1 against a real (broken or unreachable) registry or
event store, and reads both what the client sees and every log record the process wrote.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

PASSWORD = "hunter2-Secret"


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record as a handler would print it, traceback included."""
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Any:
    """caplog, also fed by MLflow's loggers (MLflow stops them propagating to the root)."""
    mlflow_logger = logging.getLogger("mlflow")
    mlflow_logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        mlflow_logger.removeHandler(caplog.handler)


def _poll(
    url: str, until: Callable[[httpx.Response], bool], bound_s: float = 120
) -> httpx.Response:
    deadline = time.monotonic() + bound_s
    while True:
        r = httpx.get(url, timeout=30)
        if until(r) or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_readyz_and_log_do_not_show_the_tracking_uri_password(
    running: Callable[..., Any], all_logs: pytest.LogCaptureFixture
) -> None:
    """Before: /readyz (unauthenticated) and the log printed http://user:password@host."""
    caplog = all_logs
    caplog.set_level(logging.DEBUG)
    closed = httpx.URL("http://127.0.0.1:9")  # discard port: nothing listens
    uri = f"http://alice:{PASSWORD}@{closed.host}:{closed.port}"
    server, _ = running({"fraud": {}}, registry={"tracking_uri": uri, "poll_interval_s": 0.2})
    r = _poll(server.url + "/readyz", lambda r: r.json()["registry"]["error"] is not None)
    assert r.status_code == 503
    error = r.json()["registry"]["error"]
    assert "127.0.0.1:9" in error  # still says where it failed
    assert PASSWORD not in r.text
    for path in ("/models", "/models/fraud/predict"):
        answer = httpx.request(
            "GET" if path == "/models" else "POST", server.url + path, json={"features": {}}
        )
        assert PASSWORD not in answer.text
    logged = _log_text(caplog)
    assert "127.0.0.1:9" in logged  # the failure was logged...
    assert PASSWORD not in logged  # ...without the password


def test_registry_database_errors_show_no_sql(
    running: Callable[..., Any], all_logs: pytest.LogCaptureFixture
) -> None:
    """Before: /readyz showed SQLAlchemy's [SQL: SELECT ...] text and parameters; MLflow's
    database store logs each such error with its statement, at ERROR, with a traceback."""
    caplog = all_logs
    caplog.set_level(logging.INFO)
    server, home = running({"fraud": {}}, registry={"poll_interval_s": 0.2})
    assert httpx.get(server.url + "/readyz").json()["registry"]["reachable"] is True
    with sqlite3.connect(home.mlflow_db) as con:
        con.execute("DROP TABLE registered_model_aliases")
    r = _poll(server.url + "/readyz", lambda r: r.json()["registry"]["reachable"] is False)
    error = r.json()["registry"]["error"]
    assert error is not None and "no such table" in error  # the cause, in one line
    logged = _log_text(caplog)
    assert "no such table" in logged  # MLflow's and arbiter's lines were captured...
    for leak in ("SELECT", "[SQL", "[parameters", "sqlalche.me", str(home.root)):
        assert leak not in r.text, leak
        assert leak not in logged, leak  # ...without the statement


def test_an_event_store_failure_answers_without_its_path(
    running: Callable[..., Any], fraud_rows: list[dict[str, float]]
) -> None:
    """Before: a feedback 503 quoted the absolute path of the events folder."""
    server, home = running({"fraud": {}})
    predicted = httpx.post(server.url + "/models/fraud/predict", json={"features": fraud_rows[0]})
    request_id = predicted.json()["request_id"]
    feedback_dir = home.root / "events" / "feedback"
    shutil.rmtree(feedback_dir, ignore_errors=True)
    feedback_dir.parent.mkdir(parents=True, exist_ok=True)
    feedback_dir.write_text("not a folder")  # every write below it fails, even as root
    r = httpx.post(
        server.url + "/feedback",
        json={"request_id": request_id, "row_index": 0, "label": 1},
        timeout=60,
    )
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "event_store_error"
    assert str(home.root) not in r.text and "/events" not in r.text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("API request to http://bob:pa55@host:5000/api failed", "pa55"),
        ("postgresql://bob:p%40ss@db:5432/mlflow?sslmode=require", "p%40ss"),
        ("mysql://u:at@sign@db/x", "at@sign"),
        ("https://db/x?user=u&password=s3cr3t&x=1", "s3cr3t"),
        ("sent 'Authorization: Bearer abcdefghijklmnop'", "abcdefghijklmnop"),
        (
            "(OperationalError) boom\n[SQL: SELECT a FROM t WHERE x = ?]\n[parameters: ('k',)]",
            "SELECT",
        ),
    ],
)
def test_redact_removes_each_kind_of_secret(text: str, secret: str) -> None:
    from arbiter.redact import redact  # here, so the server tests above run on older code

    assert secret not in redact(text)
