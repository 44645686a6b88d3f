"""A property of the whole server: what an agent token can read equals the visibility rule.

Hypothesis draws a team (tags, capabilities, channels) and a run of sends:
direct, ``tag:``, ``cap:``, ``broadcast``, narrowed to a channel or not, and
replies (with or without ``to``) to earlier messages, to messages the sender
cannot see, or to ids that do not exist; any send may be claimable (it opens
a task) and its task may be claimed by one of its recipients. The test keeps
its own model of who sent what to whom, worked out from the targets and
channels alone (never by asking the relay's rule), and then checks, for every
agent, through every path an agent token has: a message by id, its thread,
its receipts, the inbox (peek, unread, long-poll), the task list, a task by
id, its history, claims it must refuse (404 for a task it may not see, like a
missing one; 403 for its own; 409 for one another recipient holds), the event
log (``message.*`` and ``task.*``), the SSE stream, the WebSocket, and MCP
over HTTP (the inbox resource, ``wait_for_message``, ``inbox``, the ``task``
list, a refused ``send`` and ``claim``), plus the embedded SDK acting as the
agent.

One server per dialect serves every example; each example has its own
workspace, so examples cannot see each other (which is checked too).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from mcp_types import TextResourceContents
from websockets.sync.client import connect

from relaybus.client import Relay
from relaybus.errors import NotFound
from tests.mcp.conftest import call, fail, http_session, run
from tests.server.conftest import HUNG, bearer, problem
from tests.support.live import UNUSED_TLS, LiveServer, live_server

ADMIN = "visibility-admin"
NAMES = ("a0", "a1", "a2", "a3")
TAGS = ("t1", "t2")
CAPS = ("c1",)
CHANNELS = ("ch1", "ch2")
#: An id no message will have in these tests.
MISSING = 10**12
#: Registered after the sends: its event is visible to everyone, so a stream read up
#: to it has replayed everything before it.
SENTINEL = "zz-end"
_workspaces = itertools.count(1)


@dataclass(frozen=True)
class Member:
    """An agent of the drawn team."""

    name: str
    tags: frozenset[str]
    caps: frozenset[str]
    channels: frozenset[str]  # empty: hears every channel


@dataclass(frozen=True)
class Send:
    """One drawn send. ``reply`` picks an earlier message (by position among those
    stored so far, modulo their number), or is ``"missing"``; ``to`` is None for a
    reply that goes to the parent's sender by default."""

    sender: int
    to: str | None
    channel: str | None
    reply: int | str | None
    claimable: bool = False
    claim: bool = False  # a recipient claims its task at once


@dataclass
class Stored:
    """A message as the model knows it."""

    id: int
    sender: str
    target: str
    recipients: frozenset[str]
    thread: int
    task: int | None = None
    assignee: str | None = None


@dataclass
class Model:
    """Who sent what to whom, kept by the test alone."""

    team: list[Member]
    messages: list[Stored] = field(default_factory=list)

    def reached(self, target: str, channel: str | None, sender: str) -> frozenset[str]:
        """The agents a target reaches: matched, hearing the channel, not the sender."""
        kind, _, value = target.partition(":")
        found = []
        for m in self.team:
            if target == "broadcast":
                match = True
            elif kind == "tag":
                match = value in m.tags
            elif kind == "cap":
                match = value in m.caps
            else:
                match = m.name == target
            hears = channel is None or not m.channels or channel in m.channels
            if match and hears and m.name != sender:
                found.append(m.name)
        return frozenset(found)

    def visible(self, agent: str) -> list[Stored]:
        return [m for m in self.messages if m.sender == agent or agent in m.recipients]

    def received(self, agent: str) -> list[int]:
        return [m.id for m in self.messages if agent in m.recipients]

    def thread(self, agent: str, message: Stored) -> list[int]:
        return [m.id for m in self.visible(agent) if m.thread == message.thread]

    def tasks(self) -> list[Stored]:
        """The messages that opened a task."""
        return [m for m in self.messages if m.task is not None]

    def visible_tasks(self, agent: str) -> list[int]:
        """A task is seen by whoever may see its message (and its holder, always a
        recipient here); newest first, as listed."""
        seen = [m.task for m in self.visible(agent) if m.task is not None]
        return sorted(seen, reverse=True)


