"""The HTTP API's wire contract: every request and response body, once.

The server's routes take these models as FastAPI bodies and response models
(so they are the OpenAPI document's schemas), and the client's call builders
(:mod:`relaybus.client.calls`) build their request bodies from the same classes
and parse the answers with them, so mypy sees whether the two sides agree.

Request bodies state the bounds of :mod:`relaybus.bounds` in the document and
leave most checks to the service (its messages are the embedded mode's too): a
body valid by the document is one the service accepts. A client builds a body
with :func:`unchecked` (typed like the constructor, not validated: the server
refuses bad values with its own answer) and sends :func:`request_body` of it.

Only pydantic and the bottom layer (``models``, ``bounds``) are imported: every
remote CLI command imports this module. For the same reason the models build their
validators on first use (``defer_build``; a server calls :func:`build_all`), and
this module has no ``from __future__ import annotations``: pydantic would evaluate
every field's annotation from a string at import.
"""

from collections.abc import Callable
from typing import Annotated, Any, Literal, ParamSpec, TypeVar, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    WithJsonSchema,
)

from .bounds import (
    MAX_HOST_CHARS,
    MAX_ID,
    MAX_INSTANCE_ID_CHARS,
    MAX_LABEL_CHARS,
    MAX_LEASE_SECONDS,
    MAX_LIMIT,
    MAX_META_DEPTH,
    MAX_PID,
    MAX_SUBJECT_CHARS,
    MAX_URL,
    NAME_PATTERN,
    TARGET_PATTERN,
    TEXT_PATTERN,
    UNREAD_COUNT_LIMIT,
    anchored,
)
from .models import (
    Agent,
    AgentStatus,
    Approval,
    CallbackDelivery,
    Delivery,
    Event,
    Integration,
    Message,
    Priority,
    Task,
    TaskEvent,
    TaskStatus,
    Via,
)

M = TypeVar("M", bound=BaseModel)
P = ParamSpec("P")

#: Most messages in one batch (the service's limit too).
MAX_BATCH = 500
#: Most message ids in one receipt.
MAX_IDS = MAX_LIMIT


# -- field types ---------------------------------------------------------------


def _not_bool(value: object) -> object:
    # Lax pydantic reads true as 1; JSON Schema says a boolean is not a number.
    if isinstance(value, bool):
        raise ValueError("a number is required, not a boolean")
    return value


#: Body number types: integral floats (1.0) pass, as JSON Schema allows; booleans do
#: not. Bounds go before the validator, so that the JSON schema shows them.
NoBool = BeforeValidator(_not_bool)
#: A process id.
Pid = Annotated[int, Field(ge=1, le=MAX_PID), NoBool]
#: A number of days.
Days = Annotated[float, Field(ge=0), NoBool]

# Body fields the service checks (with its own messages, 400), stated in the
# OpenAPI document from the same constants (relaybus.bounds) and not checked
# again here: a body valid by the document is one the service accepts.


def _documented(**schema: Any) -> Any:
    return Field(json_schema_extra=schema)


