"""Fixtures for the dashboard's tests: a real relay server and a real browser.

The browser is Debian's ``chromium`` driven by Playwright (``executable_path``; no
browser download), headless, one per xdist worker; each test gets a fresh context
(its own localStorage) and a page on which every request is routed through
:class:`Offline`: one for an address outside 127.0.0.1 is refused and recorded, so a
test sees any page of ours that reaches for the internet. ``.ci/run`` installs the
``chromium`` package when it is missing; elsewhere the tests skip without it.

``dashboard`` is a server with the admin token :data:`ADMIN`; :func:`cli` runs the
real ``relaybus`` command against it, as another process would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.env import clean_environ
from tests.support.live import LiveServer, live_server

#: The admin token of the dashboard's server.
ADMIN = "dashboard-admin-token"
#: Milliseconds a page may take to show what a test waits for.
WAIT_MS = 30_000
#: Chromium's flags for a closed network: no background requests to Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
]
#: Where the docs' screenshots go (docs/dashboard.md shows them).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "images"


def chromium() -> str | None:
    """The Chromium to drive: ``RELAYBUS_TEST_CHROMIUM``, or ``chromium`` on the PATH."""
    return os.environ.get("RELAYBUS_TEST_CHROMIUM") or shutil.which("chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium per test process."""
    executable = chromium()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("the dashboard tests need Debian's chromium package (.ci/run installs it)")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


class Offline:
    """Routes every request of a browser context: loopback ones go on, any other is
    aborted and kept in :attr:`refused` (a test asserts it stays empty)."""

    def __init__(self) -> None:
        self.refused: list[str] = []
        self.seen: list[str] = []

    def __call__(self, route: Any) -> None:
        url = route.request.url
        self.seen.append(url)
        host = urlsplit(url).hostname or ""
        if url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost", "::1"):
            route.continue_()
        else:
            self.refused.append(url)
            route.abort()


@pytest.fixture
def offline() -> Offline:
    return Offline()


@pytest.fixture
def page(browser: Any, offline: Offline) -> Iterator[Any]:
    """A page in a fresh browser context (its own storage), with every request routed
    through ``offline``; console errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.route("**/*", offline)
    errors: list[str] = []
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("pageerror", lambda error: errors.append(f"{error}\n{error.stack}"))
    try:
        yield page
    finally:
        context.close()
    assert not errors, errors
    assert not offline.refused, offline.refused


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[LiveServer]:
    """A relay server with the admin token :data:`ADMIN` (SQLite)."""
    with live_server(tmp_path, admin_token=ADMIN, sse_heartbeat_seconds=5.0) as srv:
        yield srv


def cli(server: LiveServer, *args: str, token: str = ADMIN) -> subprocess.CompletedProcess[str]:
    """``relaybus ARGS`` against ``server`` with ``token``, as a separate process;
    a failure fails the test with its output."""
    env = {**clean_environ(), "RELAYBUS_URL": server.url, "RELAYBUS_TOKEN": token}
    done = subprocess.run(
        [sys.executable, "-m", "relaybus", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def sign_in(page: Any, server: LiveServer, token: str = ADMIN) -> None:
    """Open the dashboard and sign in with ``token`` through its dialog."""
    page.goto(server.url + "/")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("status").filter(has_text="live").wait_for()
