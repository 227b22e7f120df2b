"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a copy of
the demo's home served by a real gateway and a real `arbiter ui` server.

One setup per module (the browser, the gateway, the dashboard and the traffic), since each
costs seconds: the demo's home comes from the docs tests' session fixture (built once per
session, or ``ARBITER_DOCS_DEMO_HOME``), is copied, and gets a fresh canary (the demo's
first champion as the challenger, with stages that never advance on their own) so that the
operator buttons have something to steer.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.docs.conftest import DemoHome, build_demo_home

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_TOKEN = "ui-test-admin-token-0123456789abcdef"
#: Where the test run leaves a screenshot of each page. Every run takes them (a page that
#: cannot be drawn fails here); they land in docs/img, which is committed and shown by the
#: README, only with ARBITER_UPDATE_SCREENSHOTS=1, so a CI run leaves the checkout clean.
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "img"
    if os.environ.get("ARBITER_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "arbiter-ui-screenshots"
)


@dataclass
class Stack:
    home: Path
    gateway: str
    ui: str
    traffic: Traffic


class Traffic:
    """Predictions sent to the gateway from a thread until stopped (counted, errors too)."""

    def __init__(self, url: str, model: str = "fraud") -> None:
        from arbiter.demo.data import make_transactions

        self.rows = make_transactions(300, seed=7).features.to_dict("records")
        self.url, self.model = url, model
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ui-traffic", daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                i = self.sent
                client.post(
                    f"/models/{self.model}/predict",
                    json={
                        "user_id": f"ui-user-{i % 500}",
                        "features": self.rows[i % len(self.rows)],
                    },
                )
                self.sent += 1
                # A pace, not a wait for anything: a few requests a second keep the live
                # numbers moving without taking the CPU the browser and the dashboard need.
                self._stop.wait(0.2)

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def wait_for(check: Callable[[], Any], timeout_s: float = 60.0, interval_s: float = 0.2) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout_s`` (a bound)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s} s (last: {value!r})")
        time.sleep(interval_s)


def _fresh_canary(root: Path) -> None:
    """Point the challenger alias at the demo's first champion (now ``previous``), with a plan
    whose stages need far more requests than the test sends and no checkpoint within the
    test: the canary stays running until an operator acts."""
    from arbiter.registry import registry_for_home

    path = root / "arbiter.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    canary = config["models"]["fraud"]["experiment"]["canary"]
    canary["stages"] = [
        {"share": 0.2, "min_requests": 1_000_000, "min_duration_s": 0.0},
        {"share": 1.0, "min_requests": 1_000_000, "min_duration_s": 0.0},
    ]
    # No checkpoint during the test: a real checkpoint judges the real evidence and may roll
    # the old champion back (its predictions differ from the new one's), which would race
    # the operator actions under test. The demo checks every 0.25 s.
    canary["analysis_interval_s"] = 3600.0
    config["registry"]["poll_interval_s"] = 0.5
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    registry = registry_for_home(root)
    previous = registry.aliases("fraud")["previous"]
    registry.client.set_registered_model_alias("fraud", "challenger", previous)


@pytest.fixture(scope="session")
def ui_demo_home(tmp_path_factory: pytest.TempPathFactory) -> DemoHome:
    """The docs tests' demo home (one build per session, whichever folder runs first)."""
    return build_demo_home(tmp_path_factory)


@pytest.fixture(scope="module")
def stack(ui_demo_home: DemoHome, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A copy of the demo's home with a running canary, its gateway (admin token set), the
    dashboard pointing at it, and traffic flowing."""
    from arbiter.gateway.app import create_app
    from arbiter.gateway.server import ServerThread
    from arbiter.home import Home
    from arbiter.ui import create_ui_app

    root = tmp_path_factory.mktemp("ui") / "arbiter-home"
    assert ui_demo_home.snapshot is not None  # the docs' server may be writing to its root
    shutil.copytree(ui_demo_home.snapshot, root, ignore=shutil.ignore_patterns(".serve.lock"))
    _fresh_canary(root)
    saved = os.environ.get("ARBITER_ADMIN_TOKEN")
    os.environ["ARBITER_ADMIN_TOKEN"] = ADMIN_TOKEN
    gateway = ServerThread(create_app(Home.at(root))).start()
    ui = ServerThread(create_ui_app(root, gateway_url=gateway.url, refresh_s=2.0)).start()
    traffic = Traffic(gateway.url).start()
    try:
        yield Stack(root, gateway.url, ui.url, traffic)
    finally:
        traffic.stop()
        ui.stop()
        gateway.stop()
        if saved is None:
            os.environ.pop("ARBITER_ADMIN_TOKEN", None)
        else:
            os.environ["ARBITER_ADMIN_TOKEN"] = saved


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium (``apt-get install chromium``; `make test` installs it)."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Chromium is missing: apt-get install -y chromium (make test does)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def context(browser: Any) -> Iterator[Any]:
    """One browser context per module, at a laptop's screen size: its HTTP cache keeps
    Plotly's 4.8 MB bundle after the first page (each test's tab still starts without a
    token: sessionStorage belongs to the tab)."""
    context = browser.new_context(viewport={"width": 1366, "height": 860})
    context.set_default_timeout(60_000)  # a bound for a busy machine, not a delay
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    """A new tab per test; fails the test on any script error or failed request."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # A poll in flight when the test navigates away is aborted by the browser: not an error.
    page.on(
        "requestfailed",
        lambda r: "ERR_ABORTED" in (r.failure or "") or errors.append(f"{r.url}: {r.failure}"),
    )
    try:
        yield page
    finally:
        page.close()
    assert not errors, errors


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)