#: Bounds of ids, cursors and limits as the document states them (the service
#: checks them, with the message the embedded SDK gives too).
ID_BOUNDS: dict[str, Any] = {"minimum": 1, "maximum": MAX_ID}
CURSOR_BOUNDS: dict[str, Any] = {"minimum": 0, "maximum": MAX_ID}
LIMIT_BOUNDS: dict[str, Any] = {"minimum": 1, "maximum": MAX_LIMIT}
#: A message id (``reply_to``, ``ids``).
MessageId = Annotated[int, _documented(**ID_BOUNDS), NoBool]
#: A cursor: "ids above this one" (0 is before everything).
CursorId = Annotated[int, _documented(**CURSOR_BOUNDS), NoBool]
#: An agent id, tag, capability or channel.
Name = Annotated[str, _documented(pattern=anchored(NAME_PATTERN))]
#: A target expression.
Target = Annotated[str, _documented(pattern=anchored(TARGET_PATTERN))]
#: Free text (a body, note, result, cwd…): no NUL character.
Text = Annotated[str, _documented(pattern=anchored(TEXT_PATTERN))]
#: A message subject.
Subject = Annotated[str, _documented(pattern=anchored(TEXT_PATTERN), maxLength=MAX_SUBJECT_CHARS)]
#: An agent label.
Label = Annotated[
    str, _documented(pattern=anchored(TEXT_PATTERN), minLength=1, maxLength=MAX_LABEL_CHARS)
]
#: Lease seconds: above 0, at most a week.
Lease = Annotated[float, _documented(exclusiveMinimum=0, maximum=MAX_LEASE_SECONDS), NoBool]
#: A percentage.
Percent = Annotated[int, _documented(minimum=0, maximum=100), NoBool]
#: A task's title.
Title = Annotated[
    str,
    _documented(pattern=r"^[^\x00]*\S[^\x00]*$", minLength=1, maxLength=MAX_SUBJECT_CHARS),
]
#: A link to the thing a task is about.
ExternalUrl = Annotated[str, _documented(pattern=r"^https?://[^\x00]*$", maxLength=MAX_URL)]
#: Where callbacks go.
CallbackUrl = Annotated[str, _documented(pattern=r"^https?://[^\x00]+$", maxLength=MAX_URL)]
#: A dedupe key: 1-255 characters, no control character.
DedupeKey = Annotated[str, _documented(pattern=r"^[^\x00-\x1f\x7f]{1,255}$")]
#: The system an event came from.
SourceName = Annotated[str, _documented(pattern=r"^[^\x00]{1,128}$")]
#: An integration's name: a name without ``/`` (it is one path segment), not ``events``.
IntegrationName = Annotated[
    str,
    _documented(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$", **{"not": {"const": "events"}}),
]
#: What an integration's token may do.
Scope = Literal["tasks:create", "tasks:read", "messages:send", "events:read"]
#: A target an integration may address, or ``*``.
AllowedTarget = Annotated[str, _documented(pattern=rf"^(?:\*|{TARGET_PATTERN})$")]
#: A channel an integration may post to, or ``*``.
AllowedChannel = Annotated[str, _documented(pattern=rf"^(?:\*|{NAME_PATTERN})$")]
#: The ``meta`` description every body shares.
META = (
    f"A JSON object of at most the server's body limit in bytes, nested at most "
    f"{MAX_META_DEPTH} levels deep, with no NUL character in its text."
)
_AGENT = "The agent acting; defaults to the agent token's agent."


class Body(BaseModel):
    """Base of request bodies: unknown fields and non-finite numbers are 422.

    Validators and serializers are built on first use (``defer_build``): every
    remote CLI command imports this module and uses a model or two."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)


class Answer(BaseModel):
    """Base of response bodies (like :class:`Body`, validators built on first use)."""

    model_config = ConfigDict(defer_build=True)


def examples(*values: dict[str, Any]) -> ConfigDict:
    """A model config adding example bodies to its JSON schema (for /docs, and for
    the fuzzer's explicit phase)."""
    return ConfigDict(json_schema_extra={"examples": list(values)})


# -- building a request body (client side) --------------------------------------


def unchecked(model: Callable[P, M]) -> Callable[P, M]:
    """``model``'s constructor as mypy sees it (field names and types checked), but
    without validation (pydantic's ``model_construct``): values are kept as given.

    A client builds request bodies with it, so that a bad value is refused by the
    server, with the server's answer (400/422 → ``InvalidInput``), exactly as when
    the client wrote the body by hand.
    """
    return cast(Callable[P, M], cast(type[BaseModel], model).model_construct)


def request_body(body: BaseModel) -> dict[str, Any]:
    """The JSON object a client sends for ``body`` (made with :func:`unchecked`): its
    fields in declaration order with their values as given, ``None`` left out (an
    absent field is the server's default). The transport encodes it."""
    return {name: value for name, value in body if value is not None}


# -- agents ----------------------------------------------------------------------


class RegisterBody(Body):
    """A registration: the agent's address, what it is, and where it runs."""

    model_config = examples({"id": "alice", "tags": ["backend"], "capabilities": ["review"]})

    id: Name | None = Field(default=None, description="The agent id; derived when omitted.")
    label: Label | None = None
    tags: list[Name] = Field(default_factory=list)
    capabilities: list[Name] = Field(default_factory=list)
    channels: list[Name] = Field(default_factory=list)
    pid: Pid | None = None
    host: Text | None = Field(default=None, json_schema_extra={"maxLength": MAX_HOST_CHARS})
    cwd: Text | None = None
    meta: dict[str, Any] | None = Field(default=None, description=META)
    instance_id: Text | None = Field(
        default=None,
        description="Same instance re-registering keeps the epoch; a new one bumps it.",
        json_schema_extra={"minLength": 1, "maxLength": MAX_INSTANCE_ID_CHARS},
    )
    tool: Text = Field(default="agent", max_length=200)
    approval: Approval | None = Field(
        default=None, description="The session's approval mode; omitted reads as open."
    )


def _token_required(schema: dict[str, Any]) -> None:
    schema["required"] = ["agent", "token"]


class Registration(Answer):
    """A registered agent and its token (shown once: the relay keeps only its digest)."""

    # The server always sends a token (the document says so); an embedded relay
    # issues none, so the client's answer may hold None.
    model_config = ConfigDict(frozen=True, json_schema_extra=_token_required)

    agent: Agent
    token: Annotated[str | None, WithJsonSchema({"type": "string", "title": "Token"})] = None


class AgentUpdate(Body):
    """Fields to change; omitted fields stay, an empty list clears. ``add_*``,
    ``remove_*``, ``join_channels`` and ``leave_channels`` change a list item by item."""

    model_config = examples(
        {"status": "busy", "tags": ["backend", "python"]}, {"add_tags": ["python"]}
    )

    label: Label | None = None
    tags: list[Name] | None = None
    capabilities: list[Name] | None = None
    channels: list[Name] | None = None
    status: AgentStatus | None = None
    meta: dict[str, Any] | None = Field(default=None, description=META)
    add_tags: list[Name] | None = Field(
        default=None, description="Tags to add (kept once, at the end), after tags."
    )
    remove_tags: list[Name] | None = Field(
        default=None, description="Tags to remove, if present, after tags."
    )
    add_capabilities: list[Name] | None = Field(
        default=None, description="Capabilities to add, after capabilities."
    )
    remove_capabilities: list[Name] | None = Field(
        default=None, description="Capabilities to remove, if present, after capabilities."
    )
    join_channels: list[Name] | None = Field(
        default=None, description="Channels to join, after channels."
    )
    leave_channels: list[Name] | None = Field(
        default=None, description="Channels to leave, if joined, after channels."
    )
    approval: Approval | None = Field(
        default=None, description="The approval mode, changed in place (no new epoch)."
    )


class HeartbeatBody(Body):
    """An optional new status along with the heartbeat."""

    status: AgentStatus | None = None


# -- messages ----------------------------------------------------------------------


class Draft(Body):
    """One message of a batch: the fields of a send without the sender."""

    to: Target | None = Field(
        default=None,
        description="A target: an agent id, tag:NAME, cap:NAME, label:TEXT or broadcast; "
        "may be omitted with reply_to.",
    )
    body: Text
    subject: Subject | None = None
    channel: Name | None = None
    reply_to: MessageId | None = None
    priority: Priority = Priority.NORMAL
    meta: dict[str, Any] | None = Field(default=None, description=META)
    claimable: StrictBool = Field(
        default=False, description="Also create a task that exactly one recipient can claim."
    )


class Sender(Body):
    """Who sends: the first field of a send and of a batch."""

    sender: Name | None = Field(
        default=None, description="The sending agent; defaults to the agent token's agent."
    )


class SendBody(Draft, Sender):
    """A message to send."""

    model_config = examples(
        {"sender": "alice", "to": "bob", "body": "API v2 is merged"},
        {
            "sender": "bob",
            "to": "broadcast",
            "subject": "Review",
            "body": "PR 7",
            "claimable": True,
        },
    )


class BatchBody(Sender):
    """Messages from one sender, stored in one transaction: all or none."""

    model_config = examples(
        {
            "sender": "alice",
            "messages": [{"to": "bob", "body": "one"}, {"to": "bob", "body": "two"}],
        }
    )

    messages: list[Draft] = Field(min_length=1, max_length=MAX_BATCH)


# -- inboxes -----------------------------------------------------------------------


class MarkRead(Body):
    """Which deliveries to mark read: message ``ids``, or all up to the cursor ``up_to``."""

    model_config = examples({"up_to": 1}, {"ids": [1]})

    ids: list[MessageId] | None = Field(default=None, json_schema_extra={"maxItems": MAX_IDS})
    up_to: CursorId | None = None
    via: Via = Field(
        default=Via.INBOX, description="How the messages reached the agent, if still queued."
    )


class MarkDelivered(Body):
    """Messages that reached the agent's session, and by which path."""

    model_config = examples({"ids": [1, 2], "via": "pty"})

    ids: list[MessageId] = Field(min_length=1, json_schema_extra={"maxItems": MAX_IDS})
    via: Via


class Marked(Answer):
    """The result of a receipt: how many deliveries changed state."""

    marked: int = Field(
        description="How many deliveries changed (to read, or from queued to delivered)."
    )


class UnreadCount(Answer):
    """An unread count, which stops at ``limit``."""

    unread: int = Field(
        description="How many deliveries are unread, counted up to `limit`: "
        "a count equal to `limit` means that many or more."
    )
    limit: int = Field(default=UNREAD_COUNT_LIMIT, description="Where the count stops (1000).")


# -- tasks -------------------------------------------------------------------------


class LeaseBody(Body):
    """Who claims (or renews), and for how long."""

    model_config = examples({"agent_id": "bob", "lease": 600})

    agent_id: Name | None = Field(default=None, description=_AGENT)
    lease: Lease | None = Field(
        default=None, description="Lease seconds (default: the relay's lease_seconds)."
    )


class ReleaseBody(Body):
    """Who gives the task back."""

    model_config = examples({"agent_id": "bob"})

    agent_id: Name | None = Field(
        default=None,
        description=_AGENT + " With the admin token, omitted means the operator: it takes "
        "the lease from whoever holds the task.",
    )


class TaskUpdate(Body):
    """A report on a task; give at least one of status, progress, note, result."""

    model_config = examples(
        {"agent_id": "bob", "progress": 50, "note": "halfway"},
        {"agent_id": "bob", "status": "done", "result": "merged"},
    )

    agent_id: Name | None = Field(
        default=None,
        description="The agent reporting; with the admin token, omitted means the operator "
        "acting for the workspace.",
    )
    status: TaskStatus | None = Field(
        default=None,
        description="The new status (open and claimed are set by release and claim).",
        json_schema_extra={"not": {"enum": ["open", "claimed"]}},
    )
    progress: Percent | None = Field(default=None, description="Percent done, 0-100.")
    note: Text | None = None
    result: Text | None = None


class TaskCreate(Body):
    """A task to open, with the claimable message that offers it to ``target``."""

    model_config = examples(
        {"agent_id": "alice", "title": "Review PR 42", "target": "bob"},
        {
            "title": "Rotate the staging keys",
            "target": "bob",
            "body": "They expire on Friday.",
            "external_url": "https://tickets.example/OPS-7",
            "meta": {"ticket": "OPS-7"},
        },
    )

    agent_id: Name | None = Field(
        default=None,
        description="The agent opening it; defaults to the agent token's agent. With the "
        "admin token, omitted means the operator (the message comes from `relaybus`).",
    )
    title: Title
    target: Target = Field(description="Whom the task is offered to (a target expression).")
    body: Text | None = None
    channel: Name | None = None
    meta: dict[str, Any] | None = Field(default=None, description=META)
    external_url: ExternalUrl | None = None
    priority: Priority = Priority.NORMAL
    dedupe_key: DedupeKey | None = Field(
        default=None,
        description="At most one active task has this key (409 naming it otherwise).",
    )
    source: SourceName | None = None


# -- integrations ---------------------------------------------------------------------


class IntegrationBody(Body):
    """An integration to create."""

    model_config = examples(
        {
            "name": "alertmanager",
            "scopes": ["tasks:create", "tasks:read"],
            "targets": ["cap:ops"],
            "channels": ["alerts"],
            "callback_url": "https://ops.example/relaybus/callback",
        },
        {"name": "ci"},
    )

    name: IntegrationName
    scopes: list[Scope] | None = Field(
        default=None,
        description="What its token may do; default tasks:create and tasks:read.",
        json_schema_extra={"maxItems": 16},
    )
    targets: list[AllowedTarget] | None = Field(
        default=None,
        description="The target expressions it may address (* for any); an event without a "
        "target goes to the first.",
        json_schema_extra={"maxItems": 100},
    )
    channels: list[AllowedChannel] | None = Field(
        default=None,
        description="The channels it may post to (* for any); an event without one goes to "
        "the first.",
        json_schema_extra={"maxItems": 100},
    )
    callback_url: CallbackUrl | None = Field(
        default=None,
        description="Where each change of its tasks is posted, signed (http or https; "
        "link-local and cloud metadata hosts are refused).",
    )
    rate_limit: Annotated[int, Field(ge=1, le=1_000_000), NoBool] | None = Field(
        default=None, description="Events per minute; default the server's."
    )


class Rotation(Body):
    """What to replace: always the token; the signing secret too with ``secret``."""

    secret: StrictBool = False


class IntegrationEvent(Body):
    """An event from an external system: a new task, a repeat, or a resolution."""

    model_config = examples(
        {
            "source": "grafana",
            "title": "prod-api 5xx rate high",
            "body": "5xx rate is above 8% for 5 minutes",
            "target": "cap:ops",
            "channel": "alerts",
            "external_url": "https://grafana.example/d/prod-api",
            "metadata": {"service": "prod-api", "value": 0.084},
            "dedupe_key": "prod-api-5xx",
        },
        {"dedupe_key": "prod-api-5xx", "status": "resolved"},
    )

    integration: IntegrationName | None = Field(
        default=None,
        description="The integration posting (admin only: an integration token posts as "
        "itself); omitted with the admin token, the operator.",
    )
    source: SourceName | None = None
    title: Title | None = Field(default=None, description="Needed when it opens a task.")
    body: Text | None = None
    target: Target | None = Field(
        default=None, description="Whom to offer the task; default the integration's first."
    )
    channel: Name | None = None
    external_url: ExternalUrl | None = None
    metadata: dict[str, Any] | None = Field(default=None, description=META)
    priority: Priority = Priority.NORMAL
    dedupe_key: DedupeKey | None = Field(
        default=None,
        description="Names the problem: a repeat while its task is active raises the "
        "task's occurrence count instead of opening another.",
    )
    status: Literal["open", "resolved"] = Field(
        default="open", description="resolved closes the active task of dedupe_key."
    )


# -- the event log, the server, upkeep ------------------------------------------------


class EventCursor(Answer):
    """A position in the event log."""

    id: int = Field(description="The newest event id of the workspace (0 for none).")


class Health(Answer):
    """The process is up."""

    status: Literal["ok"]


class Ready(Answer):
    """The store can be read."""

    status: Literal["ready"]


class Info(Answer):
    """What this server is and how it is set up."""

    version: str
    backend: Literal["sqlite", "postgresql"]
    replica: str = Field(
        description="This server process (host:pid); in a cluster, which replica answered."
    )
    uptime_seconds: float = Field(description="Seconds since the server started.")
    workspace: str = Field(description="The workspace this request acts in.")
    auth: Literal["open", "token"] = Field(
        description="open: no admin token (loopback only, every request is admin); "
        "token: requests need a token."
    )
    agent: str | None = Field(description="The agent the token acts as; null for admin.")


class SweepReport(Answer):
    """What a sweep changed (counts)."""

    agents_offline: int
    tasks_released: int


class PruneBody(Body):
    """Retention for this prune (defaults: the relay's settings)."""

    message_days: Days | None = None
    agent_days: Days | None = None


# -- lists: JSON arrays of the shared models (rendered and parsed alike) ---------------

_LAZY = ConfigDict(defer_build=True)
AGENT_LIST = TypeAdapter(list[Agent], config=_LAZY)
MESSAGE_LIST = TypeAdapter(list[Message], config=_LAZY)
DELIVERY_LIST = TypeAdapter(list[Delivery], config=_LAZY)
TASK_LIST = TypeAdapter(list[Task], config=_LAZY)
TASK_EVENT_LIST = TypeAdapter(list[TaskEvent], config=_LAZY)
EVENT_LIST = TypeAdapter(list[Event], config=_LAZY)
INTEGRATION_LIST = TypeAdapter(list[Integration], config=_LAZY)
CALLBACK_LIST = TypeAdapter(list[CallbackDelivery], config=_LAZY)


def build_all() -> None:
    """Build every model and list now, and stop deferring: a server, which uses them
    all, calls this before it declares its routes. (An adapter over a model takes the
    model's ``defer_build``; FastAPI's adapters of request bodies, built later outside
    FastAPI's own warning filter, would warn that ``alias`` has no effect.)"""
    for value in list(globals().values()):
        if isinstance(value, type) and issubclass(value, BaseModel):
            if value.__module__ == __name__:
                value.model_config["defer_build"] = False
                value.model_rebuild()
        elif isinstance(value, TypeAdapter):
            value.rebuild()
