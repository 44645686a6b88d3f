"""Who the program under ``relaybus run`` is on the relay: its default agent id
and the environment that lets relaybus commands inside it act as that agent
(see :mod:`.runner`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ...client import AgentHandle, Relay
from ...errors import NotFound
from ...identity import HOSTNAME, derive_agent_id
from ...models import AgentStatus

if TYPE_CHECKING:
    from .runner import RunOptions


def runner_agent_id(relay: Relay, tool: str, cwd: str, instance: str) -> str:
    """The default agent id of a runner: ``{host}-{tool}-{project}-{hash}`` of
    host, tool and cwd, the same for every run in that folder (so mail left
    unread by one run reaches the next); if a live agent holds it already (another
    runner of the same tool there), one that also hashes this runner's instance."""
    project = Path(cwd).name
    stable = derive_agent_id(host=HOSTNAME, tool=tool, project=project, cwd=cwd, instance_id=None)
    try:
        holder = relay.get_agent(stable)
    except NotFound:
        return stable
    if holder.status is AgentStatus.OFFLINE:
        return stable
    return derive_agent_id(host=HOSTNAME, tool=tool, project=project, cwd=cwd, instance_id=instance)


def child_env(
    base: Mapping[str, str], relay: Relay, handle: AgentHandle, opts: RunOptions, key: str
) -> dict[str, str]:
    """The program's environment: ``base`` plus the agent, its profile and the
    relay (see :mod:`.runner`)."""
    env = {k: v for k, v in base.items() if k not in ("RELAYBUS_EPOCH", "RELAYBUS_PROFILE")}
    env["RELAYBUS_AGENT"] = handle.id
    env["RELAYBUS_SESSION"] = key
    # The runner types the mail in: Claude Code hooks inside leave it alone.
    env["RELAYBUS_RUNTIME"] = "pty"
    env["RELAYBUS_WORKSPACE"] = relay.workspace
    env.pop("RELAYBUS_LABEL", None)
    if opts.label:
        env["RELAYBUS_LABEL"] = opts.label
    env["RELAYBUS_TAGS"] = ",".join(opts.tags)
    env["RELAYBUS_CAPS"] = ",".join(opts.capabilities)
    env["RELAYBUS_CHANNELS"] = ",".join(opts.channels)
    # The session inside registers with it, and its hooks fall back on it.
    env.pop("RELAYBUS_APPROVAL", None)
    if opts.approval:
        env["RELAYBUS_APPROVAL"] = opts.approval
    url = relay.url
    if isinstance(url, str):
        env["RELAYBUS_URL"] = url
        env.pop("RELAYBUS_DIR", None)
        env.pop("RELAYBUS_DATABASE", None)
        token = handle.token
        if token is not None:
            env["RELAYBUS_TOKEN"] = token
    else:
        env["RELAYBUS_DATABASE"] = relay.store.url.render_as_string(hide_password=False)
        env.pop("RELAYBUS_URL", None)
        env.pop("RELAYBUS_DIR", None)
    return env
