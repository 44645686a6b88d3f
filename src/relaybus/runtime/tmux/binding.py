"""Which tmux pane an agent lives in: ``meta["tmux"]`` of the agent.

``relaybus tmux attach`` records the pane there when it registers the agent;
``relaybus tmux look`` (or anyone with the relay) finds the pane again from the
agent's id alone, from any shell, because the record holds the server's socket
path and the stable pane id, never a position like ``work:0.1`` that changes
when windows move.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...client import AgentHandle, Relay
from ...errors import Conflict, InvalidInput
from ...models import Agent, AgentStatus
from .server import NoServer, Pane, PaneNotFound, TmuxServer, trim

#: The key of the binding in the agent's meta.
META_KEY = "tmux"


@dataclass(frozen=True)
class Binding:
    """An agent's pane: ``pane`` (``%3``) on the server at ``socket`` (a path);
    ``target`` is the human address it had when bound (``work:0.1``)."""

    pane: str
    socket: str
    target: str = ""

    @classmethod
    def of_pane(cls, pane: Pane) -> Binding:
        """The binding of a resolved pane."""
        return cls(pane=pane.id, socket=pane.socket, target=pane.target)

    @classmethod
    def of_agent(cls, agent: Agent) -> Binding:
        """The pane ``agent`` was bound to.

        Raises:
            InvalidInput: the agent has no (well-formed) tmux binding.
        """
        record = agent.meta.get(META_KEY)
        if not isinstance(record, Mapping):
            raise InvalidInput(
                f"agent {agent.id} is not bound to a tmux pane "
                f"(bind one with: relaybus tmux attach PANE --name {agent.id})",
                agent=agent.id,
            )
        pane, socket = record.get("pane"), record.get("socket")
        if not (isinstance(pane, str) and pane.startswith("%") and isinstance(socket, str)):
            raise InvalidInput(
                f"agent {agent.id} has a malformed tmux binding in its meta: {dict(record)!r}",
                agent=agent.id,
            )
        target = record.get("target")
        return cls(pane=pane, socket=socket, target=target if isinstance(target, str) else "")

    def meta(self) -> dict[str, Any]:
        """The binding as stored in ``meta["tmux"]``."""
        return {"pane": self.pane, "socket": self.socket, "target": self.target}

    def server(self) -> TmuxServer:
        """The tmux server the pane is on.

        Raises:
            TmuxError: tmux is not installed.
        """
        return TmuxServer.choose(socket_path=self.socket)


def look(agent: Agent, lines: int | None = None) -> list[str]:
    """The recent screen of ``agent``'s pane: the visible screen without its blank
    bottom, or with ``lines`` the last ``lines`` lines of scrollback and screen.

    Raises:
        InvalidInput: the agent is not bound to a pane, or ``lines`` < 1.
        PaneNotFound: the pane (or its server) is gone.
        TmuxError: tmux is missing or failed.
    """
    if lines is not None and lines < 1:
        raise InvalidInput(f"--lines must be at least 1, not {lines}", option="--lines")
    binding = Binding.of_agent(agent)
    server = binding.server()
    try:
        screen = server.capture(binding.pane, history=lines or 0)
    except (PaneNotFound, NoServer) as exc:
        raise PaneNotFound(
            f"the tmux pane {binding.pane} of agent {agent.id} is gone ({exc.message})",
            agent=agent.id,
            pane=binding.pane,
        ) from None
    return trim(screen)[-lines:] if lines else screen


def holder(agents: Iterable[Agent], binding: Binding, *, besides: str) -> Agent | None:
    """The agent other than ``besides`` that is not offline and is bound to the same
    pane of the same server, if any: two adapters on one pane would type every
    message twice."""
    for agent in agents:
        if agent.id == besides or agent.status is AgentStatus.OFFLINE:
            continue
        try:
            theirs = Binding.of_agent(agent)
        except InvalidInput:
            continue
        if (theirs.pane, theirs.socket) == (binding.pane, binding.socket):
            return agent
    return None


def bind(
    relay: Relay,
    name: str,
    pane: Pane,
    *,
    label: str | None = None,
    tags: Sequence[str] = (),
    capabilities: Sequence[str] = (),
    channels: Sequence[str] = (),
    message_format: str = "framed",
) -> AgentHandle:
    """Register agent ``name`` bound to ``pane`` (tool ``tmux``, the pane's cwd, this
    process's pid, the binding in ``meta["tmux"]``, how its messages are typed in
    ``meta["format"]``: ``framed`` or ``raw``); registering an existing id
    starts a new epoch, fencing off an older attach of the same agent.

    Raises:
        Conflict: the pane's program has exited, or another agent that is not
            offline is bound to the pane.
        InvalidInput: a malformed name, tag, capability or channel.
    """
    if pane.dead:
        raise Conflict(f"the program in tmux pane {pane.id} has exited", pane=pane.id)
    binding = Binding.of_pane(pane)
    other = holder(relay.agents(), binding, besides=name)
    if other is not None:
        raise Conflict(
            f"tmux pane {pane.id} is already bound to agent {other.id} ({other.status.value}); "
            "stop that 'relaybus tmux attach' first",
            pane=pane.id,
            agent=other.id,
        )
    return relay.register(
        name,
        label=label,
        tags=tags,
        capabilities=capabilities,
        channels=channels,
        meta={META_KEY: binding.meta(), "format": message_format},
        tool="tmux",
        cwd=pane.cwd or None,
    )
