"""What each Claude Code hook does, given the session's agent.

Input and output follow Claude Code's hook JSON
(https://code.claude.com/docs/en/hooks): every input has ``session_id``,
``transcript_path``, ``cwd`` and ``hook_event_name``; context goes back as
``hookSpecificOutput.additionalContext``; a Stop hook blocks with
``{"decision": "block", "reason": ...}``.

Messages are handed over once: :func:`handle` returns the output and the ids
of the messages it shows (:class:`HookOutcome`), and the caller marks them read
(:func:`deliver`) once the output is on its way to Claude Code, so the next
prompt does not repeat them, the MCP ``inbox`` tool does not return them
again, and a hook that gave up before printing loses nothing.

Under ``relaybus run`` (``RELAYBUS_RUNTIME`` set in the session's environment)
the runner types the mail into the terminal itself, so the hooks keep to
presence and leave the mail to it: each message reaches the session once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...bounds import UNREAD_COUNT_LIMIT
from ...client import AgentHandle
from ...errors import NotFound
from ...identity import SessionIdentity
from ...models import Message, Via
from .command import usage_text
from .direct import MAX_BODY, MAX_MESSAGES, Mail, render_mail

__all__ = ["MAX_BODY", "MAX_MESSAGES", "HookOutcome", "deliver", "handle", "presence", "render"]

#: SessionEnd reasons after which the same Claude Code process goes on
#: (``/clear`` starts a new conversation at once): the agent stays online.
CONTINUING = frozenset({"clear", "resume", "compact"})

#: Set by ``relaybus run`` in its program's environment (to ``pty``): the runner
#: types the mail in, so the hooks do not hand it over a second time.
RUNTIME_ENV = "RELAYBUS_RUNTIME"


@dataclass
class HookOutcome:
    """What a hook hands Claude Code: its output JSON (None: print nothing)
    and the ids of the messages that output shows, to mark read once it is
    handed over (:func:`deliver`)."""

    output: dict[str, Any] | None = None
    shown: list[int] = field(default_factory=list)


def usage(me: AgentHandle) -> str:
    """The SessionStart context: who this session is on the relay and how to use it."""
    info = me.info()
    return usage_text(me.id, info.label, info.tags, info.capabilities, info.approval.value)


def task_status(me: AgentHandle, task_id: int) -> str | None:
    """The status value of task ``task_id`` (``"open"``, ``"done"``…), None if it is gone."""
    try:
        return me.relay.task(task_id).status.value
    except NotFound:
        return None


def render(
    me: AgentHandle, messages: Sequence[Message], *, more: int = 0, at_least: bool = False
) -> str:
    """Messages of ``me``'s inbox as text for the model's context, oldest first:
    the same text as the hook command's own read (:func:`.direct.render_mail`)."""
    mail = [
        Mail(
            id=msg.id,
            sender=msg.sender,
            thread_id=msg.thread_id,
            channel=msg.channel,
            subject=msg.subject,
            body=msg.body,
            priority=msg.priority.value,
            task_id=msg.task_id,
            task_status=task_status(me, msg.task_id) if msg.task_id else None,
            pair=msg.meta.get("pair"),
        )
        for msg in messages
    ]
    return render_mail(mail, more=more, at_least=at_least)


def peek_new(me: AgentHandle) -> tuple[str, list[int]] | None:
    """The unread mail as context text and the ids it shows, not marked read
    (see :func:`deliver`); None when there is none, or when a terminal runtime
    delivers this session's mail (:data:`RUNTIME_ENV`)."""
    if os.environ.get(RUNTIME_ENV):
        return None
    found = me.inbox(unread_only=True, newest_first=False, limit=MAX_MESSAGES + 1)
    if not found:
        return None
    shown = found[:MAX_MESSAGES]
    unread = me.unread_count() if len(found) > MAX_MESSAGES else len(shown)
    text = render(me, shown, more=unread - len(shown), at_least=unread >= UNREAD_COUNT_LIMIT)
    return text, [m.id for m in shown]


def deliver(me: AgentHandle, outcome: HookOutcome) -> None:
    """Mark the messages ``outcome`` shows read, by the hook.

    Raises:
        RelayError: the relay refused.
    """
    if outcome.shown:
        me.mark_read(outcome.shown, via=Via.HOOK)


def context(event: str, text: str) -> dict[str, Any]:
    """``hookSpecificOutput`` carrying ``text`` as additional context."""
    return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}


def handle(
    event: str,
    payload: Mapping[str, Any],
    me: AgentHandle,
    identity: SessionIdentity | None = None,
) -> HookOutcome:
    """Run hook ``event`` (a Claude Code event name, e.g. ``"Stop"``) for agent
    ``me``: presence at once; the output and the mail it shows, which the
    caller marks read (:func:`deliver`) once it has handed the output over.

    Raises:
        RelayError: the relay refused a call (the command logs it and prints nothing).
        ValueError: an event this module does not handle.
    """
    if event == "SessionStart":
        me.heartbeat(status="online")
        text = usage(me)
        mail = peek_new(me)
        if mail:
            return HookOutcome(context(event, text + "\n\n" + mail[0]), mail[1])
        return HookOutcome(context(event, text))
    if event in ("UserPromptSubmit", "PostToolUse"):
        if event == "UserPromptSubmit":
            me.heartbeat(status="busy")  # presence: the session is working on a prompt
        mail = peek_new(me)
        return HookOutcome(context(event, mail[0]), mail[1]) if mail else HookOutcome()
    if event == "Stop":
        # Claude Code sets stop_hook_active when it is already continuing because
        # of a Stop hook: let it stop then, or two agents could keep each other busy.
        mail = None if payload.get("stop_hook_active") else peek_new(me)
        if mail:
            return HookOutcome({"decision": "block", "reason": mail[0]}, mail[1])
        me.heartbeat(status="idle")
        return HookOutcome()
    if event == "SessionEnd":
        if payload.get("reason") not in CONTINUING:
            me.heartbeat(status="offline")
        return HookOutcome()
    raise ValueError(f"relaybus does not handle the hook event {event!r}")


def presence(event: str, payload: Mapping[str, Any], me: AgentHandle) -> None:
    """Only the presence part of hook ``event``, never the mail: what a
    background process does for a hook that answered without the relay.

    Raises:
        RelayError: the relay refused.
    """
    status = {"SessionStart": "online", "UserPromptSubmit": "busy", "Stop": "idle"}.get(event)
    if event == "SessionEnd" and payload.get("reason") not in CONTINUING:
        status = "offline"
    if status:
        me.heartbeat(status=status)
