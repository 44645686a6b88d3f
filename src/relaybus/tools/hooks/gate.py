"""``relaybus hook pre-tool-use``: the approval gate Claude Code runs before every tool
call, enforcing the session agent's approval mode (:class:`relaybus.models.Approval`).

Standard library only, like :mod:`.command`: it runs before *every* tool call, and
Claude Code waits for it. The console script comes here directly
(:mod:`relaybus.entry`), and a tool that is never gated (most calls: ``Read``,
``Grep``…) is answered after ``json`` alone, before the session's identity, the
relay readers and :mod:`.command` are loaded.

What it decides (Claude Code's hook reference, "PreToolUse decision control": the
output ``{"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision":
"allow" | "deny" | "ask", "permissionDecisionReason": "..."}}``, exit 0):

- a tool of :data:`READ_TOOLS`, or one of relaybus's own MCP tools
  (:data:`OWN_MCP_TOOLS`: they send and read messages and tasks on the relay, never
  files or commands), in any mode: nothing;
- any other tool (``Write``, ``Edit``, ``MultiEdit``, ``NotebookEdit``, ``Bash``,
  other MCP servers' tools, and tools this list does not know yet): nothing in
  ``open``, ``ask`` in ``guarded`` (Claude Code asks the user, showing the reason),
  ``deny`` in ``read-only`` (the reason goes to the model).

"Nothing" is exit 0 with no output, which Claude Code documents as going on with its
normal permission flow: relaybus has no opinion, and the user's own permission rules
and prompts apply as without the hook. It never prints ``allow``, which would skip
Claude Code's own permission prompt: an approval mode only ever takes rights away.

Where the mode comes from: the session agent's stored mode (``agents.approval``), read
as :mod:`.direct` reads mail (the server's ``GET /v1/agents/{id}``, or the warm local
relay's, or one read-only SQLite query), so ``relaybus approval MODE`` applies at the
next tool call. Where it is not stored (no relay yet, the agent not registered yet —
the SessionStart hook registers it in the background —, or registered without one),
or it cannot be read in time, the mode the session registers with: ``RELAYBUS_APPROVAL``,
else its ``RELAYBUS_PROFILE``'s (:attr:`relaybus.profiles.Profile.approval`), else
``open``.
"""

from __future__ import annotations

import json
import os
import sys
import time

# Not ``from typing import ...`` (5 ms a hook); the annotations are never evaluated.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any

    from ...identity import SessionIdentity

#: When this module was loaded: the clock of the hook's budget (:data:`.command.BUDGET`).
STARTED = time.monotonic()

#: Claude Code's tools that change no file and run no command: never gated. (``Task``
#: and ``Agent`` start a subagent, whose own tool calls pass this hook; ``TodoWrite``
#: writes the session's to-do list, not the project.) A tool not listed is gated.
READ_TOOLS = frozenset(
    {
        "Read",
        "Glob",
        "Grep",
        "LS",
        "NotebookRead",
        "WebFetch",
        "WebSearch",
        "TodoRead",
        "TodoWrite",
        "Task",
        "Agent",
        "TaskOutput",
        "BashOutput",
        "ExitPlanMode",
        "EnterPlanMode",
        "AskUserQuestion",
        "Skill",
        "ListMcpResourcesTool",
        "ReadMcpResourceTool",
        "WaitForMcpServers",
    }
)
#: The name prefix of relaybus's own MCP tools (the server ``relaybus install`` adds).
OWN_MCP_TOOLS = "mcp__relaybus__"
#: The decision per mode for a gated tool (None: no opinion).
DECISIONS: dict[str, str | None] = {"open": None, "guarded": "ask", "read-only": "deny"}
#: The SQL of :func:`sqlite_approval`.
APPROVAL_SQL = "SELECT approval FROM agents WHERE workspace = ? AND id = ?"


def gated(tool: str) -> bool:
    """Whether an approval mode decides about the tool named ``tool``."""
    return tool not in READ_TOOLS and not tool.startswith(OWN_MCP_TOOLS)


def sqlite_approval(db: Path, workspace: str, agent_id: str, timeout: float) -> str | None:
    """The stored approval mode of ``agent_id`` in the SQLite store ``db``; None when
    there is no such file, agent or mode (or the store predates approval modes).

    Raises:
        sqlite3.Error: not a relay database, or it could not be read.
    """
    if not db.is_file():
        return None
    import sqlite3

    from .direct import read_only

    conn = read_only(db, timeout)
    try:
        row = conn.execute(APPROVAL_SQL, (workspace, agent_id)).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such column" in str(exc):
            return None  # a store before migration 0008
        raise
    finally:
        conn.close()
    return row[0] if row else None


def api_approval(get: Any, agent_id: str) -> str | None:
    """The approval mode in ``GET /v1/agents/{id}`` (``get``: see
    :func:`.direct.read_relay`); None for an unknown agent (404).

    Raises:
        OSError: ``get`` failed otherwise. ValueError: the answer is no agent.
    """
    from urllib.parse import quote

    try:
        agent = get(f"/v1/agents/{quote(agent_id, safe='')}")
    except OSError as exc:
        if getattr(exc, "code", None) == 404:
            return None
        raise
    if not isinstance(agent, dict):
        raise ValueError("the relay's agent is not an object")
    mode = agent.get("approval")
    return mode if isinstance(mode, str) else None


