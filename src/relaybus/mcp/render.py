"""Tool results as short plain text a model reads at a glance.

One message is a header line and its body::

    #12 from bob (thread #10, task #4) - Review PR 7
    PR 7 is ready for review.

Agents and tasks are one line each. Nothing here touches the relay.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..bounds import count_text
from ..models import Agent, Approval, Message, Pair, Priority, Task


def message(m: Message) -> str:
    """``#ID from SENDER (thread, reply, channel, priority, task) - SUBJECT`` and the body."""
    notes: list[str] = []
    if isinstance(m.meta.get("pair"), int):
        notes.append(f"pair {m.meta['pair']}")
    if m.thread_id != m.id:
        notes.append(f"thread #{m.thread_id}")
    if m.reply_to is not None and m.reply_to != m.thread_id:
        notes.append(f"reply to #{m.reply_to}")
    if m.channel:
        notes.append(f"channel {m.channel}")
    if m.priority != Priority.NORMAL:
        notes.append(f"{m.priority.value} priority")
    if m.task_id is not None:
        notes.append(f"task #{m.task_id}")
    head = f"#{m.id} from {m.sender}"
    if notes:
        head += f" ({', '.join(notes)})"
    if m.subject:
        head += f" - {m.subject}"
    return f"{head}\n{m.body}"


def messages(found: Sequence[Message], *, more: int = 0) -> str:
    """Messages oldest first, separated by blank lines; ``more`` unread left is said last."""
    if not found:
        return "No new messages."
    noun = "message" if len(found) == 1 else "messages"
    parts = [f"{len(found)} new {noun}:", *(message(m) for m in found)]
    if more:
        parts.append(f"({count_text(more)} more unread: call inbox again.)")
    return "\n\n".join(parts)


def history(found: Sequence[Message]) -> str:
    """Broadcasts from before one joined, newest first (none is marked read: they were
    never in the inbox)."""
    if not found:
        return "No earlier broadcasts."
    return "\n\n".join(["Earlier broadcasts, newest first:", *(message(m) for m in found)])


def sent(m: Message) -> str:
    """What a send did: the message id, who got it, the thread and the task."""
    who = ", ".join(m.recipients[:10])
    if len(m.recipients) > 10:
        who += f" and {len(m.recipients) - 10} more"
    text = f"Sent #{m.id} to {m.to}"
    if m.recipients != [m.to]:
        text += f" ({who})"
    if m.thread_id != m.id:
        text += f" in thread #{m.thread_id}"
    text += "."
    if m.task_id is not None:
        text += f" Task #{m.task_id} is open: one recipient can claim it."
    return text


def agent(a: Agent, *, me: str | None = None) -> str:
    """One line: id, status, label, tags, capabilities, channels, approval mode
    (when not open)."""
    parts = [f"{a.id} ({a.status.value})"]
    if a.label:
        parts.append(f'"{a.label}"')
    if a.tags:
        parts.append("tags: " + ", ".join(a.tags))
    if a.capabilities:
        parts.append("caps: " + ", ".join(a.capabilities))
    if a.channels:
        parts.append("channels: " + ", ".join(a.channels))
    if a.approval is not Approval.OPEN:
        parts.append(f"approval: {a.approval.value}")
    line = " - ".join(parts)
    return line + " [you]" if a.id == me else line


def agents(found: Sequence[Agent], *, me: str | None = None, offline: bool = False) -> str:
    """The agent list, one per line, or a sentence saying there is nobody."""
    if not found:
        return "No agents." if offline else "No agents online."
    return "\n".join(agent(a, me=me) for a in found)


def task(t: Task) -> str:
    """One line: ``task #ID [status, holder, progress: note] TITLE``, then its link,
    meta and result, each on a line of its own when it has one."""
    state = [t.status.value]
    if t.assignee:
        state.append(f"held by {t.assignee}" if not t.status.terminal else f"by {t.assignee}")
    if t.progress and not t.status.terminal:
        state.append(f"{t.progress}%" + (f": {t.progress_note}" if t.progress_note else ""))
    line = f"task #{t.id} [{', '.join(state)}] {t.title}"
    if t.message_id is not None:
        line += f" (message #{t.message_id})"
    if t.occurrence_count > 1:
        line += f" seen {t.occurrence_count} times"
    if t.external_url:
        line += f"\nlink: {t.external_url}"
    if t.meta:
        line += f"\nmeta: {json.dumps(t.meta, ensure_ascii=False, sort_keys=True)}"
    if t.result:
        line += f"\nresult: {t.result}"
    return line


def tasks(open_: Sequence[Task], held: Sequence[Task]) -> str:
    """Open tasks offered to this agent (it may claim them), then the ones it holds."""
    lines = ["Open tasks:" if open_ else "No open tasks."]
    lines += [task(t) for t in open_]
    if held:
        lines += ["You hold:", *(task(t) for t in held)]
    return "\n".join(lines)


def pair(p: Pair, *, me: str | None = None) -> str:
    """``pair 7 active: alice with bob - fix CI`` (the other side first for ``me``)."""
    who = f"{p.inviter} invited {p.invitee}"
    if me in (p.inviter, p.invitee):
        other = p.invitee if me == p.inviter else p.inviter
        who = f"you invited {other}" if me == p.inviter else f"{other} invited you"
    status = p.status.value + (f" ({p.reason})" if p.reason and p.reason != p.status else "")
    return f"pair {p.id} {status}: {who} - {p.objective}"


def pairs(found: Sequence[Pair], *, me: str | None = None) -> str:
    """Pairs, newest first, one line each."""
    return "\n".join(pair(p, me=me) for p in found) if found else "No pairs."


def whoami(a: Agent, *, unread: int, where: str) -> str:
    """Identity, presence, routing fields, approval mode and the unread count."""
    label = f' "{a.label}"' if a.label else ""
    lines = [
        f"You are {a.id}{label} ({a.status.value}), workspace {a.workspace}, on {where}.",
        "tags: " + (", ".join(a.tags) or "none"),
        "capabilities: " + (", ".join(a.capabilities) or "none"),
        "channels: " + (", ".join(a.channels) or "all"),
        f"approval mode: {a.approval.value}",
        f"{count_text(unread)} unread message{'' if unread == 1 else 's'}.",
    ]
    return "\n".join(lines)
