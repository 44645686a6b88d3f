"""The agent of a coding-agent session (see :mod:`relaybus.identity`), as
``relaybus mcp`` and the Claude Code hooks register or find it."""

from __future__ import annotations

from ..client import AgentHandle, Relay
from ..errors import NotFound
from ..identity import SessionIdentity


def register_session(relay: Relay, identity: SessionIdentity) -> AgentHandle:
    """Register the session's agent: the identity's id, its instance id (shared
    by all the session's processes, so they never fence each other off), the
    tool's pid (presence ends with the tool), cwd, profile (its approval mode too), and
    the session key
    as ``meta["session"]``.

    Raises:
        RelayError: the relay refused (e.g. a malformed profile field) or is unreachable.
    """
    profile = identity.profile
    return relay.register(
        identity.agent_id,
        label=profile.label,
        tags=profile.tags,
        capabilities=profile.capabilities,
        channels=profile.channels,
        meta={"session": identity.session},
        pid=identity.pid,
        instance_id=identity.instance_id,
        tool=identity.tool,
        cwd=identity.cwd,
        approval=profile.approval,
    )


def session_agent(relay: Relay, identity: SessionIdentity, *, register: bool) -> AgentHandle:
    """The session's agent: registered anew when ``register`` or when it does
    not exist yet, else the existing one (no new registration event).

    Raises:
        RelayError: see :func:`register_session`.
    """
    if not register:
        try:
            return relay.agent(identity.agent_id)
        except NotFound:
            pass
    return register_session(relay, identity)
