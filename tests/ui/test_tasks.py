"""The task board in a real browser: a task worked by other processes (the ``relaybus``
CLI) moves across the columns live, with its holder, lease countdown and progress; a
lapsed lease reopens it; a task created from the page reaches the CLI; an admin
releases a stuck lease from the page; an agent token sees only the tasks the
visibility rule gives its agent; finished columns page."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from tests.support.live import UNUSED_TLS, LiveServer

from .conftest import ADMIN, SCREENSHOTS, cli, sign_in


def register(server: LiveServer, name: str, *args: str) -> str:
    """Register ``name`` with the CLI; returns its agent token."""
    token: str = json.loads(cli(server, "register", name, "--json", *args).stdout)["token"]
    return token


def create(server: LiveServer, title: str, to: str, *args: str) -> int:
    """Open a task with the CLI (as the operator); returns its id."""
    done = cli(server, "task", "create", title, "--to", to, "--json", *args)
    task_id: int = json.loads(done.stdout)["id"]
    return task_id


def as_agent(server: LiveServer, token: str, name: str, *args: str) -> None:
    """``relaybus --as NAME ARGS`` with the agent's own token."""
    cli(server, "--as", name, *args, token=token)


def tasks_json(server: LiveServer) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(cli(server, "tasks", "--json").stdout)
    return found


def card(page: Any, column: str, task_id: int) -> Any:
    """The card of ``task_id`` in the ``column`` lane (a status)."""
    return page.locator(f"[data-column='{column}'] [data-task='{task_id}']")


def open_board(page: Any, server: LiveServer, token: str = ADMIN) -> None:
    sign_in(page, server, token)
    page.get_by_role("link", name="Tasks").click()
    page.get_by_role("heading", name="Open").wait_for()


def test_a_task_moves_across_the_board_as_another_process_works_it(
    page: Any, dashboard: LiveServer
) -> None:
    bob = register(dashboard, "bob")
    open_board(page, dashboard)

    task_id = create(dashboard, "Review PR 7", "bob", "--priority", "high")
    card(page, "open", task_id).wait_for()

    as_agent(dashboard, bob, "bob", "claim", str(task_id))
    claimed = card(page, "claimed", task_id)
    claimed.wait_for()
    assert claimed.get_by_test_id("holder").inner_text() == "bob"
    lease = claimed.get_by_test_id("lease")
    first = lease.inner_text()
    assert re.fullmatch(r"\d+m \d+s", first), first
    page.wait_for_function(  # the countdown ticks
        "([el, first]) => el.textContent !== first", arg=[lease.element_handle(), first]
    )

    as_agent(dashboard, bob, "bob", "task", str(task_id), "--progress", "40", "--note", "halfway")
    working = card(page, "in_progress", task_id)
    working.get_by_test_id("note").filter(has_text="halfway").wait_for()
    assert working.locator("progress").get_attribute("value") == "40"
    assert card(page, "claimed", task_id).count() == 0

    as_agent(dashboard, bob, "bob", "task", str(task_id), "--status", "done", "--result", "LGTM")
    card(page, "done", task_id).wait_for()
    assert card(page, "in_progress", task_id).count() == 0

    card(page, "done", task_id).get_by_role("link").first.focus()  # its details and history
    page.keyboard.press("Enter")
    details = page.get_by_test_id("task-details")
    details.get_by_test_id("detail-result").filter(has_text="LGTM").wait_for()
    steps = details.get_by_test_id("history").locator("li strong")
    assert steps.all_inner_texts() == [
        "created",
        "claimed",
        "in_progress",
        "done",
    ]
    page.keyboard.press("Escape")  # focus is in the details: Escape closes them
    details.wait_for(state="hidden")
    page.wait_for_function(  # and the card that opened them has the focus again
        f"document.activeElement.closest('[data-task]')?.dataset.task === '{task_id}'"
    )


