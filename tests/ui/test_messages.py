"""The dashboard's Messages view in a real browser: live messages from the CLI, a thread
whose receipts move queued → delivered → read, sending and replying from the page (and
receiving with the CLI), an agent token's view (its own mail only, on the list, a thread
typed by hand and a search), and a list of thousands that stays a screenful of rows."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support.live import UNUSED_TLS, LiveServer

from .conftest import ADMIN, SCREENSHOTS, cli, sign_in

#: The most row elements a virtual list may hold at 1280x800 (a screenful and margins).
MAX_ROWS = 60


def admin_http(server: LiveServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {ADMIN}"},
        verify=UNUSED_TLS,
        timeout=30,
    )


def register(server: LiveServer, agent_id: str, *args: str) -> str:
    """``relaybus register AGENT_ID --json``; returns the agent's token."""
    done = cli(server, "register", agent_id, "--json", *args)
    token: str = json.loads(done.stdout)["token"]
    return token


def open_messages(page: Any) -> None:
    page.get_by_role("link", name="Messages", exact=True).click()
    page.get_by_test_id("messages").wait_for()


def row(page: Any, text: str) -> Any:
    return page.get_by_test_id("messages").locator("[data-message]", has_text=text)


def test_a_message_from_the_cli_appears_live_and_its_receipts_move_to_read(
    page: Any, dashboard: LiveServer
) -> None:
    register(dashboard, "alice", "--tag", "backend")
    register(dashboard, "bob", "--tag", "backend")
    register(dashboard, "carol", "--channel", "deploys")
    sign_in(page, dashboard)
    open_messages(page)

    cli(dashboard, "--as", "carol", "send", "--to", "tag:backend", "--subject", "Deploy", "at 5")
    cli(dashboard, "--as", "alice", "send", "--to", "bob", "--subject", "Review PR 7", "diff")
    shown = row(page, "Review PR 7")
    shown.wait_for()
    assert "alice → bob" in shown.inner_text() and "0/1 read" in shown.inner_text()
    assert "0/2 read" in row(page, "Deploy").inner_text()

    shown.click()
    receipt = page.locator("[data-testid='thread'] tr[data-receipt$=':bob']")
    receipt.filter(has_text="queued").wait_for()
    assert page.url.endswith("#/messages/2")
    # bob's session is handed the message (a hook's read), then bob reads it (the CLI).
    with admin_http(dashboard) as http:
        handed = http.get("/v1/agents/bob/inbox", params={"via": "hook"})
        assert handed.status_code == 200, handed.text
    receipt.filter(has_text="delivered").wait_for()
    assert "via hook" in receipt.inner_text()
    cli(dashboard, "--as", "bob", "inbox")
    receipt.locator(".state", has_text="read").wait_for()
    cli(dashboard, "--as", "bob", "reply", "2", "LGTM, merging")  # joins the open thread
    page.locator("[data-testid='thread'] tr[data-receipt$=':alice']", has_text="queued").wait_for()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-thread.png")

    page.get_by_role("link", name="← All messages").click()
    row(page, "Review PR 7").filter(has_text="1/1 read").wait_for()
    row(page, "Deploy").filter(has_text="1/2 read").wait_for()  # bob read both
    row(page, "LGTM, merging").filter(has_text="0/1 read").wait_for()
    page.screenshot(path=SCREENSHOTS / "dashboard-messages.png")


