"""Agents: register (with epoch fencing), heartbeat, update, unregister, list."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .. import bounds
from ..bounds import MAX_HOST_CHARS, MAX_INSTANCE_ID_CHARS
from ..errors import InvalidInput, NotFound
from ..identity import derive_agent_id
from ..models import Agent, AgentStatus, Approval
from ..store.schema import agents
from .common import (
    append_event,
    check_choice,
    check_label,
    check_meta,
    check_name,
    check_names,
    check_text,
    did_you_mean,
    touch_agent,
)
from .deliveries import delete_agents_deliveries, stuck_counts
from .leases import release_held
from .presence import HOSTNAME, effective_status
from .sweeps import SweepOps
from .tokens import replace_agent_token, revoke_agent_tokens

#: Ids no agent may take: a target word, and the operator's sender (tasks and messages
#: an admin opens come from ``relaybus``, which no agent may act as).
RESERVED_IDS = frozenset({"broadcast", "relaybus"})
#: The largest pid the ``pid`` column holds (PostgreSQL INTEGER); Linux pids stay below 2^22.
MAX_PID = bounds.MAX_PID


def _list_edits(
    values: Mapping[str, Any], **lists: tuple[str, Sequence[str] | None, Sequence[str] | None]
) -> dict[str, tuple[list[str], set[str]]]:
    """The checked item-by-item changes of :meth:`AgentOps.update_agent`: column →
    (names to add, names to remove), for the columns with any change.

    Raises:
        InvalidInput: a malformed name, or one name given as a list.
    """
    edits: dict[str, tuple[list[str], set[str]]] = {}
    for column, (kind, added, removed) in lists.items():
        if added is None and removed is None:
            continue
        edits[column] = (check_names(kind, _names(added)), set(check_names(kind, _names(removed))))
    return edits


def _names(values: Sequence[str] | None) -> list[str]:
    if isinstance(values, str):  # one name is not a list of its letters
        raise InvalidInput(f"expected a list of names, not the text {values!r}")
    return list(values or ())


def parse_approval(approval: Approval | str | None) -> str | None:
    """``approval`` as stored: an :class:`Approval` value, or ``None`` (not given).

    Raises:
        InvalidInput: not one of open, guarded, read-only.
    """
    return None if approval is None else check_choice(Approval, "approval mode", approval).value


def parse_status(status: AgentStatus | str) -> AgentStatus:
    """``status`` as an :class:`AgentStatus`.

    Raises:
        InvalidInput: not one of online, busy, idle, offline.
    """
    return check_choice(AgentStatus, "status", status)


class AgentOps(SweepOps):
    """Agent lifecycle and presence operations."""

    def register(
        self,
        agent_id: str | None = None,
        *,
        workspace: str = "default",
        label: str | None = None,
        tags: Sequence[str] = (),
        capabilities: Sequence[str] = (),
        channels: Sequence[str] = (),
        pid: int | None = None,
        host: str | None = None,
        cwd: str | None = None,
        meta: Mapping[str, Any] | None = None,
        instance_id: str | None = None,
        tool: str = "agent",
        token_hash: str | None = None,
        approval: Approval | str | None = None,
    ) -> Agent:
        """Register an agent, or refresh the registration of an existing id.

        Registering again with the same ``instance_id`` keeps the epoch;
        a different (or no) ``instance_id`` is a new instance and bumps
        ``epoch``, so calls carrying the old epoch fail with Conflict.

        Args:
            agent_id: the stable address; derived (see :func:`derive_agent_id`)
                when omitted.
            pid, host, cwd: the process acting as the agent (presence checks
                the pid when ``host`` is this machine). ``host`` defaults to
                this machine's name, ``cwd`` to the current directory.
            token_hash: the digest (:func:`~relaybus.service.tokens.hash_token`)
                of a bearer token issued with this registration; it replaces
                the agent's earlier token in the same transaction.
            approval: the session's approval mode (:class:`Approval`); like every
                field of a registration it replaces the stored one, ``None``
                leaving none (which reads as ``open``).

        Raises:
            InvalidInput: a malformed id, workspace, tag, capability, channel
                or label, an unknown approval mode, a pid outside 1–2^31-1,
                a reserved id (``broadcast``), a label, host or cwd with a NUL
                character or an unpaired surrogate, or a ``meta`` that is not a
                JSON object (see :func:`~relaybus.service.common.check_meta`).
            TooLarge: ``meta`` over ``settings.max_body_bytes`` as JSON.
        """
        host = check_text("host", host or HOSTNAME)
        cwd = check_text("cwd", cwd or os.getcwd())
        check_text("tool", tool)
        if instance_id is not None:
            check_text("instance id", instance_id)
        check_name("workspace", workspace)
        if len(workspace) > 64:
            raise InvalidInput("a workspace name has at most 64 characters")
        if pid is not None and (
            isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid <= MAX_PID
        ):
            raise InvalidInput(f"a pid is between 1 and {MAX_PID}, not {pid}")
        if agent_id is None:
            agent_id = derive_agent_id(
                host=host, tool=tool, project=Path(cwd).name, cwd=cwd, instance_id=instance_id
            )
        check_name("agent id", agent_id)
        if agent_id in RESERVED_IDS:
            raise InvalidInput(f"{agent_id!r} is a reserved name; pick another agent id")
        values: dict[str, Any] = {
            "label": label,
            "tags": check_names("tag", list(tags)),
            "capabilities": check_names("capability", list(capabilities)),
            "channels": check_names("channel", list(channels)),
            "status": AgentStatus.ONLINE.value,
            "pid": pid,
            "host": host,
            "cwd": cwd,
            "meta": check_meta(meta, self.settings.max_body_bytes),
            "instance_id": instance_id,
            "approval": parse_approval(approval),
        }
        if label is not None:
            check_label(label)
        # The columns' limits, checked here so both dialects refuse alike.
        if len(host) > MAX_HOST_CHARS:
            raise InvalidInput(f"a host name has at most {MAX_HOST_CHARS} characters")
        if instance_id is not None and not 0 < len(instance_id) <= MAX_INSTANCE_ID_CHARS:
            raise InvalidInput(f"an instance id has 1-{MAX_INSTANCE_ID_CHARS} characters")
        with self.store.write() as conn:
            now = self.now()
            key = (agents.c.workspace == workspace) & (agents.c.id == agent_id)
            existing = conn.execute(sa.select(agents.c.epoch, agents.c.instance_id).where(key))
            row = existing.first()
            if row is None:
                epoch = 1
                conn.execute(
                    agents.insert().values(
                        workspace=workspace,
                        id=agent_id,
                        epoch=epoch,
                        registered_at=now,
                        last_seen_at=now,
                        **values,
                    )
                )
            else:
                same = instance_id is not None and row.instance_id == instance_id
                epoch = row.epoch if same else row.epoch + 1
                conn.execute(
                    agents.update().where(key).values(epoch=epoch, last_seen_at=now, **values)
                )
            append_event(
                conn,
                workspace,
                "agent.registered",
                now,
                agent_id,
                epoch=epoch,
                label=label,
                tags=values["tags"],
                capabilities=values["capabilities"],
                channels=values["channels"],
                approval=values["approval"],
            )
            if token_hash is not None:
                replace_agent_token(conn, workspace, agent_id, token_hash, now)
        return self.get_agent(agent_id, workspace=workspace)

    def heartbeat(
        self,
        agent_id: str,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        status: AgentStatus | str | None = None,
    ) -> Agent:
        """Record that the agent is alive (optionally setting its status).

        Raises:
            NotFound: unknown agent. Conflict: stale ``epoch``.
            InvalidInput: unknown status.
        """
        if status is not None:
            return self.update_agent(agent_id, workspace=workspace, epoch=epoch, status=status)
        with self.store.write() as conn:
            touch_agent(conn, workspace, agent_id, epoch, self.now())
        return self.get_agent(agent_id, workspace=workspace)

    def update_agent(
        self,
        agent_id: str,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        label: str | None = None,
        tags: Sequence[str] | None = None,
        capabilities: Sequence[str] | None = None,
        channels: Sequence[str] | None = None,
        status: AgentStatus | str | None = None,
        meta: Mapping[str, Any] | None = None,
        add_tags: Sequence[str] | None = None,
        remove_tags: Sequence[str] | None = None,
        add_capabilities: Sequence[str] | None = None,
        remove_capabilities: Sequence[str] | None = None,
        join_channels: Sequence[str] | None = None,
        leave_channels: Sequence[str] | None = None,
        approval: Approval | str | None = None,
    ) -> Agent:
        """Change an agent's label, tags, capabilities, channels, status, meta or
        approval mode (:class:`Approval`; the session's gate reads it at its next tool
        call).

        ``None`` leaves a field as it is; an empty list clears it. The ``add_*``,
        ``remove_*``, ``join_channels`` and ``leave_channels`` lists change one list
        item by item instead of replacing it: names added go at the end unless present,
        names removed go if present, so the same change made twice changes nothing the
        second time. They are applied to the stored list inside the write transaction
        (the row locked on PostgreSQL), so concurrent changes of different names all
        land. Given with a whole list, they change that list instead of the stored one.

        Fencing is as for any call: without ``epoch`` the change applies to whichever
        instance holds the id, and it never starts a new epoch.

        Raises:
            NotFound: unknown agent. Conflict: stale ``epoch``.
            InvalidInput: a malformed name or label, an unknown status or
                approval mode, or a ``meta`` that is not a JSON object.
            TooLarge: ``meta`` over ``settings.max_body_bytes`` as JSON.
        """
        values: dict[str, Any] = {}
        if label is not None:
            values["label"] = check_label(label)
        if tags is not None:
            values["tags"] = check_names("tag", list(tags))
        if capabilities is not None:
            values["capabilities"] = check_names("capability", list(capabilities))
        if channels is not None:
            values["channels"] = check_names("channel", list(channels))
        if meta is not None:
            values["meta"] = check_meta(meta, self.settings.max_body_bytes)
        if status is not None:
            values["status"] = parse_status(status).value
        if approval is not None:
            values["approval"] = parse_approval(approval)
        edits = _list_edits(
            values,
            tags=("tag", add_tags, remove_tags),
            capabilities=("capability", add_capabilities, remove_capabilities),
            channels=("channel", join_channels, leave_channels),
        )
        with self.store.write() as conn:
            now = self.now()
            touch_agent(conn, workspace, agent_id, epoch, now)
            stored = [column for column in edits if column not in values]
            if stored:
                key = (agents.c.workspace == workspace) & (agents.c.id == agent_id)
                columns = [agents.c[column] for column in stored]
                row = conn.execute(sa.select(*columns).where(key).with_for_update()).one()
                values.update(row._mapping)
            for column, (added, removed) in edits.items():
                kept = [name for name in values[column] if name not in removed]
                values[column] = kept + [name for name in added if name not in kept]
            if values:
                conn.execute(
                    agents.update()
                    .where(agents.c.workspace == workspace, agents.c.id == agent_id)
                    .values(**values)
                )
                kind = "agent.offline" if values.get("status") == "offline" else "agent.updated"
                append_event(conn, workspace, kind, now, agent_id, **values)
                if kind == "agent.offline":
                    # An agent that says it is gone holds nothing any more.
                    release_held(conn, workspace, agent_id, now, "holder offline")
        return self.get_agent(agent_id, workspace=workspace)

    def unregister(
        self, agent_id: str, *, workspace: str = "default", epoch: int | None = None
    ) -> None:
        """Remove an agent: its deliveries go, its claimed tasks reopen and
        its tokens are revoked.

        Messages it sent stay (threads keep their history).

        Raises:
            NotFound: unknown agent. Conflict: stale ``epoch``.
        """
        with self.store.write() as conn:
            now = self.now()
            touch_agent(conn, workspace, agent_id, epoch, now)
            release_held(conn, workspace, agent_id, now, reason="unregistered")
            delete_agents_deliveries(conn, workspace, [agent_id])
            conn.execute(
                agents.delete().where(agents.c.workspace == workspace, agents.c.id == agent_id)
            )
            revoke_agent_tokens(conn, workspace, [agent_id])
            append_event(conn, workspace, "agent.unregistered", now, agent_id)

    def get_agent(self, agent_id: str, *, workspace: str = "default") -> Agent:
        """One agent, with its effective status.

        Raises:
            NotFound: no such agent (the message suggests close ids).
        """
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(agents).where(agents.c.workspace == workspace, agents.c.id == agent_id)
            ).first()
            stuck = self._stuck(conn, workspace, agent_id)
            if row is None:
                ids = conn.execute(
                    sa.select(agents.c.id).where(agents.c.workspace == workspace)
                ).scalars()
                raise NotFound(
                    f"no agent {agent_id!r}" + did_you_mean(agent_id, list(ids)), agent=agent_id
                )
        return self._agent(row._mapping, stuck)

    def list_agents(
        self,
        *,
        workspace: str = "default",
        status: AgentStatus | str | None = None,
        tag: str | None = None,
        capability: str | None = None,
        channel: str | None = None,
        online_only: bool = False,
    ) -> list[Agent]:
        """Agents of a workspace, ordered by id, with effective statuses and
        stuck-delivery counts.

        Args:
            status: only agents whose effective status is this.
            online_only: leave out offline agents.

        Raises:
            InvalidInput: an unknown ``status``.
        """
        wanted = None if status is None else parse_status(status)
        self.sweep(workspace=workspace)
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(agents).where(agents.c.workspace == workspace).order_by(agents.c.id)
            ).all()
            stuck = self._stuck(conn, workspace)
        found = [self._agent(r._mapping, stuck) for r in rows]
        return [
            a
            for a in found
            if (wanted is None or a.status == wanted)
            and (not online_only or a.status != AgentStatus.OFFLINE)
            and (tag is None or tag in a.tags)
            and (capability is None or capability in a.capabilities)
            and (channel is None or not a.channels or channel in a.channels)
        ]

    def _stuck(
        self, conn: sa.Connection, workspace: str, agent_id: str | None = None
    ) -> dict[str, int]:
        return stuck_counts(conn, workspace, self.now() - self.settings.stuck_after, agent_id)

    def _agent(self, row: Mapping[Any, Any], stuck: Mapping[str, int] | None = None) -> Agent:
        data = dict(row)
        data["status"] = status = effective_status(row, self.now(), self.settings.stale_ttl)
        data["approval"] = row.get("approval") or Approval.OPEN
        if stuck and status is not AgentStatus.OFFLINE:
            data["stuck"] = stuck.get(row["id"], 0)
        return Agent.model_validate(data)
