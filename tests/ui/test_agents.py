"""The Agents view in a real browser: agents appear and change live as other processes
register and update them, filters narrow the list, a label and tags are edited from the
page, and a list of hundreds of agents keeps only the rows in view in the page."""

from __future__ import annotations

import json
from typing import Any

from tests.support.live import LiveServer

from .conftest import SCREENSHOTS, cli, sign_in


def test_an_agent_registered_from_the_cli_appears_live(page: Any, dashboard: LiveServer) -> None:
    sign_in(page, dashboard)
    cli(dashboard, "register", "reviewer-1", "--tag", "review", "--label", "Reviews PRs")
    cli(dashboard, "register", "builder-1", "--tag", "build", "--cap", "python")
    row = page.locator("[data-agent='reviewer-1']")
    row.wait_for()
    assert "review" in row.inner_text() and "Reviews PRs" in row.inner_text()
    page.locator("[data-agent='builder-1']").wait_for()
    # Another process changes it: the row follows.
    cli(dashboard, "register", "reviewer-1", "--tag", "review", "--label", "Back from lunch")
    row.filter(has_text="Back from lunch").wait_for()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-agents.png")


def test_filters_narrow_the_list(page: Any, dashboard: LiveServer) -> None:
    cli(dashboard, "register", "reviewer-1", "--tag", "review")
    cli(dashboard, "register", "builder-1", "--tag", "build", "--cap", "python")
    sign_in(page, dashboard)
    view = page.locator("section[aria-labelledby='agents-title']")
    rows = page.locator("[data-agent]")
    page.locator("[data-agent='builder-1']").wait_for()
    assert rows.count() == 2
    view.get_by_label("Tag").select_option("review")
    page.locator("[data-agent='builder-1']").wait_for(state="detached")
    assert rows.count() == 1
    view.get_by_label("Tag").select_option("")
    page.get_by_label("Search agents").fill("python")
    page.locator("[data-agent='reviewer-1']").wait_for(state="detached")
    assert [rows.nth(0).get_attribute("data-agent")] == ["builder-1"]
    page.get_by_label("Search agents").fill("no-such-agent")
    page.get_by_text("No agents match.").wait_for()


def test_edit_label_and_tags_from_the_page(page: Any, dashboard: LiveServer) -> None:
    cli(dashboard, "register", "reviewer-1", "--tag", "review")
    sign_in(page, dashboard)
    page.get_by_role("button", name="Edit reviewer-1").click()
    form = page.get_by_role("form", name="Edit agent")
    form.get_by_label("Label").fill("Night shift")
    form.get_by_label("Tags (comma-separated)").fill("review, oncall")
    form.get_by_role("button", name="Save").click()
    page.locator("[data-agent='reviewer-1']", has_text="Night shift").wait_for()
    shown = json.loads(cli(dashboard, "agents", "--json").stdout)
    (agent,) = [a for a in shown if a["id"] == "reviewer-1"]
    assert agent["label"] == "Night shift" and agent["tags"] == ["review", "oncall"]


def test_hundreds_of_agents_keep_only_the_rows_in_view(page: Any, dashboard: LiveServer) -> None:
    service = dashboard.service
    for i in range(600):
        service.register(f"agent-{i:03d}", tags=["fleet"])
    sign_in(page, dashboard)
    page.locator("[data-agent='agent-000']").wait_for()
    drawn = page.locator("[data-agent]").count()
    assert 10 < drawn < 80, drawn  # a screenful and a margin, not 600
    page.get_by_test_id("agents").evaluate("(el) => (el.scrollTop = el.scrollHeight)")
    page.locator("[data-agent='agent-599']").wait_for()
    assert page.locator("[data-agent='agent-000']").count() == 0
    assert page.locator("[data-agent]").count() < 80