def test_a_lapsed_lease_counts_down_and_the_task_reopens(page: Any, dashboard: LiveServer) -> None:
    bob = register(dashboard, "bob")
    task_id = create(dashboard, "Flaky test", "bob")
    open_board(page, dashboard)
    card(page, "open", task_id).wait_for()
    # Claimed with the page open: the card moves live, however long the page took to load.
    as_agent(dashboard, bob, "bob", "claim", str(task_id), "--lease", "5")
    card(page, "claimed", task_id).wait_for()
    # The server sweeps no leases by itself here: the page's read after "lapsed" does.
    card(page, "open", task_id).wait_for()
    history = json.loads(cli(dashboard, "task", str(task_id), "--json").stdout)["history"]
    assert history[-1]["note"] == "lease expired"


def test_a_task_created_from_the_page_reaches_the_cli(page: Any, dashboard: LiveServer) -> None:
    register(dashboard, "bob")
    open_board(page, dashboard)

    page.get_by_role("button", name="New task").click()
    form = page.get_by_role("form", name="New task")
    form.get_by_label("Title").fill("Rotate the staging keys")
    form.get_by_label("Target").fill("bob")
    form.get_by_label("Priority").select_option("urgent")
    form.get_by_label("Body").fill("They expire on Friday.")
    form.get_by_role("button", name="Create task").click()
    page.get_by_role("status").filter(has_text="Opened task").wait_for()

    (found,) = tasks_json(dashboard)
    assert (found["title"], found["target"], found["priority"]) == (
        "Rotate the staging keys",
        "bob",
        "urgent",
    )
    assert (found["body"], found["status"]) == ("They expire on Friday.", "open")
    card(page, "open", found["id"]).wait_for()


def test_an_admin_releases_a_held_task_from_the_page(page: Any, dashboard: LiveServer) -> None:
    bob = register(dashboard, "bob")
    task_id = create(dashboard, "Stuck job", "bob")
    as_agent(dashboard, bob, "bob", "claim", str(task_id))
    open_board(page, dashboard)

    card(page, "claimed", task_id).get_by_role("link").click()
    page.get_by_role("button", name="Release lease").click()
    card(page, "open", task_id).wait_for()

    (found,) = tasks_json(dashboard)
    assert (found["status"], found["assignee"]) == ("open", None)
    history = json.loads(cli(dashboard, "task", str(task_id), "--json").stdout)["history"]
    assert (history[-1]["agent_id"], history[-1]["note"]) == ("bob", "released by operator")


def test_an_agent_token_sees_only_the_tasks_its_agent_may_see(
    page: Any, dashboard: LiveServer
) -> None:
    bob = register(dashboard, "bob")
    register(dashboard, "carol")
    mine = create(dashboard, "For bob", "bob")
    theirs = create(dashboard, "For carol", "carol")
    open_board(page, dashboard, bob)

    card(page, "open", mine).wait_for()
    later_theirs = create(dashboard, "Also for carol", "carol")
    later_mine = create(dashboard, "Also for bob", "bob")
    card(page, "open", later_mine).wait_for()
    shown = page.locator("[data-task]").evaluate_all("els => els.map(e => +e.dataset.task)")
    assert sorted(shown) == [mine, later_mine]
    assert theirs not in shown and later_theirs not in shown

    card(page, "open", mine).get_by_role("link").click()
    page.get_by_test_id("history").locator("li").first.wait_for()
    assert not page.get_by_role("button", name="Release lease").is_visible()
    page.get_by_role("button", name="New task").click()
    assert not page.get_by_label("From agent").is_visible()  # an agent creates as itself


