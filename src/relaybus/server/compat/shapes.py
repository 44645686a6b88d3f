"""relaybus models in agent-relay-server's JSON shapes: camelCase names, ``from``
for the sender, timestamps in milliseconds since the Unix epoch.

Each shape keeps every field relaybus has (its clients ignore what they do not
know) under the seed's name where the seed has one. docs/compat.md lists them.
"""

from __future__ import annotations

from typing import Any

from ...models import Agent, AgentStatus, Message, Task, TaskEvent
from ...service import WorkspaceStats
from .common import millis

#: Agent statuses in which the seed calls an agent ``ready`` for work.
READY = (AgentStatus.ONLINE, AgentStatus.IDLE)


def agent_card(agent: Agent) -> dict[str, Any]:
    """The seed's agent card. ``name`` and ``rig`` come back from ``meta``, where
    registration keeps them; ``machine`` is relaybus's ``host``; ``ready`` is
    derived from the status (online or idle); ``lastSeen`` is the last heartbeat."""
    meta = agent.meta
    return {
        "id": agent.id,
        "name": meta.get("name") if isinstance(meta.get("name"), str) else agent.label,
        "label": agent.label,
        "machine": agent.host,
        "rig": meta.get("rig") if isinstance(meta.get("rig"), str) else None,
        "tags": agent.tags,
        "capabilities": agent.capabilities,
        "channels": agent.channels,
        "status": agent.status.value,
        "ready": agent.status in READY,
        "pid": agent.pid,
        "cwd": agent.cwd,
        "instanceId": agent.instance_id,
        "epoch": agent.epoch,
        "meta": meta,
        "workspace": agent.workspace,
        "registeredAt": millis(agent.registered_at),
        "lastSeen": millis(agent.last_seen_at),
        "stuck": agent.stuck,
    }


def message_view(message: Message) -> dict[str, Any]:
    """The seed's message. ``claimable`` is whether the message carries a task
    (``taskId``: claim it through ``/api/messages/{id}/claim`` or the task's own
    routes); ``type`` is ``meta.type`` when the sender gave one (the seed's ``kind``);
    ``readAt`` and ``deliveredAt`` are the reader's, in inbox reads."""
    meta = message.meta
    return {
        "id": message.id,
        "from": message.sender,
        "to": message.to,
        "channel": message.channel,
        "subject": message.subject,
        "body": message.body,
        "replyTo": message.reply_to,
        "threadId": message.thread_id,
        "priority": message.priority.value,
        "claimable": message.task_id is not None,
        "taskId": message.task_id,
        "type": meta.get("type") if isinstance(meta.get("type"), str) else None,
        "meta": meta,
        "recipients": message.recipients,
        "workspace": message.workspace,
        "createdAt": millis(message.created_at),
        "deliveredAt": millis(message.delivered_at),
        "readAt": millis(message.read_at),
    }


def task_view(task: Task) -> dict[str, Any]:
    """The seed's task: ``claimedBy`` (also ``assignee``), ``claimExpiresAt`` (the
    lease), ``occurrenceCount`` and ``lastSeenAt`` (repeats of its ``dedupeKey``),
    ``messageId``, and where it came from (``integration``, ``source``,
    ``externalUrl``)."""
    return {
        "id": task.id,
        "title": task.title,
        "body": task.body,
        "status": task.status.value,
        "target": task.target,
        "channel": task.channel,
        "assignee": task.assignee,
        "claimedBy": task.assignee,
        "claimExpiresAt": millis(task.lease_expires_at),
        "progress": task.progress,
        "progressNote": task.progress_note,
        "result": task.result,
        "dedupeKey": task.dedupe_key,
        "occurrenceCount": task.occurrence_count,
        "lastSeenAt": millis(task.last_seen_at),
        "messageId": task.message_id,
        "creator": task.creator,
        "integration": task.integration,
        "source": task.source,
        "externalUrl": task.external_url,
        "priority": task.priority,
        "meta": task.meta,
        "workspace": task.workspace,
        "createdAt": millis(task.created_at),
        "updatedAt": millis(task.updated_at),
    }


def task_event_view(event: TaskEvent) -> dict[str, Any]:
    """One step of a task's history."""
    return {
        "id": event.id,
        "taskId": event.task_id,
        "kind": event.kind,
        "status": event.status.value,
        "agentId": event.agent_id,
        "progress": event.progress,
        "note": event.note,
        "createdAt": millis(event.created_at),
    }


def claim_view(message_id: int, task: Task) -> dict[str, Any]:
    """The answer to claiming (or renewing the claim of) message ``message_id``:
    who holds it until when, and its task."""
    return {
        "ok": True,
        "messageId": message_id,
        "taskId": task.id,
        "claimedBy": task.assignee,
        "claimExpiresAt": millis(task.lease_expires_at),
        "task": task_view(task),
    }


def stats_view(stats: WorkspaceStats, *, version: str, uptime: float) -> dict[str, Any]:
    """``GET /api/stats``: counts of agents, messages and tasks, the newest message
    id (``latestId``, a poller's first cursor), the server's version and uptime."""
    return {
        "version": version,
        "uptimeSeconds": round(uptime, 3),
        "agents": {"total": sum(stats.agents.values()), **stats.agents},
        "messages": {"total": stats.messages, "unread": stats.unread},
        "tasks": {"total": sum(stats.tasks.values()), **stats.tasks},
        "latestId": stats.latest_message_id,
    }