@st.composite
def members(draw: st.DrawFn) -> list[Member]:
    count = draw(st.integers(2, len(NAMES)))
    subsets = st.frozensets
    return [
        Member(
            name,
            draw(subsets(st.sampled_from(TAGS))),
            draw(subsets(st.sampled_from(CAPS))),
            draw(subsets(st.sampled_from(CHANNELS))),
        )
        for name in NAMES[:count]
    ]


targets = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from([f"tag:{t}" for t in TAGS]),
    st.sampled_from([f"cap:{c}" for c in CAPS]),
    st.just("broadcast"),
)
sends = st.builds(
    Send,
    sender=st.integers(0, len(NAMES) - 1),
    to=targets,
    channel=st.none() | st.sampled_from(CHANNELS),
    reply=st.none() | st.integers(0, 20) | st.just("missing"),
    claimable=st.booleans(),
    claim=st.booleans(),
)
replies_without_to = st.builds(
    Send,
    sender=st.integers(0, len(NAMES) - 1),
    to=st.none(),
    channel=st.none(),
    reply=st.integers(0, 20) | st.just("missing"),
    claimable=st.booleans(),
    claim=st.booleans(),
)


class World:
    """One example: a workspace on the shared server, its agents' tokens, the model."""

    def __init__(self, srv: LiveServer, team: list[Member]) -> None:
        self.srv = srv
        self.workspace = f"vis{next(_workspaces)}"
        self.model = Model(team)
        self.admin = httpx.Client(
            base_url=srv.url,
            timeout=HUNG,
            headers={**bearer(ADMIN), "X-Relaybus-Workspace": self.workspace},
            verify=UNUSED_TLS,
        )
        self.tokens: dict[str, str] = {}
        self.clients: dict[str, httpx.Client] = {}
        for m in team:
            reply = self.admin.post(
                "/v1/agents",
                json={
                    "id": m.name,
                    "tags": sorted(m.tags),
                    "capabilities": sorted(m.caps),
                    "channels": sorted(m.channels),
                },
            )
            assert reply.status_code == 201, reply.text
            self.tokens[m.name] = reply.json()["token"]
            self.clients[m.name] = httpx.Client(
                base_url=srv.url,
                timeout=HUNG,
                headers=bearer(self.tokens[m.name]),
                verify=UNUSED_TLS,
            )

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.admin.close()

    def send(self, send: Send) -> None:
        """Send as drawn and check the answer against the model."""
        model = self.model
        sender = model.team[send.sender % len(model.team)].name
        parent: Stored | None = None
        reply_to: int | None = None
        if send.reply == "missing":
            reply_to = MISSING
        elif isinstance(send.reply, int):
            if not model.messages:
                return
            parent = model.messages[send.reply % len(model.messages)]
            reply_to = parent.id
        body: dict[str, Any] = {"to": send.to, "body": f"body {len(model.messages)}"}
        body.update(subject="s", channel=send.channel, reply_to=reply_to)
        if send.claimable:
            body["claimable"] = True
        reply = self.clients[sender].post(
            "/v1/messages", json={k: v for k, v in body.items() if v is not None}
        )
        if reply_to is not None and (
            parent is None or (sender != parent.sender and sender not in parent.recipients)
        ):
            refused = problem(reply, 404)
            assert refused["detail"] == f"no message {reply_to} to reply to"
            return
        target = send.to
        if target is None:
            assert parent is not None
            target = parent.sender if parent.sender != sender else parent.target
        recipients = model.reached(target, send.channel, sender)
        if not recipients:
            problem(reply, 404)  # a target that reaches nobody
            return
        assert reply.status_code == 201, reply.text
        stored = reply.json()
        assert frozenset(stored["recipients"]) == recipients
        thread = parent.thread if parent is not None else stored["id"]
        assert stored["thread_id"] == thread
        task = stored["task_id"]
        assert (task is not None) == send.claimable
        kept = Stored(stored["id"], sender, target, recipients, thread, task)
        model.messages.append(kept)
        if task is not None and send.claim:
            claimer = sorted(recipients)[0]
            claimed = self.clients[claimer].post(f"/v1/tasks/{task}/claim", json={})
            assert claimed.status_code == 200, claimed.text
            assert claimed.json()["assignee"] == claimer
            kept.assignee = claimer