def test_the_board_filters_by_text_agent_channel_and_status(
    page: Any, dashboard: LiveServer
) -> None:
    register(dashboard, "bob", "--tag", "backend")
    ann = register(dashboard, "ann")
    login = create(dashboard, "Fix the login bug", "bob", "--channel", "ci")
    docs = create(dashboard, "Write the docs", "ann")
    deploy = create(dashboard, "Fix the deploy", "ann", "--body", "staging only")
    tagged = create(dashboard, "Bump the pins", "tag:backend")
    as_agent(dashboard, ann, "ann", "claim", str(docs))
    open_board(page, dashboard)
    card(page, "claimed", docs).wait_for()

    def shows(*ids: int) -> None:
        """Wait until the board shows exactly the cards of ``ids``."""
        page.wait_for_function(
            "ids => [...document.querySelectorAll('[data-task]')].map(e => +e.dataset.task)"
            ".sort((a, b) => a - b).join() === ids.join()",
            arg=sorted(ids),
        )

    page.get_by_label("Search tasks").fill("fix")
    shows(login, deploy)
    page.get_by_label("Search tasks").fill("staging")  # the body too
    shows(deploy)
    page.get_by_label("Search tasks").fill("tag:backend")  # and the target
    shows(tagged)
    page.get_by_label("Search tasks").fill("")

    page.get_by_label("Agent (holder or creator)").select_option("ann")
    shows(docs)
    page.get_by_label("Agent (holder or creator)").select_option("")

    page.get_by_label("Task channel").select_option("ci")
    shows(login)
    page.get_by_label("Task channel").select_option("")

    page.get_by_label("Task status").select_option("claimed")
    page.wait_for_function("document.querySelectorAll('[data-column]').length === 1")
    shows(docs)


def test_a_finished_column_pages_older_tasks(page: Any, dashboard: LiveServer) -> None:
    register(dashboard, "bob")
    headers = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=dashboard.url, headers=headers, verify=UNUSED_TLS) as http:
        for n in range(45):
            made = http.post("/v1/tasks", json={"title": f"old job {n}", "target": "bob"})
            http.patch(f"/v1/tasks/{made.json()['id']}", json={"status": "canceled"})
    open_board(page, dashboard)

    lane = page.locator("[data-column='canceled']")
    lane.get_by_role("button", name="Load older in Canceled").wait_for()
    assert lane.locator("[data-task]").count() == 40
    lane.get_by_role("button", name="Load older in Canceled").click()
    lane.locator("[data-task]").nth(44).wait_for()
    assert lane.locator("[data-task]").count() == 45
    assert not lane.get_by_role("button", name=re.compile("Load older|more")).is_visible()


def test_the_board_screenshot(page: Any, dashboard: LiveServer) -> None:
    bob = register(dashboard, "bob", "--tag", "backend")
    ann = register(dashboard, "ann", "--cap", "review")
    jobs = {
        "Upgrade SQLAlchemy to 2.1": ("tag:backend", []),
        "Review PR 212: lease renewals": ("cap:review", ["--priority", "high"]),
        "Triage the 5xx alert": (
            "bob",
            ["--priority", "urgent", "--url", "https://grafana.example/d/5xx"],
        ),
        "Write the dashboard docs": ("ann", []),
        "Flaky test in tests/server": ("bob", []),
        "Rotate the staging keys": ("bob", ["--priority", "low"]),
    }
    ids = {title: create(dashboard, title, to, *extra) for title, (to, extra) in jobs.items()}
    as_agent(dashboard, ann, "ann", "claim", str(ids["Review PR 212: lease renewals"]))
    as_agent(dashboard, bob, "bob", "claim", str(ids["Triage the 5xx alert"]))
    progress = ["--progress", "60", "--note", "rolled back the deploy"]
    as_agent(dashboard, bob, "bob", "task", str(ids["Triage the 5xx alert"]), *progress)
    as_agent(dashboard, ann, "ann", "claim", str(ids["Write the dashboard docs"]))
    blocked = ["--status", "blocked", "--note", "waiting for screenshots"]
    as_agent(dashboard, ann, "ann", "task", str(ids["Write the dashboard docs"]), *blocked)
    as_agent(dashboard, bob, "bob", "claim", str(ids["Flaky test in tests/server"]))
    done = ["--status", "done", "--result", "fixed the race"]
    as_agent(dashboard, bob, "bob", "task", str(ids["Flaky test in tests/server"]), *done)
    cli(dashboard, "task", str(ids["Rotate the staging keys"]), "--status", "canceled")
    open_board(page, dashboard)

    card(page, "canceled", ids["Rotate the staging keys"]).wait_for()
    card(page, "blocked", ids["Write the dashboard docs"]).wait_for()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-tasks.png")
