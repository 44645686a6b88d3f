"""The agent behind an MCP session: :class:`AgentSession`, and the one of ``relaybus mcp``.

An :class:`AgentSession` is what every tool acts through: the agent's
:class:`~relaybus.client.AgentHandle`, a way to wait for mail that never
blocks the event loop, and the inbox watcher that tells subscribed clients
about new mail (:mod:`.resources`).

Over stdio one process serves one session: :class:`StdioSession` registers
its agent on first use (a tool call, a resource read, a hook of the session)
or once the client has stayed connected for :data:`REGISTER_AFTER` seconds,
and heartbeats and renews the leases its agent holds from then on (a
:class:`~relaybus.client.leases.LeaseKeeper`: they lapse once the process is
gone); :mod:`.stdio` marks the agent offline when serving ends (stdin EOF,
SIGTERM). A client that only checks the connection (``claude mcp list``
starts the server, lists its tools and stops it within a second) therefore
leaves no agent behind. The relay server's sessions are in
:mod:`relaybus.server.mcp`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import KW_ONLY, dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.abc import TaskGroup
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession

from ..client import AgentHandle, Relay
from ..client.leases import LeaseKeeper
from ..errors import RelayError
from ..identity import SessionIdentity
from ..models import Message

if TYPE_CHECKING:
    from .resources import AgentBus

logger = logging.getLogger("relaybus.mcp")

T = TypeVar("T")

#: ``relaybus://inbox``: the unread messages of the session's agent.
INBOX_URI = "relaybus://inbox"
#: Longest single blocking wait in a thread (seconds): a cancelled wait leaves
#: its thread running for at most this long.
WAIT_CHUNK = 10.0
#: Seconds between the inbox watcher's waits when nothing arrives.
WATCH_SECONDS = 30.0
#: Seconds of clock difference tolerated between the relay and this process when
#: deciding whether mail is newer than a subscription.
CLOCK_SLACK = 1.0
#: Pause after a failed watch before trying again (seconds).
RETRY_SECONDS = 5.0
#: Longest time the shutdown may spend marking an agent offline (seconds).
OFFLINE_SECONDS = 5.0
#: Seconds a stdio client stays connected before its agent is registered
#: unasked: longer than a connection check (``claude mcp list``) lasts.
REGISTER_AFTER = 3.0

#: ``waiter(handle, since, timeout)``: unread mail of ``handle`` above the message id
#: ``since``, oldest first, waiting up to ``timeout`` seconds; empty on timeout.
#: Never marks anything read. Cancellable.
Waiter = Callable[[AgentHandle, int, float], Awaitable[list[Message]]]

#: ``host(agent, identity)``: a service that runs beside a stdio session while
#: it is served (an async context manager). ``agent()`` returns the session's
#: agent, registering it on first use. ``relaybus mcp`` passes the Claude Code
#: hook host (:func:`relaybus.tools.hooks.host.session_host`); composed in
#: :mod:`relaybus.cli.mcp`, so that this package never imports the tools.
SessionHost = Callable[
    [Callable[[], Awaitable[AgentHandle]], SessionIdentity], AbstractAsyncContextManager[object]
]


async def blocking(fn: Callable[[], T]) -> T:
    """Run a blocking SDK call in a worker thread (the SDK is synchronous)."""
    return await anyio.to_thread.run_sync(fn)


async def in_daemon_thread(fn: Callable[[], T], limiter: anyio.CapacityLimiter) -> T:
    """Run ``fn`` in a new daemon thread (at most ``limiter`` at once) and return
    its result or raise its exception.

    Cancelling abandons the thread. Unlike the event loop's worker threads, an
    abandoned daemon thread does not hold up the process's exit.
    """
    async with limiter:
        token = anyio.lowlevel.current_token()
        done = anyio.Event()
        results: list[T] = []
        errors: list[Exception] = []

        def target() -> None:
            try:
                results.append(fn())
            except Exception as exc:  # handed to the waiting task
                errors.append(exc)
            with contextlib.suppress(RuntimeError):  # the event loop is gone
                anyio.from_thread.run_sync(done.set, token=token)

        threading.Thread(target=target, name="relaybus-mcp-wait", daemon=True).start()
        await done.wait()
    if errors:
        raise errors[0]
    return results[0]


def thread_waiter(limiter: anyio.CapacityLimiter) -> Waiter:
    """A :data:`Waiter` over :meth:`AgentHandle.wait` in daemon threads.

    Waits in chunks of at most :data:`WAIT_CHUNK` seconds; a cancelled wait
    abandons its thread (it peeks, so an abandoned wait loses nothing). Works
    embedded (the store's wake-ups) and against a server (long-polls).
    """

    async def wait(handle: AgentHandle, since: int, timeout: float) -> list[Message]:
        deadline = anyio.current_time() + max(timeout, 0.0)
        while True:
            remaining = deadline - anyio.current_time()
            chunk = min(max(remaining, 0.0), WAIT_CHUNK)
            found = await in_daemon_thread(partial(handle.wait, chunk, since=since), limiter)
            if found or remaining <= WAIT_CHUNK:
                return found

    return wait


def describe(relay: Relay) -> str:
    """Where ``relay`` is, for people: ``relay server URL`` or the database."""
    url = relay.url
    if isinstance(url, str):
        return f"the relay server {url}"
    store = relay.store
    if store.path is not None:
        return f"the embedded relay {store.path}"
    return f"the relay database {store.url.render_as_string(hide_password=True)}"


@dataclass(eq=False)
class AgentSession:
    """One agent served over MCP.

    Args:
        handle: the agent (registered already).
        waiter: how to wait for mail (:func:`thread_waiter`, or the server's hub).
        bus: the MCP server's subscription bus (``subscriptions/listen`` streams).
        tasks: where the inbox watcher runs (the runtime's task group).
        where: the relay, for ``whoami``.
        identity: the coding-agent session's identity (``relaybus mcp`` only).
        on_published: called in the worker thread with the messages a send
            stored (the server fans them out at once); default: nothing.
    """

    handle: AgentHandle
    _: KW_ONLY
    waiter: Waiter
    bus: AgentBus
    tasks: TaskGroup
    where: str
    identity: SessionIdentity | None = None
    on_published: Callable[[Sequence[Message]], None] | None = None
    _legacy: ServerSession | None = field(default=None, init=False)
    _listeners: int = field(default=0, init=False)
    _watch_scope: anyio.CancelScope | None = field(default=None, init=False)

    @property
    def id(self) -> str:
        """The agent id."""
        return self.handle.id

    def published(self, sent: Sequence[Message]) -> None:
        """Hand the messages a send stored to the server (call in the worker thread)."""
        if self.on_published is not None:
            self.on_published(sent)

    async def wait_unread(self, timeout: float, *, since: int = 0) -> list[Message]:
        """Unread mail above ``since``, oldest first, waiting up to ``timeout``
        seconds for some to arrive; empty on timeout. Marks nothing read.

        Raises:
            RelayError: the relay refused (e.g. the agent was unregistered).
        """
        return await self.waiter(self.handle, since, timeout)

    # -- inbox subscriptions ---------------------------------------------------

    def subscribe(self, session: ServerSession) -> None:
        """``resources/subscribe`` to the inbox: notify ``session`` of new mail."""
        self._legacy = session
        self._refresh()

    def unsubscribe(self) -> None:
        """``resources/unsubscribe``: stop notifying the subscribed session."""
        self._legacy = None
        self._refresh()

    def listening(self, change: int) -> None:
        """A ``subscriptions/listen`` stream of this agent opened (+1) or ended (-1)."""
        self._listeners = max(self._listeners + change, 0)
        self._refresh()

    def close(self) -> None:
        """Stop watching the inbox (the session ended)."""
        self._legacy = None
        self._listeners = 0
        self._refresh()

    def _refresh(self) -> None:
        wanted = self._legacy is not None or self._listeners > 0
        if wanted and self._watch_scope is None:
            self._watch_scope = anyio.CancelScope()
            self.tasks.start_soon(self._watch, self._watch_scope, time.time())
        elif not wanted and self._watch_scope is not None:
            self._watch_scope.cancel()
            self._watch_scope = None

    async def _watch(self, scope: anyio.CancelScope, opened: float) -> None:
        with scope:
            cursor = 0
            try:
                newest = await blocking(lambda: self.handle.inbox(limit=1))
                cursor = newest[0].id if newest else 0
                # Mail that landed between the subscription (``opened``) and this
                # first look is news too; a spurious update near it costs a re-read.
                if newest and newest[0].created_at.timestamp() >= opened - CLOCK_SLACK:
                    await self._notify()
            except RelayError as exc:
                logger.warning("watching the inbox of %s: %s", self.id, exc)
            while True:
                started = anyio.current_time()
                try:
                    found = await self.wait_unread(WATCH_SECONDS, since=cursor)
                except RelayError as exc:
                    logger.warning("watching the inbox of %s: %s", self.id, exc)
                    await anyio.sleep(RETRY_SECONDS)
                    continue
                if found:
                    cursor = max(m.id for m in found)
                    await self._notify()
                elif anyio.current_time() - started < WATCH_SECONDS / 2:
                    await anyio.sleep(RETRY_SECONDS)  # the waiter gave up early: shutting down

    async def _notify(self) -> None:
        from .resources import inbox_updated

        self.bus.publish_to(self, inbox_updated())
        legacy = self._legacy
        if legacy is not None:
            try:
                await legacy.send_resource_updated(INBOX_URI)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._legacy = None  # the client is gone


class Runtime(Protocol):
    """What the MCP server's lifespan yields: the agent of each request.

    A runtime may also have ``async def connected(request)``, called when the
    client has sent ``notifications/initialized``; without it the agent is
    resolved (registered) then.
    """

    async def agent(self, request: ServerRequestContext[Any, Any]) -> AgentSession:
        """The agent this request acts as (registering it on first use).

        Raises:
            RelayError: it cannot be registered or the caller may not act as it.
        """
        ...


@dataclass(eq=False)
class StdioSession:
    """The agent of ``relaybus mcp``: one per process, for the whole stdio session.

    :meth:`lifespan` is the MCP server's. The agent is registered (with
    ``register``, in a worker thread) on the first request that acts as it,
    on the first hook of the session, or :data:`REGISTER_AFTER` seconds after
    the client said it is initialized (:meth:`connected`), whichever comes
    first; from then on it heartbeats (every ``heartbeat_seconds``) and renews
    the leases its agent holds (:attr:`keeper`), whoever claimed them (a tool
    call, the session's ``relaybus claim``, its hooks). The
    caller marks it offline after serving (:func:`mark_offline` on
    :attr:`handle`, if set), so that a stop signal at any moment still ends
    with the agent offline. ``host``, if given, runs for the lifespan's
    duration (see :data:`SessionHost`).

    Attributes:
        handle: the registered agent, None until it is registered.
        identity: the coding-agent session it belongs to (agent id, session
            key, the tool's pid, profile).
    """

    relay: Relay
    identity: SessionIdentity
    register: Callable[[], AgentHandle]
    _: KW_ONLY
    bus: AgentBus
    heartbeat_seconds: float
    register_after: float = REGISTER_AFTER
    host: SessionHost | None = None
    handle: AgentHandle | None = field(default=None, init=False)
    session: AgentSession | None = field(default=None, init=False)
    _lock: anyio.Lock = field(default_factory=anyio.Lock, init=False)
    _tasks: TaskGroup | None = field(default=None, init=False)
    #: Bounds the concurrent waits of this session.
    _limiter: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(16), init=False
    )
    _timer: bool = field(default=False, init=False)
    #: Renews the agent's leases while the session is served (once registered).
    keeper: LeaseKeeper | None = field(default=None, init=False)

    async def agent(self, request: ServerRequestContext[Any, Any] | None = None) -> AgentSession:
        """The session's agent, whatever the request; registered on first use.

        Raises:
            RelayError: the registration failed (the next request tries again).
        """
        assert self._tasks is not None, "used outside the server's lifespan"
        async with self._lock:
            if self.session is None:
                handle = await blocking(self._registered)
                self.session = AgentSession(
                    handle,
                    waiter=thread_waiter(self._limiter),
                    bus=self.bus,
                    tasks=self._tasks,
                    where=describe(self.relay),
                    identity=self.identity,
                )
                self._tasks.start_soon(self._heartbeat, handle)
                self.keeper = LeaseKeeper(handle)
                self.keeper.start()
        return self.session

    def _registered(self) -> AgentHandle:
        # In the worker thread: the handle is kept even if the waiting task is
        # cancelled meanwhile, so that the way out still marks it offline.
        self.handle = self.register()
        return self.handle

    async def connected(self, request: ServerRequestContext[Any, Any]) -> None:
        """The client said it is initialized: register after :attr:`register_after`
        seconds unless something needs the agent sooner."""
        if self._tasks is not None and not self._timer:
            self._timer = True
            self._tasks.start_soon(self._register_later)

    async def _register_later(self) -> None:
        await anyio.sleep(self.register_after)
        try:
            await self.agent()
        except RelayError as exc:
            logger.warning("could not register %s: %s", self.identity.agent_id, exc)

    async def _hook_agent(self) -> AgentHandle:
        return (await self.agent()).handle

    @asynccontextmanager
    async def lifespan(self, _server: object) -> AsyncIterator[StdioSession]:
        """Serve the agent for the duration of the block."""
        async with anyio.create_task_group() as tg:
            self._tasks = tg
            try:
                # E.g. the session's hook commands (Claude Code) ask this process
                # over a Unix socket: it has the relay open, so each hook takes ms.
                host = self.host
                async with (
                    host(self._hook_agent, self.identity) if host is not None else nullcontext()
                ):
                    yield self
            finally:
                if self.keeper is not None:
                    self.keeper.stop()
                if self.session is not None:
                    self.session.close()
                tg.cancel_scope.cancel()

    async def _heartbeat(self, handle: AgentHandle) -> None:
        while True:
            await anyio.sleep(self.heartbeat_seconds)
            try:
                await blocking(handle.heartbeat)
            except RelayError as exc:
                logger.warning("heartbeat of %s failed: %s", handle.id, exc)


def mark_offline(handle: AgentHandle) -> None:
    """Set the agent's status to offline (it also gives back the tasks it holds);
    a refusal (fenced off, unregistered, relay gone) is logged, not raised."""
    try:
        handle.update(status="offline")
    except RelayError as exc:
        logger.warning("could not mark %s offline: %s", handle.id, exc)
