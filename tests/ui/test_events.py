"""The dashboard's event feed in a real browser: the recent log, then live events, with
filters and an event's JSON and links; and resuming after the stream drops (the server
restarts, or the hub drops a stream that fell behind) with every event id exactly once,
in order, the ones written while the page was away included."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from tests.support.live import UNUSED_TLS, LiveServer

from .conftest import ADMIN, SCREENSHOTS, cli, sign_in

#: Records each text the status badge shows, in order (the test reads window.statuses).
WATCH_STATUS = """() => {
  const badge = document.querySelector("[data-testid=status]");
  window.statuses = [badge.textContent];
  new MutationObserver(() => window.statuses.push(badge.textContent))
    .observe(badge, {childList: true, characterData: true, subtree: true});
}"""
#: The ids the feed holds, newest first (its data, not only the rows drawn).
FEED_IDS = (
    "() => Alpine.$data(document.querySelector('[data-testid=events-view]')).kept().map(e => e.id)"
)


def log_ids(server: LiveServer) -> list[int]:
    """Every event id of the default workspace, oldest first, read in pages."""
    ids: list[int] = []
    with httpx.Client(base_url=server.url, verify=UNUSED_TLS) as http:
        while True:
            answer = http.get(
                "/v1/events",
                params={"since": ids[-1] if ids else 0, "limit": 1000},
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
            answer.raise_for_status()
            page = [event["id"] for event in answer.json()]
            if not page:
                return ids
            ids += page


def wait_for_feed(page: Any, ids: list[int]) -> None:
    """Wait until the feed holds exactly ``ids`` (oldest first), newest first."""
    expected = list(reversed(ids))
    page.wait_for_function(f"expected => ({FEED_IDS})().join() === expected.join()", arg=expected)


def test_the_feed_shows_the_recent_log_then_live_events_with_filters(
    page: Any, dashboard: LiveServer
) -> None:
    cli(dashboard, "register", "alice", "--tag", "review")
    cli(dashboard, "register", "bob")
    cli(dashboard, "--as", "alice", "send", "--to", "bob", "--subject", "Lunch?", "at noon")
    sign_in(page, dashboard)
    page.get_by_role("link", name="Events").click()
    sent = page.locator("[data-event='3']")
    sent.wait_for()  # from the log, before the page was open
    assert "message.sent" in sent.inner_text() and "#1 → bob: Lunch?" in sent.inner_text()

    cli(
        dashboard,
        "--as",
        "bob",
        "send",
        "--to",
        "alice",
        "--claimable",
        "--subject",
        "Review PR 7",
        "please",
    )
    cli(dashboard, "--as", "alice", "claim", "1")
    cli(dashboard, "--as", "alice", "task", "1", "--status", "in_progress", "--progress", "40")
    updated = page.locator("[data-testid=events] .row", has_text="task.updated")
    updated.wait_for()  # live
    assert "task #1 claimed → in_progress 40%" in updated.inner_text()
    assert (
        "task #1, lease until"
        in page.locator("[data-testid=events] .row", has_text="task.claimed").inner_text()
    )
    wait_for_feed(page, log_ids(dashboard))
    rows = page.locator("[data-testid=events] .row")
    assert rows.first.get_attribute("data-event") == str(log_ids(dashboard)[-1])  # newest first

    page.get_by_label("Kind").select_option("task")
    page.wait_for_function("document.querySelectorAll('[data-testid=events] .row').length === 3")
    assert all(kind.startswith("task.") for kind in rows.locator(".kind").all_inner_texts())
    page.get_by_label("Kind").select_option("")
    page.get_by_label("Agent", exact=True).fill("bob")
    page.locator("[data-testid=events] .row", has_text="agent.registered").first.wait_for()
    page.wait_for_function(
        "[...document.querySelectorAll('[data-testid=events] .row')]"
        ".every(row => !row.textContent.includes('task.claimed'))"
    )  # claimed by alice: not about bob
    page.get_by_label("Agent", exact=True).fill("")
    page.get_by_label("Search events").fill("review pr")
    page.wait_for_function("document.querySelectorAll('[data-testid=events] .row').length === 2")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.get_by_label("Search events").fill("")
    page.wait_for_function("document.querySelectorAll('[data-testid=events] .row').length === 7")
    page.get_by_role("button", name="Event 4, task.created").focus()
    page.keyboard.press("Enter")
    detail = page.get_by_test_id("event-json")
    detail.wait_for()
    assert '"title": "Review PR 7"' in detail.inner_text()
    page.screenshot(path=SCREENSHOTS / "dashboard-events.png")
    page.get_by_role("link", name="task #1").click()
    page.wait_for_function("location.hash === '#/tasks/1' && relay.view === 'tasks'")
    page.go_back()
    page.get_by_role("link", name="thread #2").focus()
    page.keyboard.press("Escape")
    detail.wait_for(state="detached")


def test_pause_holds_live_events_until_resumed(page: Any, dashboard: LiveServer) -> None:
    sign_in(page, dashboard)
    page.get_by_role("link", name="Events").click()
    cli(dashboard, "register", "alice")
    page.locator("[data-event='1']").wait_for()
    page.get_by_role("button", name="Pause").click()
    cli(dashboard, "register", "bob")
    page.get_by_role("button", name="Resume (1 new)").wait_for()
    assert page.locator("[data-event='2']").count() == 0
    page.get_by_role("button", name="Resume (1 new)").click()
    page.locator("[data-event='2']").wait_for()
    wait_for_feed(page, [1, 2])


def test_the_feed_resumes_after_a_restart_with_every_event_once(
    page: Any, dashboard: LiveServer
) -> None:
    """The log is empty when the page first connects (its stream says ``last_event_id:
    0``): after the drop the page must still resume from 0, not from "now"."""
    sign_in(page, dashboard)
    page.get_by_role("link", name="Events").click()
    page.evaluate(WATCH_STATUS)

    dashboard.stop()
    page.get_by_test_id("status").filter(has_text="reconnecting").wait_for()
    service = dashboard.service  # written while the server is down, to the same store
    service.register("alice", tags=["review"])
    service.register("bob")
    service.send("alice", "bob", "written while the page was away", subject="Missed?")
    dashboard.start()
    page.get_by_test_id("status").filter(has_text="live").wait_for()
    after_restart = log_ids(dashboard)
    assert after_restart == [1, 2, 3]
    wait_for_feed(page, after_restart)

    cli(dashboard, "--as", "bob", "send", "--to", "alice", "live again")
    wait_for_feed(page, log_ids(dashboard))
    statuses = page.evaluate("window.statuses")
    assert "reconnecting" in statuses and statuses[-1] == "live", statuses


def test_the_feed_comes_back_when_the_hub_drops_a_slow_stream(
    page: Any, dashboard: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    cli(dashboard, "register", "alice")
    cli(dashboard, "register", "bob")
    sign_in(page, dashboard)
    page.get_by_role("link", name="Events").click()
    wait_for_feed(page, [1, 2])
    page.evaluate(WATCH_STATUS)

    hub = dashboard.app.state.hub
    hub.queue_limit = 1  # a claimable send logs two events at once: one too many
    with caplog.at_level(logging.WARNING, logger="relaybus.server.subscriptions"):
        cli(
            dashboard,
            "--as",
            "alice",
            "send",
            "--to",
            "bob",
            "--claimable",
            "--subject",
            "review",
            "please",
        )
        wait_for_feed(page, [1, 2, 3, 4])
    hub.queue_limit = 10_000
    assert any("dropping a slow sse subscriber" in r.getMessage() for r in caplog.records)
    page.get_by_test_id("status").filter(has_text="live").wait_for()
    cli(dashboard, "--as", "bob", "claim", "1")
    wait_for_feed(page, log_ids(dashboard))
    assert "reconnecting" in page.evaluate("window.statuses")


def test_a_long_log_draws_a_screenful_and_loads_older_windows_on_scroll(
    page: Any, dashboard: LiveServer
) -> None:
    service = dashboard.service
    service.register("alice")
    service.register("bob")
    for number in range(1, 1200):
        service.send("alice", "bob", f"note {number}")
    ids = log_ids(dashboard)
    assert len(ids) == 1201
    sign_in(page, dashboard)
    page.get_by_role("link", name="Events").click()
    wait_for_feed(page, ids[-1000:])  # the most recent window first
    assert page.locator("[data-testid=events] .row").count() < 100  # a screenful, not 1,000

    page.get_by_test_id("events").evaluate("el => el.scrollTo(0, el.scrollHeight)")
    wait_for_feed(page, ids)  # the older window, as the end came into view
    page.get_by_test_id("events").evaluate("el => el.scrollTo(0, el.scrollHeight)")
    page.locator("[data-event='1']").wait_for()
    assert page.locator("[data-testid=events] .row").count() < 100


def test_an_agent_token_sees_only_the_events_of_its_own_mail(
    page: Any, dashboard: LiveServer
) -> None:
    token = json.loads(cli(dashboard, "--json", "register", "alice").stdout)["token"]
    cli(dashboard, "register", "bob")
    cli(dashboard, "register", "carol")
    cli(dashboard, "--as", "carol", "send", "--to", "bob", "--subject", "secret one", "for bob")
    cli(dashboard, "--as", "carol", "send", "--to", "alice", "--subject", "hello alice", "hi")
    sign_in(page, dashboard, token)
    page.get_by_role("link", name="Events").click()
    page.locator("[data-testid=events] .row", has_text="hello alice").wait_for()

    cli(dashboard, "--as", "carol", "send", "--to", "bob", "--subject", "secret two", "for bob")
    cli(dashboard, "--as", "bob", "send", "--to", "alice", "--subject", "from bob", "hi")
    page.locator(
        "[data-testid=events] .row", has_text="from bob"
    ).wait_for()  # live, after the secret one
    held = page.evaluate(
        "() => JSON.stringify(Alpine.$data(document.querySelector('[data-testid=events-view]'))"
        ".kept())"
    )
    assert "secret" not in held and "hello alice" in held
    page.get_by_label("Search events").fill("secret")
    page.get_by_text("No events match.").wait_for()