def stored_approval(agent_id: str, env: Mapping[str, str], cwd: Path, timeout: float) -> str | None:
    """The approval mode stored for ``agent_id`` on the relay ``env`` points at from
    ``cwd`` (see :func:`.direct.read_relay`); None when none is stored there.

    Raises:
        OSError, ValueError, sqlite3.Error: the relay could not be read.
    """
    from .direct import read_relay

    return read_relay(
        env,
        cwd,
        api=lambda get: api_approval(get, agent_id),
        sqlite=lambda db, workspace: sqlite_approval(db, workspace, agent_id, timeout),
        missing=None,
        timeout=timeout,
    )


def session_mode(me: SessionIdentity, cwd: Path, timeout: float) -> str:
    """The session's approval mode: the stored one, else its registration's (see the
    module docstring); a stored value that is no mode counts as none.

    Raises:
        OSError, ValueError, sqlite3.Error: the stored mode could not be read (the
            caller falls back on the registration's).
    """
    from ...profiles import APPROVAL_MODES

    stored = stored_approval(me.agent_id, os.environ, cwd, timeout)
    if stored in APPROVAL_MODES:
        return str(stored)
    return me.profile.approval or "open"


def decision(tool: str, mode: str, agent_id: str) -> dict[str, Any] | None:
    """The hook output for ``tool`` in approval mode ``mode`` (None: print nothing)."""
    verdict = DECISIONS.get(mode) if gated(tool) else None
    if verdict is None:
        return None
    return output(verdict, _reason(verdict, tool, agent_id))


def output(verdict: str, reason: str) -> dict[str, Any]:
    """``hookSpecificOutput`` with the permission decision ``verdict`` and its reason."""
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": verdict,
            "permissionDecisionReason": reason,
        }
    }


def _reason(verdict: str, tool: str, agent_id: str) -> str:
    if verdict == "deny":
        return (
            f"relaybus: agent {agent_id} is in approval mode read-only: {tool} can change "
            "files or run commands, so it is denied. Read, search and use the relaybus "
            "tools; if the work needs changes, ask a person to run `relaybus approval "
            "guarded` (or open)."
        )
    return (
        f"relaybus: agent {agent_id} is in approval mode guarded: {tool} can change "
        "files or run commands."
    )


def run(payload: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """The output of the PreToolUse hook for the hook input ``payload`` (None: print
    nothing), reading the stored mode within ``timeout`` seconds.

    A bad ``RELAYBUS_PROFILE`` or ``RELAYBUS_APPROVAL`` asks (no mode is known, and
    the one meant may be stricter than open).
    """
    tool = payload.get("tool_name")
    if not isinstance(tool, str) or not gated(tool):
        return None  # the common case: no identity, no relay read
    import sqlite3
    from pathlib import Path

    from ...profiles import ProfileError
    from .command import enter, log, session

    try:
        me = session(payload)
    except ProfileError as exc:
        log("PreToolUse", str(exc))
        return output("ask", f"relaybus: no approval mode known ({exc}): {tool} needs a person.")
    enter(payload)
    # What a read may raise; http.client's own errors only where it was loaded (a
    # server's or the warm relay's answer cut short), so that none is imported for it.
    http = sys.modules.get("http.client")
    failures = (OSError, ValueError, sqlite3.Error, *((http.HTTPException,) if http else ()))
    try:
        mode = session_mode(me, Path.cwd(), timeout)
    except failures as exc:  # the mode the session registers with, then
        log("PreToolUse", f"could not read the approval mode: {type(exc).__name__}: {exc}")
        mode = me.profile.approval or "open"
    return decision(tool, mode, me.agent_id)


def main(timeout: float | None = None) -> int:
    """``relaybus hook pre-tool-use``: read Claude Code's hook input on stdin, print the
    decision (:func:`run`), within ``timeout`` seconds (default: the hook budget,
    :data:`.command.BUDGET`). Exit status 0 whatever happens: a problem is logged
    (``hooks.log``) and nothing printed, which leaves the call to Claude Code's own
    permissions.
    """
    try:
        raw = sys.stdin.read()
        payload = json.loads(raw) if raw.strip() else {}
        if not isinstance(payload, dict):
            raise ValueError("the hook input is not a JSON object")
        tool = payload.get("tool_name")
        if not isinstance(tool, str) or not gated(tool):
            return 0  # printed nothing: the fast path, on json alone
        from .command import BUDGET, emit

        left = timeout if timeout is not None else STARTED + BUDGET - time.monotonic()
        emit(run(payload, max(left, 0.05)))
    except Exception as exc:  # the boundary: a hook must never break the session
        from .command import log

        log("PreToolUse", f"{type(exc).__name__}: {exc}")
    return 0
