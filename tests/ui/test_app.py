"""The dashboard's app without a browser: empty states, errors, offline assets, the action
proxy's refusals and the CLI's bind rule (real registry, the app on a real uvicorn server)."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from arbiter.gateway.server import ServerThread
from arbiter.home import Home
from arbiter.ui import create_ui_app

CANARY = {"experiment": {"strategy": "canary", "challenger_alias": "challenger"}}


@pytest.fixture
def client(make_home: Callable[..., Home]) -> Any:
    home = make_home({"fraud": CANARY, "faulty": {}})
    app = create_ui_app(home, gateway_url=None)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def test_pages_say_what_is_missing_before_any_traffic(client: httpx.Client) -> None:
    overview = client.get("/")
    assert overview.status_code == 200
    assert 'data-model="fraud"' in overview.text and 'data-model="faulty"' in overview.text
    assert "no requests in the last 60 s" in overview.text
    assert "no traffic logged yet for fraud" in client.get("/models/fraud").text
    drift = client.get("/models/fraud/drift")
    assert drift.status_code == 200 and "no event log yet" in drift.text
    assert "no loop cycles yet" in drift.text
    canary = client.get("/models/fraud/canary")
    assert canary.status_code == 200 and 'id="canary-status"' in canary.text
    assert "runs strategy none, not a canary" in client.get("/models/faulty/canary").text
    assert client.get("/models/fraud/history").status_code == 200
    # htmx asks for the live fragment alone
    fragment = client.get("/", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'data-model="fraud"' in fragment.text


def test_unknown_models_and_views_answer_404(client: httpx.Client) -> None:
    page = client.get("/models/nope/history")
    assert page.status_code == 404 and "model 'nope' is not configured" in page.text
    api = client.get("/api/models/nope/history")
    assert api.status_code == 404 and "nope" in api.json()["error"]["message"]
    assert client.get("/api/models/fraud/bogus").status_code == 404
    assert client.get("/api/nothing").json()["error"]["code"] == "not_found"
    assert client.get("/models/fraud/experiments/none-such").status_code == 404


def test_every_script_and_style_is_served_by_arbiter(client: httpx.Client) -> None:
    """Works offline: no CDN, each asset answers 200 from this server (Plotly from the
    plotly package, htmx vendored with its licence)."""
    html = client.get("/models/fraud/canary")
    assert "script-src 'self'" in html.headers["content-security-policy"]
    assets = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html.text)
    assert len(assets) == 4, assets
    for url in assets:
        assert url.startswith("/static/"), url
        r = client.get(url)
        assert r.status_code == 200 and len(r.content) > 1000, url
    assert "plotly" in client.get("/static/vendor/plotly.min.js").text[:2000].lower()
    assert client.get("/static/vendor/htmx/LICENSE").status_code == 200


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_canary_actions_are_refused_with_a_reason(make_home: Callable[..., Home]) -> None:
    home = make_home({"fraud": CANARY})
    with ServerThread(create_ui_app(home)) as server, httpx.Client(base_url=server.url) as c:
        r = c.post("/api/models/fraud/canary/pause")
        assert r.status_code == 503 and "--gateway" in r.json()["error"]["message"]
        r = c.post("/api/models/fraud/canary/explode")
        assert r.status_code == 422 and r.json()["error"]["field"] == "action"
        r = c.post("/api/models/nope/canary/pause")
        assert r.status_code == 404 and r.json()["error"]["field"] == "model"
    gateway = f"http://127.0.0.1:{_closed_port()}"
    app = create_ui_app(home, gateway_url=gateway)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=60) as c:
        r = c.post("/api/models/fraud/canary/pause", headers={"Authorization": "Bearer x"})
        assert r.status_code == 502
        message = r.json()["error"]["message"]
        assert "did not answer" in message and "Bearer" not in message


def test_ui_refuses_a_public_address_without_a_token(
    make_home: Callable[..., Home],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from arbiter.cli import main

    home = make_home({"fraud": {}})
    monkeypatch.delenv("ARBITER_API_TOKEN", raising=False)
    monkeypatch.delenv("ARBITER_ADMIN_TOKEN", raising=False)
    with pytest.raises(SystemExit) as info:
        main(["ui", "--home", str(home.root), "--host", "0.0.0.0", "--port", "0"])
    assert info.value.code != 0
    err = capsys.readouterr().err
    assert "refusing to bind 0.0.0.0" in err and "Traceback" not in err