def ids_of(found: list[dict[str, Any]]) -> list[int]:
    return [m["id"] for m in found]


def check_http(world: World, agent: str, foreign: int | None, foreign_task: int | None) -> None:
    """Message, thread and receipts of every id; inbox; tasks; the event log."""
    model, client = world.model, world.clients[agent]
    visible = {m.id: m for m in model.visible(agent)}
    probes = [*(m.id for m in model.messages), MISSING]
    if foreign is not None:
        probes.append(foreign)  # a message of another example's workspace
    for message_id in probes:
        for path in ("", "/thread", "/deliveries"):
            reply = client.get(f"/v1/messages/{message_id}{path}")
            if message_id not in visible:
                assert problem(reply, 404)["detail"] == f"no message {message_id}", path
                continue
            assert reply.status_code == 200, reply.text
            message = visible[message_id]
            if path == "":
                assert reply.json()["id"] == message_id
                assert frozenset(reply.json()["recipients"]) == message.recipients
            elif path == "/thread":
                assert ids_of(reply.json()) == model.thread(agent, message)
            else:
                assert frozenset(d["agent_id"] for d in reply.json()) == message.recipients
    received = model.received(agent)
    inbox = f"/v1/agents/{agent}/inbox"
    peek = client.get(inbox, params={"unread_only": False, "limit": 1000})
    assert sorted(ids_of(peek.json())) == received
    unread = client.get(inbox, params={"newest_first": False, "limit": 1000})
    assert ids_of(unread.json()) == received
    # With mail waiting a long-poll answers at once; with none it answers [] after its wait.
    wait = HUNG if received else 0.01
    polled = client.get(inbox, params={"wait": wait, "since": 0, "limit": 1000})
    assert ids_of(polled.json()) == received
    check_tasks(world, agent, foreign_task)
    events = client.get("/v1/events", params={"since": 0, "limit": 1000}).json()
    check_events(world, agent, events)
    only_sent = client.get("/v1/events", params={"kind": "message.sent", "limit": 1000}).json()
    assert [e["data"]["message_id"] for e in only_sent] == sorted(visible)


def check_tasks(world: World, agent: str, foreign: int | None) -> None:
    """The task list, each task by id and its history, and the claims the relay must
    refuse: a task the agent may not see is 404 exactly like a missing id, its
    own task is 403 (only recipients claim), one another recipient holds is 409
    naming the holder. (A refused claim that took the task anyway would show in
    the holder every later check expects.)"""
    model, client = world.model, world.clients[agent]
    visible = model.visible_tasks(agent)
    listed = client.get("/v1/tasks", params={"limit": 1000})
    assert ids_of(listed.json()) == visible
    probes: list[tuple[int, Stored | None]] = [(m.task, m) for m in model.tasks() if m.task]
    probes.append((MISSING, None))
    if foreign is not None:
        probes.append((foreign, None))  # a task of another example's workspace
    for task_id, message in probes:
        for path in ("", "/history"):
            reply = client.get(f"/v1/tasks/{task_id}{path}")
            if task_id not in visible:
                assert problem(reply, 404)["detail"] == f"no task {task_id}", path
                continue
            assert reply.status_code == 200, reply.text
            if path == "":
                assert reply.json()["message_id"] == (message.id if message else None)
                assert reply.json()["assignee"] == (message.assignee if message else None)
        claim = f"/v1/tasks/{task_id}/claim"
        if task_id not in visible:
            assert problem(client.post(claim, json={}), 404)["detail"] == f"no task {task_id}"
        elif message is not None and message.sender == agent:
            problem(client.post(claim, json={}), 403)
        elif message is not None and message.assignee not in (None, agent):
            refused = problem(client.post(claim, json={}), 409)
            assert refused["holder"] == message.assignee


