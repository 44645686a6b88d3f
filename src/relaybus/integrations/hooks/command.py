"""``relaybus hook EVENT``: the command Claude Code runs for each hook.

Standard library only, on purpose: it runs on every prompt and after every
tool call, and Claude Code waits for it. It reads the hook input from stdin,
passes it to the session's ``relaybus mcp`` process over its Unix socket
(:mod:`.host`) and prints the answer. When that process is not there (not
started yet, or not configured), the command does the work itself:

- SessionStart prints the session's identity at once (derived locally, the
  same way ``relaybus mcp`` derives it) and registers the agent in a detached
  background process, so a new session never waits on the relay;
- the other events open the relay in this process (slower, same result).

It never fails the session: any relay error is logged to
``$XDG_STATE_HOME/relaybus/hooks.log`` and the command prints nothing and
exits 0.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from stat import S_ISDIR
from typing import Any

from ... import identity as ident

EVENTS = {
    "session-start": "SessionStart",
    "user-prompt-submit": "UserPromptSubmit",
    "post-tool-use": "PostToolUse",
    "stop": "Stop",
    "session-end": "SessionEnd",
}
#: How long the command waits for the session's process to answer, in seconds.
HOST_TIMEOUT = 8.0
#: The log is cut back to empty past this size, in bytes.
LOG_LIMIT = 1_000_000
USAGE = f"usage: relaybus hook {{{','.join(EVENTS)}}} [--inline] < hook-input.json"


def log_path() -> Path:
    """``$XDG_STATE_HOME/relaybus/hooks.log`` (default ``~/.local/state``)."""
    return ident.state_dir() / "hooks.log"


def log(event: str, problem: str) -> None:
    """Append one line about a problem to the hook log (best effort)."""
    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = "w" if path.exists() and path.stat().st_size > LOG_LIMIT else "a"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        with open(path, mode, encoding="utf-8") as f:
            f.write(f"{stamp} pid={os.getpid()} {event}: {problem}\n")
    except OSError:
        pass


def ask_host(path: Path, event: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Run ``event`` in the session's process; its output, or None for none.

    Raises:
        OSError: no process listens on ``path`` (or it went away mid-answer), or its
            folder is not this user's alone (PermissionError).
        RuntimeError: the process answered with an error.
    """
    # The hook input carries the user's prompt: never hand it to a socket that
    # another user could have put there.
    folder = os.lstat(path.parent)
    if folder.st_uid != os.geteuid() or folder.st_mode & 0o022 or not S_ISDIR(folder.st_mode):
        raise PermissionError(f"{path.parent} is not private to this user")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(HOST_TIMEOUT)
        conn.connect(str(path))
        conn.sendall(json.dumps({"event": event, "input": payload}).encode("utf-8") + b"\n")
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if chunk.endswith(b"\n"):
                break
    reply = json.loads(b"".join(chunks) or b"null")
    if not isinstance(reply, dict):
        raise ConnectionError("the session's relaybus process closed without answering")
    if "error" in reply:
        raise RuntimeError(str(reply["error"]))
    output = reply.get("output")
    return output if isinstance(output, dict) else None


def session(payload: dict[str, Any]) -> ident.SessionIdentity:
    """The session's identity as ``relaybus mcp`` derives it, for tool ``claude``."""
    cwd = os.environ.get("CLAUDE_PROJECT_DIR") or payload.get("cwd") or None
    return ident.session_identity("claude", cwd=cwd if isinstance(cwd, str) else None)


def run_inline(event: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Run ``event`` in this process: open the relay, find or register the agent."""
    from ...client import Relay
    from ...errors import NoRelay
    from ..session import session_agent
    from .logic import handle

    cwd = payload.get("cwd")
    if isinstance(cwd, str) and os.path.isdir(cwd):
        os.chdir(cwd)  # the relay is found from the session's directory, like git
    me_identity = session(payload)
    try:
        # Only the session's start registers, so only it may create the relay.
        relay = Relay.open(create=event == "SessionStart")
    except NoRelay:
        return None  # no relay here, so no mail and nothing to report
    with relay:
        me = session_agent(relay, me_identity, register=event == "SessionStart")
        return handle(event, payload, me, me_identity)


def start_in_background(name: str, payload: dict[str, Any]) -> None:
    """Run ``relaybus hook NAME --inline`` detached, feeding it ``payload``.

    Raises:
        OSError: the process could not be started.
    """
    import subprocess

    exe = ident.executable()
    argv = [exe] if os.access(exe, os.X_OK) else [sys.executable, "-m", "relaybus"]
    with open(os.devnull, "wb") as null:
        proc = subprocess.Popen(
            [*argv, "hook", name, "--inline"],
            stdin=subprocess.PIPE,
            stdout=null,
            stderr=null,
            start_new_session=True,
        )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(payload).encode("utf-8"))
    proc.stdin.close()


def usage_text(
    agent_id: str, label: str | None = None, tags: Sequence[str] = (), caps: Sequence[str] = ()
) -> str:
    """The session's relay identity and how to use the relay, for the model's context."""
    lines = [
        "You are connected to relaybus, the message relay between coding agents, as agent "
        f"`{agent_id}`" + (f" ({label})" if label else "") + "."
    ]
    if tags or caps:
        lines.append(f"Tags: {', '.join(tags) or '-'}; capabilities: {', '.join(caps) or '-'}.")
    lines += [
        "Use the relaybus MCP tools: `agents` (who is online), `send` (to an agent id, "
        "tag:NAME, cap:NAME, label:TEXT or broadcast; reply_to=ID answers in a thread), "
        "`inbox`, `wait_for_message`, `task` (claim and report work).",
        "New messages for you appear in your context as they arrive. Acknowledge briefly; "
        "never reply to a pure acknowledgement (no ack loops).",
    ]
    return "\n".join(lines)


def identity_context(me: ident.SessionIdentity) -> dict[str, Any]:
    """SessionStart output from the identity alone (no relay call)."""
    profile = me.profile
    text = usage_text(me.agent_id, profile.label, profile.tags, profile.capabilities)
    return {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": text}}


def dispatch(name: str, payload: dict[str, Any], *, inline: bool) -> dict[str, Any] | None:
    """The output of hook ``name`` for ``payload`` (see the module docstring).

    Raises:
        Exception: whatever the relay raised; :func:`main` logs it.
    """
    event = EVENTS[name]
    if inline:
        return run_inline(event, payload)
    path = ident.session_socket(ident.session_key())
    try:
        return ask_host(path, event, payload)
    except OSError as exc:
        problem = f"no relaybus mcp process for this session ({exc}); working in-process"
    if event == "SessionStart":
        me = session(payload)
        start_in_background(name, payload)
        return identity_context(me)
    log(event, problem)
    return run_inline(event, payload)


def main(argv: list[str]) -> int:
    """Run one hook; the exit code (0, or 2 for a bad command line)."""
    args = [a for a in argv if a != "--inline"]
    if len(args) != 1 or args[0] not in EVENTS:
        print(USAGE, file=sys.stderr)
        return 2
    name = args[0]
    try:
        raw = sys.stdin.read()
        payload = json.loads(raw) if raw.strip() else {}
        if not isinstance(payload, dict):
            raise ValueError("the hook input is not a JSON object")
        output = dispatch(name, payload, inline="--inline" in argv)
    except Exception as exc:  # the boundary: a hook must never break the session
        log(EVENTS[name], f"{type(exc).__name__}: {exc}")
        return 0
    if output is not None:
        sys.stdout.write(json.dumps(output) + "\n")
    return 0