def test_send_and_reply_from_the_page_reach_the_cli(page: Any, dashboard: LiveServer) -> None:
    register(dashboard, "alice")
    register(dashboard, "bob")
    sign_in(page, dashboard)
    open_messages(page)

    page.get_by_role("button", name="New message").click()
    form = page.get_by_role("form", name="New message")
    form.get_by_label("From (agent)").fill("alice")
    form.get_by_label("To").fill("nobody")
    form.get_by_label("Message").fill("from the page")
    form.get_by_role("button", name="Send").click()
    form.get_by_role("alert").filter(has_text="target 'nobody' matches no agent").wait_for()

    form.get_by_label("To").fill("bob")
    form.get_by_role("button", name="Send").click()
    row(page, "from the page").wait_for()
    inbox = json.loads(cli(dashboard, "--as", "bob", "inbox", "--json").stdout)
    assert [(m["sender"], m["body"]) for m in inbox] == [("alice", "from the page")]

    row(page, "from the page").click()
    reply = page.get_by_role("form", name="Reply")
    reply.get_by_label("From (agent)").fill("bob")
    reply.get_by_label("Reply").fill("thanks, on it")
    reply.get_by_role("button", name="Reply").click()
    page.locator("[data-testid='thread'] li", has_text="thanks, on it").wait_for()
    got = json.loads(cli(dashboard, "--as", "alice", "inbox", "--json").stdout)
    assert [(m["sender"], m["body"], m["reply_to"]) for m in got] == [
        ("bob", "thanks, on it", inbox[0]["id"])
    ]

    page.get_by_role("link", name="← All messages").click()
    page.get_by_role("button", name="New message").click()
    form.get_by_label("From (agent)").fill("alice")
    form.get_by_label("Message").fill("all hands")
    form.get_by_role("button", name="Broadcast").click()
    row(page, "all hands").filter(has_text="alice → broadcast").wait_for()
    heard = json.loads(cli(dashboard, "--as", "bob", "inbox", "--json").stdout)
    assert [m["body"] for m in heard] == ["all hands"]


def test_an_agent_token_sees_only_its_own_mail(page: Any, dashboard: LiveServer) -> None:
    register(dashboard, "alice")
    bob = register(dashboard, "bob")
    register(dashboard, "carol")
    cli(dashboard, "--as", "alice", "send", "--to", "bob", "for bob")
    secret = cli(dashboard, "--as", "alice", "send", "--to", "carol", "--json", "secret for carol")
    hidden = json.loads(secret.stdout)["id"]
    sign_in(page, dashboard, token=bob)
    open_messages(page)

    row(page, "for bob").wait_for()
    cli(dashboard, "--as", "alice", "send", "--to", "carol", "another secret")
    cli(dashboard, "--as", "alice", "send", "--to", "bob", "live for bob")
    row(page, "live for bob").wait_for()  # the stream is in order: carol's came first
    listed = page.get_by_test_id("messages").inner_text()
    assert "secret" not in listed

    page.get_by_label("Search messages").fill("secret")
    page.get_by_text("No messages match.").wait_for()
    page.get_by_label("Search messages").fill("")
    row(page, "live for bob").wait_for()

    page.evaluate(f"location.hash = '#/messages/{hidden}'")
    thread = page.get_by_test_id("thread")
    thread.get_by_role("alert").filter(has_text=f"no message {hidden}").wait_for()
    assert "secret" not in thread.inner_text()

    page.get_by_role("link", name="← All messages").click()
    page.get_by_role("button", name="New message").click()
    form = page.get_by_role("form", name="New message")
    form.get_by_text("From bob").wait_for()
    form.get_by_label("To").fill("alice")
    form.get_by_label("Message").fill("bob writes")
    form.get_by_role("button", name="Send").click()
    row(page, "bob writes").wait_for()
    got = json.loads(cli(dashboard, "--as", "alice", "inbox", "--json").stdout)
    assert [(m["sender"], m["body"]) for m in got] == [("bob", "bob writes")]


def test_thousands_of_messages_scroll_with_a_screenful_of_rows(
    page: Any, dashboard: LiveServer
) -> None:
    register(dashboard, "alice")
    register(dashboard, "bob")
    with admin_http(dashboard) as http:
        for start in range(0, 3000, 500):
            batch = [{"to": "bob", "body": f"message {start + k}"} for k in range(500)]
            sent = http.post("/v1/messages/batch", json={"sender": "alice", "messages": batch})
            assert sent.status_code == 201, sent.text
    sign_in(page, dashboard)
    open_messages(page)
    rows = page.get_by_test_id("messages").locator("[data-message]")
    row(page, "message 2999").wait_for()
    assert rows.count() <= MAX_ROWS

    scroller = page.get_by_test_id("messages")
    heading = page.get_by_role("heading", name="Messages")
    for shown in (200, 300, 400):  # each scroll to the end loads a page more
        scroller.evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
        heading.filter(has_text=f"{shown}+ shown").wait_for()
        assert rows.count() <= MAX_ROWS
    scroller.evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
    row(page, "message 2600").wait_for()  # the oldest of 400 loaded, drawn at the end
    assert rows.count() <= MAX_ROWS
    assert not row(page, "message 2999").count()  # scrolled out: no longer in the page