def check_events(world: World, agent: str, events: list[dict[str, Any]]) -> None:
    """The message and task events among ``events`` are exactly those of ``agent``'s view."""
    visible = sorted(m.id for m in world.model.visible(agent))
    sent = [e for e in events if e["kind"] == "message.sent"]
    assert [e["data"]["message_id"] for e in sent] == visible
    tasks = {e["data"]["task_id"] for e in events if e["kind"].startswith("task.")}
    assert tasks == set(world.model.visible_tasks(agent))
    for event in events:
        assert event["workspace"] == world.workspace
        if event["kind"] in ("message.read", "message.delivered"):
            assert event["agent_id"] == agent
        assert event["kind"].startswith(("message.", "agent.", "task.")), event


def check_stream(world: World, agent: str) -> None:
    """SSE from the start of the log, up to the sentinel's registration."""
    token = world.tokens[agent]
    events: list[dict[str, Any]] = []
    with (
        httpx.Client(timeout=HUNG, verify=UNUSED_TLS) as client,
        connect_sse(
            client, "GET", f"{world.srv.url}/v1/stream", params={"since": 0}, headers=bearer(token)
        ) as source,
    ):
        assert source.response.status_code == 200
        for sse in source.iter_sse():
            if sse.event == "ready":
                continue
            event = json.loads(sse.data)
            if event["kind"] == "agent.registered" and event["agent_id"] == SENTINEL:
                break
            events.append(event)
    check_events(world, agent, events)
    check_pushed_messages(world, agent, events)


def check_ws(world: World, agent: str) -> None:
    """The WebSocket from the start of the log, up to the sentinel's registration; a
    reply to each hidden message sent over the socket is refused like a missing one."""
    events: list[dict[str, Any]] = []
    url = f"{world.srv.ws_url}/v1/ws?since=0"
    headers = bearer(world.tokens[agent])
    with connect(url, additional_headers=headers, open_timeout=HUNG) as ws:
        assert json.loads(ws.recv(timeout=HUNG))["type"] == "ready"
        while True:
            frame = json.loads(ws.recv(timeout=HUNG))
            event = frame["event"]
            if event["kind"] == "agent.registered" and event["agent_id"] == SENTINEL:
                break
            events.append(event)
        for hidden in [*hidden_ids(world, agent)[:2], MISSING]:
            ws.send(json.dumps({"type": "send", "reply_to": hidden, "body": "?", "ref": hidden}))
            frame = json.loads(ws.recv(timeout=HUNG))
            while frame["type"] == "event":  # later events (presence) may come first
                frame = json.loads(ws.recv(timeout=HUNG))
            assert frame["type"] == "error" and frame["status"] == 404, frame
            assert frame["detail"] == f"no message {hidden} to reply to"
    check_events(world, agent, events)
    check_pushed_messages(world, agent, events)


def check_pushed_messages(world: World, agent: str, events: list[dict[str, Any]]) -> None:
    visible = {m.id: m for m in world.model.visible(agent)}
    for event in events:
        if event["kind"] == "message.sent":
            message = event["data"]["message"]
            # The frame carries the recipients once, as the event's own data.
            assert "recipients" not in message
            recipients = frozenset(event["data"]["recipients"])
            assert recipients == visible[message["id"]].recipients


def hidden_ids(world: World, agent: str) -> list[int]:
    visible = {m.id for m in world.model.visible(agent)}
    return [m.id for m in world.model.messages if m.id not in visible]


HEADER = re.compile(r"^#(\d+) from ", re.MULTILINE)
TASK_LINE = re.compile(r"^task #(\d+) \[", re.MULTILINE)


