"""Typed values the relay returns: agents, messages, tasks, task events and log events.

All timestamps are timezone-aware UTC :class:`~datetime.datetime` values; the
store keeps them as float Unix seconds. Models are frozen pydantic models, so
``model_dump(mode="json")`` is the wire shape used by ``--json`` and the API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from .errors import InvalidInput

E = TypeVar("E", bound=StrEnum)


def to_datetime(seconds: float | None) -> datetime | None:
    """Float Unix seconds → aware UTC datetime (``None`` stays ``None``)."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def parse_choice(kind: type[E], what: str, value: E | str) -> E:
    """``value`` as a member of the string enum ``kind``; ``what`` names the choice
    in the error (``"message format"``: "the message format is framed or raw, not …").

    Raises:
        InvalidInput: not one of its values.
    """
    try:
        return kind(value)
    except ValueError:
        choices = " or ".join(member.value for member in kind)
        raise InvalidInput(f"the {what} is {choices}, not {value!r}") from None


class AgentStatus(StrEnum):
    """Presence of an agent. ``offline`` is also derived: a stale heartbeat or a dead pid."""

    ONLINE = "online"
    BUSY = "busy"
    IDLE = "idle"
    OFFLINE = "offline"


class Approval(StrEnum):
    """What an agent's coding session may do without a person (``agents.approval``).

    ``open``: whatever the tool's own permissions allow; ``guarded``: a person approves
    each tool call that changes files or runs commands; ``read-only``: such calls are
    denied. Enforced by the Claude Code ``PreToolUse`` hook and by the Codex flags that
    ``relaybus run`` presets (docs/claude-code.md, "Approval modes"); a stored NULL
    reads as ``open``.
    """

    OPEN = "open"
    GUARDED = "guarded"
    READ_ONLY = "read-only"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Via(StrEnum):
    """The path by which a delivery reached its agent's session.

    ``inbox``: returned by an inbox read (SDK, CLI, HTTP); ``stream``: pushed on
    a live stream (SSE, WebSocket) and acknowledged; ``mcp``: returned by an MCP
    tool; ``hook``: put in a coding agent's context by a hook; ``pty``: typed
    into a program under ``relaybus run``; ``tmux``: typed into a tmux pane.
    """

    INBOX = "inbox"
    STREAM = "stream"
    MCP = "mcp"
    HOOK = "hook"
    PTY = "pty"
    TMUX = "tmux"


class DeliveryState(StrEnum):
    """Where one recipient's copy of a message is: queued → delivered → read."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    READ = "read"

    def reached(self, goal: DeliveryState) -> bool:
        """Whether this state is ``goal`` or past it."""
        order = list(DeliveryState)
        return order.index(self) >= order.index(goal)


class TaskStatus(StrEnum):
    """Task lifecycle: open → claimed → in_progress → blocked/done/failed/canceled."""

    OPEN = "open"
    CLAIMED = "claimed"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELED)


class _Model(BaseModel):
    # Validators and serializers are built on first use (``defer_build``): a CLI
    # command is a whole process that imports every model and uses one or two.
    model_config = ConfigDict(frozen=True, defer_build=True)


class Agent(_Model):
    """A registered agent.

    ``status`` is the effective presence (a stale heartbeat or a dead pid on
    this host reads as ``offline``); ``epoch`` increases each time a new
    instance registers under the same id, fencing off the old one.
    """

    id: str
    workspace: str
    label: str | None = None
    tags: list[str] = Field(default_factory=list)
    capabilities: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    status: AgentStatus = AgentStatus.ONLINE
    pid: int | None = None
    host: str | None = None
    cwd: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    instance_id: str | None = None
    epoch: int = 1
    registered_at: datetime
    last_seen_at: datetime
    approval: Approval = Field(
        default=Approval.OPEN,
        description="The approval mode of its coding session: open, guarded or read-only.",
    )
    stuck: int = Field(
        default=0,
        description="Deliveries queued longer than the stuck threshold while the agent is "
        "not offline (filled by agent listings).",
    )


class Message(_Model):
    """A message as stored, plus the viewer's delivery state when read from an inbox.

    ``to`` is the target expression as sent; ``recipients`` the agent ids it
    resolved to (filled on send); ``thread_id`` is the id of the thread's root
    message (the message's own id for a root); ``delivered_at`` and ``read_at``
    are the reader's delivery state (inbox views only).
    """

    id: int
    workspace: str
    sender: str
    to: str
    channel: str | None = None
    subject: str | None = None
    body: str
    reply_to: int | None = None
    thread_id: int
    priority: Priority = Priority.NORMAL
    meta: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    task_id: int | None = None
    recipients: list[str] = Field(default_factory=list)
    delivered_at: datetime | None = None
    read_at: datetime | None = None


class Delivery(_Model):
    """One recipient's copy of a message: its receipt.

    ``queued_at`` is when the message was sent; ``delivered_at`` when it reached
    the agent's session, by ``via``; ``read_at`` when the agent read it (a read
    delivery is also delivered).
    """

    message_id: int
    agent_id: str
    state: DeliveryState
    queued_at: datetime
    delivered_at: datetime | None = None
    via: Via | None = None
    read_at: datetime | None = None


class Task(_Model):
    """A unit of work that exactly one agent claims.

    ``lease_expires_at`` is when the current claim lapses unless renewed;
    ``progress`` is 0–100.
    """

    id: int
    workspace: str
    title: str
    body: str | None = None
    target: str
    channel: str | None = None
    message_id: int | None = None
    creator: str | None = None
    status: TaskStatus
    assignee: str | None = None
    lease_expires_at: datetime | None = None
    progress: int = 0
    progress_note: str | None = None
    result: str | None = None
    dedupe_key: str | None = None
    occurrence_count: int = 1
    meta: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    #: The integration that raised it (its name), the system it came from, and a link
    #: to the thing itself (an alert, a CI run, a ticket).
    integration: str | None = None
    source: str | None = None
    external_url: str | None = None
    priority: str = "normal"
    #: When a repeat of its dedupe key was last seen (``occurrence_count`` counts them).
    last_seen_at: datetime | None = None


class LeaseRenewal(_Model):
    """What renewing every lease an agent holds did (``Service.renew_held``):
    ``renewed``, the ids of the tasks whose lease was extended, each by its own
    length; ``next_in``, seconds until the next renewal is due (a third of the
    shortest of those leases), ``None`` when nothing was held."""

    renewed: list[int] = Field(default_factory=list)
    next_in: float | None = None


class TaskEvent(_Model):
    """One step of a task's history (created, claimed, progress, released, done…)."""

    id: int
    task_id: int
    kind: str
    status: TaskStatus
    agent_id: str | None = None
    progress: int | None = None
    note: str | None = None
    created_at: datetime


