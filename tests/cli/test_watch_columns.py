"""``relaybus watch`` lines keep their columns whatever the ids and subjects."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
from rich.console import Console

from relaybus.cli.watch import ACTOR_WIDTH, KIND_WIDTH, Lines
from relaybus.models import Event

LONG_ID = "build-bot-on-a-very-long-hostname-claude-project-0123abcd"
EVENTS: list[tuple[str, str | None, dict[str, Any]]] = [
    ("message.sent", "al", {"message_id": 1, "recipients": ["bob"], "subject": "hi"}),
    ("message.sent", LONG_ID, {"message_id": 2, "recipients": ["bob"], "subject": "x" * 300}),
    ("agent.unregistered", "bob", {}),
    ("integration.something.long.kind", None, {"detail": "y" * 300}),
]
#: Where the summary starts: time, kind and actor columns with two spaces after each.
SUMMARY_AT = 8 + 2 + KIND_WIDTH + 2 + ACTOR_WIDTH + 2


def events() -> list[Event]:
    now = datetime.now(UTC)
    return [
        Event(id=n, workspace="default", kind=kind, agent_id=agent, data=data, created_at=now)
        for n, (kind, agent, data) in enumerate(EVENTS, 1)
    ]


def test_plain_lines_keep_fixed_columns_and_the_whole_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    show = Lines()
    for event in events():
        show(event)
    lines = capsys.readouterr().out.splitlines()

    assert len(lines) == len(EVENTS)
    for line in lines:
        assert line[SUMMARY_AT - 2 : SUMMARY_AT] == "  " and line[SUMMARY_AT] != " ", line
    assert lines[1][8 + 2 + KIND_WIDTH + 2 :].startswith(LONG_ID[: ACTOR_WIDTH - 1] + "…  ")
    assert lines[3][10:].startswith("integration.somet…  relay")
    assert f"{LONG_ID} → bob #2" in lines[1]  # piped output keeps the summary whole, for grep


def test_terminal_lines_stay_within_the_width_and_aligned() -> None:
    out = StringIO()
    console = Console(file=out, width=90, force_terminal=True, color_system=None)
    show = Lines(console)
    for event in events():
        show(event)
    lines = out.getvalue().splitlines()

    assert len(lines) == len(EVENTS)
    assert all(len(line) <= 90 for line in lines)
    assert all(line[SUMMARY_AT] != " " for line in lines)
    assert lines[1].endswith("…")
