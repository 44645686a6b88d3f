"""What each Claude Code hook does, given the session's agent.

Input and output follow Claude Code's hook JSON
(https://code.claude.com/docs/en/hooks): every input has ``session_id``,
``transcript_path``, ``cwd`` and ``hook_event_name``; context goes back as
``hookSpecificOutput.additionalContext``; a Stop hook blocks with
``{"decision": "block", "reason": ...}``.

Messages are handed over at most once: the hook that shows a message marks it
read in the same call (the inbox read with ``mark_read``), so the next prompt
does not repeat it, and the MCP ``inbox`` tool does not return it again.

Under ``relaybus run`` (``RELAYBUS_RUNTIME`` set in the session's environment)
the runner types the mail into the terminal itself, so the hooks keep to
presence and leave the mail to it: each message reaches the session once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ...client import AgentHandle
from ...identity import SessionIdentity
from ...models import Message, Priority, Via
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


def usage(me: AgentHandle) -> str:
    """The SessionStart context: who this session is on the relay and how to use it."""
    info = me.info()
    return usage_text(me.id, info.label, info.tags, info.capabilities)


def render(messages: Sequence[Message], *, more: int = 0) -> str:
    """Messages as text for the model's context, oldest first."""
    head = f"relaybus: {len(messages)} new message{'s' if len(messages) != 1 else ''}"
    parts = [head + (f" ({more} more unread: call the inbox tool)" if more else "") + "."]
    for msg in messages:
        tags = [f"#{msg.id} from {msg.sender}"]
        if msg.thread_id != msg.id:
            tags.append(f"in thread #{msg.thread_id}")
        if msg.channel:
            tags.append(f"channel {msg.channel}")
        if msg.task_id:
            tags.append(f"task {msg.task_id} (claim it with the task tool)")
        if msg.priority is not Priority.NORMAL:
            tags.append(f"priority {msg.priority.value}")
        body = msg.body if len(msg.body) <= MAX_BODY else msg.body[:MAX_BODY] + " […]"
        subject = f"Subject: {msg.subject}\n" if msg.subject else ""
        parts.append(f"[{', '.join(tags)}]\n{subject}{body}")
    parts.append("Answer with send(to=..., reply_to=ID) if a reply is needed.")
    return "\n\n".join(parts)


def take_new(me: AgentHandle) -> str | None:
    """The unread mail as context text, marked read; None when there is none,
    or when a terminal runtime delivers this session's mail (:data:`RUNTIME_ENV`)."""
    if os.environ.get(RUNTIME_ENV):
        return None
    found = me.inbox(unread_only=True, newest_first=False, limit=MAX_MESSAGES + 1)
    if not found:
        return None
    shown = found[:MAX_MESSAGES]
    me.mark_read([m.id for m in shown], via=Via.HOOK)
    more = me.unread_count() if len(found) > MAX_MESSAGES else 0
    return render(shown, more=more)


def context(event: str, text: str) -> dict[str, Any]:
    """``hookSpecificOutput`` carrying ``text`` as additional context."""
    return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}


def handle(
    event: str,
    payload: Mapping[str, Any],
    me: AgentHandle,
    identity: SessionIdentity | None = None,
) -> dict[str, Any] | None:
    """Run hook ``event`` (a Claude Code event name, e.g. ``"Stop"``) for agent
    ``me``; returns the hook's output JSON, or None for no output.

    Raises:
        RelayError: the relay refused a call (the command logs it and prints nothing).
        ValueError: an event this module does not handle.
    """
    if event == "SessionStart":
        me.heartbeat(status="online")
        text = usage(me)
        mail = take_new(me)
        return context(event, text + ("\n\n" + mail if mail else ""))
    if event == "UserPromptSubmit":
        me.heartbeat(status="busy")  # presence: the session is working on a prompt
        mail = take_new(me)
        return context(event, mail) if mail else None
    if event == "PostToolUse":
        mail = take_new(me)
        return context(event, mail) if mail else None
    if event == "Stop":
        # Claude Code sets stop_hook_active when it is already continuing because
        # of a Stop hook: let it stop then, or two agents could keep each other busy.
        mail = None if payload.get("stop_hook_active") else take_new(me)
        if mail:
            return {"decision": "block", "reason": mail}
        me.heartbeat(status="idle")
        return None
    if event == "SessionEnd":
        if payload.get("reason") not in CONTINUING:
            me.heartbeat(status="offline")
        return None
    raise ValueError(f"relaybus does not handle the hook event {event!r}")