class PairStatus(StrEnum):
    """A pair session's lifecycle: pending → active → ended; pending → rejected or
    expired (an invite nobody answered in time). Every status but the first two is final."""

    PENDING = "pending"
    ACTIVE = "active"
    REJECTED = "rejected"
    EXPIRED = "expired"
    ENDED = "ended"

    @property
    def final(self) -> bool:
        return self not in (PairStatus.PENDING, PairStatus.ACTIVE)


class Pair(_Model):
    """A focused two-agent session: ``inviter`` asked ``invitee`` to work on
    ``objective`` together. ``thread_id`` is the root message of the pair's thread (the
    invite); ``expires_at`` when a pending invite lapses; ``ended_by`` and ``reason``
    (``hangup``, ``rejected``, ``expired``, ``offline``) say how it ended."""

    id: int
    workspace: str
    inviter: str
    invitee: str
    objective: str
    status: PairStatus
    thread_id: int | None = None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    accepted_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    reason: str | None = None


class Event(_Model):
    """One entry of the append-only event log; ``id`` is the resume cursor."""

    id: int
    workspace: str
    kind: str
    agent_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class Credential(_Model):
    """Who a bearer token acts as: one agent of one workspace (``agent_id``), or one
    integration (``integration``, with its ``scopes``; the service checks its targets
    and channels against its row)."""

    workspace: str
    agent_id: str | None = None
    integration: str | None = None
    scopes: tuple[str, ...] = ()


class IntegrationStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class Integration(_Model):
    """An external system (monitoring, CI, a ticket desk) that posts events as tasks
    through its own token and hears back through signed callbacks.

    ``scopes``: what its token may do (``tasks:create``, ``tasks:read``,
    ``messages:send``, ``events:read``); ``targets`` and ``channels``: the target
    expressions and channels it may address (``*``: any); ``rate_limit``: events per
    minute; ``callback_url``: where task changes are posted (none: no callbacks).
    """

    workspace: str
    name: str
    scopes: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    callback_url: str | None = None
    rate_limit: int
    status: IntegrationStatus
    created_at: datetime
    updated_at: datetime


class IntegrationCreated(_Model):
    """An integration with its new bearer ``token`` and callback signing ``secret``:
    shown once (the relay keeps the token's SHA-256 only); ``secret`` is ``None``
    when it did not change."""

    integration: Integration
    token: str
    secret: str | None = None


class IngestOutcome(StrEnum):
    """What an integration event did: opened a task, raised an open one's occurrence
    count, closed it, or nothing (a resolution with nothing open)."""

    CREATED = "created"
    REPEATED = "repeated"
    RESOLVED = "resolved"
    IGNORED = "ignored"


class Ingested(_Model):
    """The task an integration event opened, repeated or resolved (``None`` when a
    resolution found nothing active), and the message this event sent, if any (the
    claimable one of a new task, or a notice of repeats)."""

    outcome: IngestOutcome
    task: Task | None = None
    message_id: int | None = None


class CallbackStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class CallbackAttempt(_Model):
    """One attempt to post a callback: who (``runner``, host:pid), when, and its
    outcome: the HTTP ``status`` or an ``error``, ``latency`` in seconds (all ``None``
    for an attempt whose sender stopped before it ended)."""

    attempt: int
    runner: str
    started_at: datetime
    status: int | None = None
    latency: float | None = None
    error: str | None = None


class CallbackDelivery(_Model):
    """A callback of the outbox: one task change ``event`` for ``integration``, its
    JSON ``payload`` (the body posted), and its delivery so far."""

    id: int
    workspace: str
    integration: str
    task_id: int
    event_id: int
    event: str
    status: CallbackStatus
    attempts: int
    next_attempt_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    created_at: datetime
    delivered_at: datetime | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    attempt_log: list[CallbackAttempt] = Field(default_factory=list)


class PruneReport(_Model):
    """What ``prune`` deleted (row counts)."""

    messages: int
    deliveries: int
    events: int
    agents: int
    #: Workflow runs that finished (done, failed, cancelled) before the messages' cutoff.
    workflow_runs: int = 0


# --- Spawned agents (issue 19: the warm local relay's supervisor) -----------------


class RestartPolicy(StrEnum):
    """When the supervisor starts a spawned agent's program again after it exits:
    ``no``, ``on-failure`` (a non-zero exit or a signal) or ``always`` (any exit but
    a release)."""

    NO = "no"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"


class SpawnedState(StrEnum):
    """A spawned agent's program: ``running`` (its process is up), ``restarting``
    (it exited and the restart policy starts it again), ``exited`` (it exited for
    good) or ``released`` (``release`` stopped it)."""

    RUNNING = "running"
    RESTARTING = "restarting"
    EXITED = "exited"
    RELEASED = "released"


class SpawnedAgent(_Model):
    """An agent program the warm local relay started and supervises
    (``relaybus spawn``; agent-relay's ``spawn_pty``/``spawn_headless``).

    ``command`` is the program's argv as run (a preset's, with its model and approval
    flags, or the one given). In a PTY (``headless`` false) it runs under
    ``relaybus run``, which types the agent's mail in; headless it runs once with its
    task as the prompt and no terminal. ``exit_code`` is the last exit's code
    (negative: the signal that ended it); ``last_lines`` the last lines of its output
    once it has exited.
    """

    name: str
    workspace: str
    cli: str | None = None
    command: list[str]
    headless: bool = False
    cwd: str
    model: str | None = None
    restart: RestartPolicy = RestartPolicy.NO
    state: SpawnedState
    pid: int | None = None
    restarts: int = 0
    exit_code: int | None = None
    idle: bool = False
    task_id: int | None = None
    started_at: datetime
    exited_at: datetime | None = None
    last_lines: list[str] = Field(default_factory=list)


class SpawnedScreen(_Model):
    """What a spawned agent's terminal shows now (``relaybus screen``): its ``rows``
    lines of ``columns`` characters, trailing blanks trimmed, and the cursor."""

    name: str
    columns: int
    rows: int
    lines: list[str]
    cursor_row: int
    cursor_column: int


class SpawnEventKind(StrEnum):
    """What happened to a spawned agent (the event log's ``agent.<kind>`` events)."""

    SPAWNED = "spawned"
    IDLE = "idle"
    EXITED = "exited"
    RESTARTED = "restarted"
    RELEASED = "released"


class SpawnEvent(_Model):
    """One event of a spawned agent, read from the event log (``id`` is the log's):
    ``code`` and ``last_lines`` on exited and restarted, ``reason`` on released."""

    id: int
    kind: SpawnEventKind
    name: str
    pid: int | None = None
    code: int | None = None
    restarts: int = 0
    last_lines: list[str] = Field(default_factory=list)
    reason: str | None = None
    at: datetime


class Preflight(_Model):
    """Whether an agent CLI can be spawned: found on PATH (``path``) and answering
    ``--version`` (``version``); ``error`` says why not when ``ok`` is false."""

    cli: str
    ok: bool
    path: str | None = None
    version: str | None = None
    error: str | None = None


# --- Workflow runs (issue 19: the runner's state, kept in the store) --------------


class WorkflowRunStatus(StrEnum):
    """A workflow run: ``running`` until every step is done (``done``), one failed for
    good (``failed``) or ``cancel`` stopped it (``cancelled``)."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class WorkflowRun(_Model):
    """One run of a workflow file, as its runner keeps it in the store.

    ``state`` is the runner's own document (each step's status, attempts, task ids and
    result); ``version`` goes up by one on every update, so two runners cannot both
    write it (an update names the version it read: Conflict otherwise). ``runner`` is
    who holds it (``host:pid``) and ``heartbeat_at`` when it last said so.
    """

    id: int
    workspace: str
    name: str
    file: str | None = None
    digest: str
    source: str
    status: WorkflowRunStatus
    runner: str | None = None
    heartbeat_at: datetime | None = None
    state: dict[str, Any] = Field(default_factory=dict)
    version: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
