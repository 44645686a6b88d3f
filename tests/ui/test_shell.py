"""The dashboard's page in a real browser: served at ``/`` from the package, the token
prompt on the first 401, the token kept for the origin, sign-out; and
``/docs`` and ``/redoc`` rendered with no request leaving 127.0.0.1."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.live import UNUSED_TLS, LiveServer

from .conftest import ADMIN, Offline


def test_root_serves_the_page_from_the_package(dashboard: LiveServer) -> None:
    with httpx.Client(base_url=dashboard.url, verify=UNUSED_TLS) as http:
        page = http.get("/")
        script = http.get("/ui/app.js")
        missing = http.get("/ui/no-such-file.js")
    assert page.status_code == 200 and "<title>relaybus</title>" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert missing.status_code == 404


def test_sign_in_keeps_the_token_and_sign_out_forgets_it(page: Any, dashboard: LiveServer) -> None:
    page.goto(dashboard.url + "/")
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    page.get_by_label("Token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("That token was refused.").wait_for()

    page.get_by_label("Token").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("status").filter(has_text="live").wait_for()
    assert page.get_by_test_id("me").inner_text().startswith("admin")
    assert page.evaluate("localStorage.getItem('relaybus.token')") == ADMIN

    page.reload()  # kept for this origin: no prompt the second time
    page.get_by_test_id("status").filter(has_text="live").wait_for()
    assert not dialog.is_visible()

    page.get_by_role("button", name="Sign out").click()
    dialog.wait_for()
    assert page.evaluate("localStorage.getItem('relaybus.token')") is None


def test_a_token_in_the_address_signs_in_and_leaves_it(page: Any, dashboard: LiveServer) -> None:
    page.goto(f"{dashboard.url}/#token={ADMIN}")
    page.get_by_test_id("status").filter(has_text="live").wait_for()
    assert "token" not in page.url


def test_docs_and_redoc_render_offline(page: Any, dashboard: LiveServer, offline: Offline) -> None:
    page.goto(dashboard.url + "/docs")
    page.locator(".swagger-ui .info .title").filter(has_text="relaybus").wait_for()
    page.locator(".opblock-summary-path", has_text="/v1/messages").first.wait_for()
    page.goto(dashboard.url + "/redoc")
    page.get_by_role("heading", name="relaybus").first.wait_for()
    assert offline.seen and not offline.refused, offline.refused
