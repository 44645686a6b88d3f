"""What each Claude Code hook does, given the session's agent.

Input and output follow Claude Code's hook JSON
(https://code.claude.com/docs/en/hooks): every input has ``session_id``,
``transcript_path``, ``cwd`` and ``hook_event_name``; context goes back as
``hookSpecificOutput.additionalContext``; a Stop hook blocks with
``{"decision": "block", "reason": ...}``.

Messages are handed over once: :func:`handle` returns the output and the ids
of the messages it shows (:class:`Outcome`), and the caller marks them read
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

from ...client import AgentHandle
from ...errors import NotFound
from ...identity import SessionIdentity
from ...models import Message, Priority, TaskStatus, Via
from .command import usage_text

#: At most this many messages per hook output; the rest wait for the next one.
MAX_MESSAGES = 10
#: A body longer than this many characters is cut (the inbox tool has it whole).
MAX_BODY = 2000
#: SessionEnd reasons after which the same Claude Code process goes on
#: (``/clear`` starts a new conversation at once): the agent stays online.
CONTINUING = frozenset({"clear", "resume", "compact"})

#: Set by ``relaybus run`` in its program's environment (to ``pty``): the runner
#: types the mail in, so the hooks do not hand it over a second time.
RUNTIME_ENV = "RELAYBUS_RUNTIME"


@dataclass
class Outcome:
    """What a hook hands Claude Code: its output JSON (None: print nothing)
    and the ids of the messages that output shows, to mark read once it is
    handed over (:func:`deliver`)."""

    output: dict[str, Any] | None = None
    shown: list[int] = field(default_factory=list)


def usage(me: AgentHandle) -> str:
    """The SessionStart context: who this session is on the relay and how to use it."""
    info = me.info()
    return usage_text(me.id, info.label, info.tags, info.capabilities)


def task_note(me: AgentHandle, task_id: int) -> str:
    """How a message's task reads in the context: offered for claiming only
    while it is open, otherwise its status (nobody should take up done work)."""
    try:
        status = me.relay.task(task_id).status
    except NotFound:
        return f"task {task_id} (gone)"
    if status is TaskStatus.OPEN:
        return f"task {task_id} (open: claim it with the task tool)"
    return f"task {task_id} ({status.value.replace('_', ' ')}: nothing to claim)"


def render(me: AgentHandle, messages: Sequence[Message], *, more: int = 0) -> str:
    """Messages of ``me``'s inbox as text for the model's context, oldest first."""
    head = f"relaybus: {len(messages)} new message{'s' if len(messages) != 1 else ''}"
    parts = [head + (f" ({more} more unread: call the inbox tool)" if more else "") + "."]
    for msg in messages:
        tags = [f"#{msg.id} from {msg.sender}"]
        if msg.thread_id != msg.id:
            tags.append(f"in thread #{msg.thread_id}")
        if msg.channel:
            tags.append(f"channel {msg.channel}")
        if msg.task_id:
            tags.append(task_note(me, msg.task_id))
        if msg.priority is not Priority.NORMAL:
            tags.append(f"priority {msg.priority.value}")
        body = msg.body if len(msg.body) <= MAX_BODY else msg.body[:MAX_BODY] + " […]"
        subject = f"Subject: {msg.subject}\n" if msg.subject else ""
        parts.append(f"[{', '.join(tags)}]\n{subject}{body}")
    parts.append("Answer with send(to=..., reply_to=ID) if a reply is needed.")
    return "\n\n".join(parts)


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
    more = me.unread_count() - len(shown) if len(found) > MAX_MESSAGES else 0
    return render(me, shown, more=more), [m.id for m in shown]


def deliver(me: AgentHandle, outcome: Outcome) -> None:
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
) -> Outcome:
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
            return Outcome(context(event, text + "\n\n" + mail[0]), mail[1])
        return Outcome(context(event, text))
    if event in ("UserPromptSubmit", "PostToolUse"):
        if event == "UserPromptSubmit":
            me.heartbeat(status="busy")  # presence: the session is working on a prompt
        mail = peek_new(me)
        return Outcome(context(event, mail[0]), mail[1]) if mail else Outcome()
    if event == "Stop":
        # Claude Code sets stop_hook_active when it is already continuing because
        # of a Stop hook: let it stop then, or two agents could keep each other busy.
        mail = None if payload.get("stop_hook_active") else peek_new(me)
        if mail:
            return Outcome({"decision": "block", "reason": mail[0]}, mail[1])
        me.heartbeat(status="idle")
        return Outcome()
    if event == "SessionEnd":
        if payload.get("reason") not in CONTINUING:
            me.heartbeat(status="offline")
        return Outcome()
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