def check_mcp(world: World, agent: str) -> None:
    """MCP over HTTP with the agent's token: the inbox resource (a peek), then
    ``wait_for_message`` and ``inbox`` (which mark read), and a refused reply."""
    model = world.model
    received = model.received(agent)
    hidden = hidden_ids(world, agent)[:2]
    visible_tasks = set(model.visible_tasks(agent))
    hidden_tasks = [m.task for m in model.tasks() if m.task not in visible_tasks][:2]
    # The tool lists the open tasks offered to the agent, then those it holds.
    offered = sorted(
        m.task
        for m in model.tasks()
        if m.task is not None
        and ((agent in m.recipients and m.assignee is None) or m.assignee == agent)
    )

    async def scenario() -> None:
        headers = bearer(world.tokens[agent])
        async with http_session(world.srv.url, headers=headers) as client:
            result = await client.read_resource("relaybus://inbox")
            [contents] = result.contents
            assert isinstance(contents, TextResourceContents)
            assert [int(i) for i in HEADER.findall(contents.text)] == received
            if received:
                text = await call(client, "wait_for_message", timeout=int(HUNG))
                assert [int(i) for i in HEADER.findall(text)] == received
            assert await call(client, "inbox", limit=100) == "No new messages."
            missing = await fail(client, "send", reply_to=MISSING, body="?")
            assert missing.endswith(f"no message {MISSING} to reply to")
            for message_id in hidden:
                refused = await fail(client, "send", reply_to=message_id, body="?")
                assert refused == missing.replace(str(MISSING), str(message_id))
            listed = await call(client, "task", action="list")
            assert sorted(int(i) for i in TASK_LINE.findall(listed)) == offered
            absent = await fail(client, "task", action="claim", task_id=MISSING)
            assert absent.endswith(f"no task {MISSING}")
            for task_id in hidden_tasks:
                refused = await fail(client, "task", action="claim", task_id=task_id)
                assert refused == absent.replace(str(MISSING), str(task_id))

    run(scenario)


def check_embedded(world: World, agent: str) -> None:
    """The embedded SDK acting as the agent on the server's own store."""
    service = world.srv.service
    relay = Relay.embedded(service, workspace=world.workspace)
    handle = relay.agent(agent)
    for message_id in [*hidden_ids(world, agent), MISSING]:
        with pytest.raises(NotFound, match=f"^no message {message_id} to reply to$"):
            handle.reply(message_id, "?")
        with pytest.raises(NotFound, match=f"^no message {message_id}$"):
            service.thread(message_id, workspace=world.workspace, viewer=agent)
    for message in world.model.visible(agent):
        found = service.thread(message.id, workspace=world.workspace, viewer=agent)
        assert [m.id for m in found] == world.model.thread(agent, message)
    assert sorted(m.id for m in handle.inbox(unread_only=False, limit=1000)) == (
        world.model.received(agent)
    )
    visible_tasks = world.model.visible_tasks(agent)
    assert [t.id for t in handle.tasks(limit=1000)] == visible_tasks
    for message in world.model.tasks():
        assert message.task is not None
        if message.task in visible_tasks:
            assert handle.task(message.task).message_id == message.id
            continue
        with pytest.raises(NotFound, match=f"^no task {message.task}$"):
            handle.task(message.task)
        with pytest.raises(NotFound, match=f"^no task {message.task}$"):
            handle.claim(message.task)


@pytest.fixture
def shared(tmp_path: Path, database: str | None) -> Iterator[LiveServer]:
    with live_server(tmp_path, admin_token=ADMIN, database=database) as srv:
        yield srv


@pytest.mark.slow
def test_every_read_path_of_an_agent_token_shows_exactly_what_the_rule_allows(
    shared: LiveServer,
) -> None:
    previous: list[int] = []  # a message of an earlier example's workspace
    previous_tasks: list[int] = []  # a task of an earlier example's workspace

    @settings(
        max_examples=10,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        # Examples are small already (at most 4 agents, 8 sends) and each costs a
        # few hundred requests: a failure is reported as drawn, not shrunk for minutes.
        phases=[Phase.explicit, Phase.generate],
    )
    @given(
        team=members(),
        drawn=st.lists(st.one_of(sends, sends, replies_without_to), min_size=1, max_size=8),
    )
    def check(team: list[Member], drawn: list[Send]) -> None:
        world = World(shared, team)
        try:
            for send in drawn:
                world.send(send)
            world.admin.post("/v1/agents", json={"id": SENTINEL}).raise_for_status()
            foreign = previous[-1] if previous else None
            foreign_task = previous_tasks[-1] if previous_tasks else None
            for member in team:
                check_http(world, member.name, foreign, foreign_task)
                check_stream(world, member.name)
                check_ws(world, member.name)
                check_embedded(world, member.name)
                check_mcp(world, member.name)
                # The MCP session's end took the agent offline: it gave its tasks back.
                for message in world.model.tasks():
                    if message.assignee == member.name:
                        message.assignee = None
            if world.model.messages:
                previous.append(world.model.messages[-1].id)
            previous_tasks.extend(m.task for m in world.model.tasks() if m.task is not None)
        finally:
            world.close()

    check()
