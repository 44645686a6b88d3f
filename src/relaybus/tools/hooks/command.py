"""``relaybus hook EVENT [--tool codex]``: the command Claude Code (and Codex,
whose hooks take the same JSON) runs for each hook.

Standard library only, on purpose: it runs on every prompt and after every
tool call, and Claude Code waits for it. It reads the hook input from stdin,
passes it to the session's ``relaybus mcp`` process over its Unix socket
(:mod:`.host`) and prints the answer, all within :data:`BUDGET` seconds.

Claude Code starts the hooks and ``relaybus mcp`` at the same time, and
``relaybus mcp`` takes a second or more to start, so the first hooks often
find nobody at the socket. The command then never opens the relay through
the relaybus stack (that alone takes longer than a hook may):

- it reads the session agent's unread mail itself, read-only and with the
  standard library (:mod:`.direct`: one SQLite query, or one HTTP GET), prints
  it, records the printed ids in the session's private runtime folder and
  hands them to a detached ``relaybus hook EVENT --background``, which marks
  exactly those read (``via=hook``). Until that is done every later hook
  skips them and hands them on again (to ``relaybus mcp`` in its request, or
  to its own background process), so mail waiting at the start reaches the
  model in SessionStart's output, once;
- SessionStart prints the session's identity, computed here once, and hands
  that identity (as JSON on stdin, :meth:`SessionIdentity.to_json`) to the
  background process, which registers the agent (before it marks anything);
- UserPromptSubmit first waits up to :data:`HOST_WAIT` seconds for
  ``relaybus mcp`` to come up (a headless ``claude -p`` submits its prompt
  right after SessionStart);
- UserPromptSubmit, Stop and SessionEnd hand their presence change (busy,
  idle, offline) to the background process as well.

``--inline`` does the whole work in this process instead (slow: for
debugging and for sessions without ``relaybus mcp``).

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
from collections.abc import Collection, Sequence
from pathlib import Path
from stat import S_ISDIR

from ... import identity as ident
from . import direct, ledger

# Not ``from typing import ...``: importing typing costs every hook about 5 ms, and
# the annotations are never evaluated; type checkers treat ``TYPE_CHECKING`` as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ...client import Relay

#: When this module was loaded: the clock of the hook's :data:`BUDGET`.
STARTED = time.monotonic()

EVENTS = {
    "session-start": "SessionStart",
    "user-prompt-submit": "UserPromptSubmit",
    "post-tool-use": "PostToolUse",
    "stop": "Stop",
    "session-end": "SessionEnd",
    "pre-tool-use": "PreToolUse",
}
#: Seconds from the start of the command by which it has answered, whatever
#: happens (the target is 1 s at p99, interpreter start included).
BUDGET = 0.7
#: Seconds UserPromptSubmit waits for the session's ``relaybus mcp`` to come up.
HOST_WAIT = 0.4
#: Seconds between looks for the session's socket while waiting for it.
HOST_POLL = 0.05
#: Seconds the command waits, after printing, for the host to confirm the
#: mail it showed is marked read (so the next hook cannot show it again).
DONE_WAIT = 5.0
#: The log is cut back to empty past this size, in bytes.
LOG_LIMIT = 1_000_000
#: Events whose presence change a background process makes when no
#: ``relaybus mcp`` answers (PostToolUse changes nothing).
BACKGROUND = frozenset({"SessionStart", "UserPromptSubmit", "Stop", "SessionEnd"})
#: Events whose output hands over mail.
MAIL_EVENTS = frozenset({"SessionStart", "UserPromptSubmit", "PostToolUse", "Stop"})
#: The coding tools whose hooks these commands serve (``--tool``; default the first).
TOOLS = ("claude", "codex")
USAGE = (
    f"usage: relaybus hook {{{','.join(EVENTS)}}} [--tool {{{','.join(TOOLS)}}}] "
    "[--inline | --background] < hook-input.json"
)


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


def remaining() -> float:
    """Seconds left of the :data:`BUDGET` (at least a little, to try at all)."""
    return max(STARTED + BUDGET - time.monotonic(), 0.05)


def emit(output: dict[str, Any] | None) -> None:
    """Print the hook's output JSON for Claude Code (nothing for None)."""
    if output is not None:
        sys.stdout.write(json.dumps(output) + "\n")
        sys.stdout.flush()


def connect(path: Path, *, wait: float) -> socket.socket:
    """A connection to the session's process at ``path``, looking again every
    :data:`HOST_POLL` seconds for up to ``wait`` seconds while nobody is there.

    Raises:
        OSError: no process listens on ``path``, or its folder is not this
            user's alone (PermissionError).
    """
    until = time.monotonic() + wait
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # The hook input carries the user's prompt: never hand it to a socket
            # that another user could have put there.
            folder = os.lstat(path.parent)
            if folder.st_uid != os.geteuid() or folder.st_mode & 0o022:
                raise PermissionError(f"{path.parent} is not private to this user")
            if not S_ISDIR(folder.st_mode):
                raise PermissionError(f"{path.parent} is not private to this user")
            conn.settimeout(remaining())
            conn.connect(str(path))
        except PermissionError:
            conn.close()
            raise
        except OSError:
            conn.close()
            if time.monotonic() + HOST_POLL >= until:
                raise
            time.sleep(HOST_POLL)  # the process is starting: look again
        else:
            return conn


def read_line(conn: socket.socket) -> Any:
    """One JSON line from ``conn``; None if it closed first.

    Raises:
        OSError: timeout or a broken connection.
        ValueError: not JSON.
    """
    chunks = []
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    raw = b"".join(chunks)
    return json.loads(raw) if raw.strip() else None


def ask_host(
    path: Path,
    event: str,
    payload: dict[str, Any],
    *,
    wait: float = 0.0,
    printed: Collection[int] = (),
) -> None:
    """Run ``event`` in the session's process and print its output; the mail
    it shows is marked read only after it is printed (see :mod:`.host`).
    ``printed``: ids of mail earlier hooks printed themselves (:mod:`.direct`),
    which the process marks read first.

    Raises:
        OSError: no process listens on ``path``, or it did not answer within
            the budget (nothing was printed then, and no mail marked read).
        RuntimeError: the process answered with an error (nothing printed).
    """
    with connect(path, wait=wait) as conn:
        conn.settimeout(remaining())
        request = {"event": event, "input": payload, "printed": sorted(printed)}
        conn.sendall(json.dumps(request).encode("utf-8") + b"\n")
        try:
            reply = read_line(conn)
        except ValueError as exc:
            raise ConnectionError(f"the relaybus process answered garbage: {exc}") from None
        if not isinstance(reply, dict):
            raise ConnectionError("the session's relaybus process closed without answering")
        if "error" in reply:
            raise RuntimeError(str(reply["error"]))
        output = reply.get("output")
        emit(output if isinstance(output, dict) else None)
        if reply.get("shown"):
            # Printed: now the mail may be marked read. Wait for that to be
            # done, so that the next hook cannot show the same mail again.
            conn.settimeout(DONE_WAIT)
            try:
                conn.sendall(b'{"ack": true}\n')
                read_line(conn)
            except (OSError, ValueError) as exc:
                log(event, f"the session's relaybus process did not confirm the mail: {exc}")


def session(payload: dict[str, Any], tool: str = "claude") -> ident.SessionIdentity:
    """The session's identity as its ``relaybus mcp`` (``RELAYBUS_TOOL=TOOL``) derives
    it: the project is ``CLAUDE_PROJECT_DIR`` (Claude Code), else the input's ``cwd``."""
    project = os.environ.get("CLAUDE_PROJECT_DIR") if tool == "claude" else None
    cwd = project or payload.get("cwd") or None
    return ident.session_identity(tool, cwd=cwd if isinstance(cwd, str) else None)


def enter(payload: dict[str, Any]) -> None:
    """Work from the session's directory: the relay is found from it, like git."""
    cwd = payload.get("cwd")
    if isinstance(cwd, str) and os.path.isdir(cwd):
        os.chdir(cwd)


def open_relay(*, create: bool) -> Relay:
    """The relay, through the warm local relay when one runs for this store (a hook
    never starts one: see :func:`relaybus.client.warm_backend.open_relay`), else
    opened in this process.

    Raises:
        NoRelay: no relay here and not ``create``. RelayError: it cannot be opened.
    """
    from ...client.warm_backend import open_relay as open_any
    from ...settings import Settings

    return open_any(Settings(), create=create, start=False)


def run_inline(event: str, payload: dict[str, Any], tool: str = "claude") -> None:
    """Run ``event`` in this process: open the relay, find or register the
    agent, print the output, then mark the mail it shows read."""
    from ...errors import NoRelay, NotFound
    from ..session import session_agent
    from .logic import deliver, handle

    enter(payload)
    me_identity = session(payload, tool)
    try:
        # Only the session's start registers, so only it may create the relay.
        relay = open_relay(create=event == "SessionStart")
    except NoRelay:
        return  # no relay here, so no mail and nothing to report
    with relay:
        if event == "SessionEnd":
            try:
                me = relay.agent(me_identity.agent_id)
            except NotFound:
                return  # nothing to end: ``claude mcp list`` runs SessionEnd alone
        else:
            me = session_agent(relay, me_identity, register=event == "SessionStart")
        outcome = handle(event, payload, me, me_identity)
        emit(outcome.output)
        deliver(me, outcome)


def run_background(event: str, request: dict[str, Any]) -> None:
    """The detached half of a hook that answered without the relay: register
    the session (SessionStart), mark read exactly the mail the hooks printed
    themselves (``printed``, ``via=hook``) and forget their printed files
    (``files``), then change the session's presence (unless ``presence`` is
    false), as the identity handed over says. Reads no mail.

    Processes of one session take turns in the order their hooks ran
    (:mod:`.turns`, the request's ``turn``).

    Raises:
        ValueError: the request holds no identity.
        RelayError: the relay refused.
    """
    from ...errors import NoRelay, NotFound  # loaded while earlier turns finish
    from ...models import Via
    from ..session import register_session
    from . import turns
    from .logic import presence

    me_identity = ident.SessionIdentity.from_json(str(request.get("identity")))
    payload = request.get("input")
    payload = payload if isinstance(payload, dict) else {}
    shown = [i for i in request.get("printed") or () if isinstance(i, int)]
    files = [f for f in request.get("files") or () if isinstance(f, str)]
    path = ident.session_socket(me_identity.session)
    folder, key = path.parent, path.stem
    turn = request.get("turn")
    if not (isinstance(turn, str) and turn.startswith(key + turns.TURN) and "/" not in turn):
        turn = None
    try:
        if turn is not None and not turns.wait_turn(folder, key, turn):
            log(event, "the session's earlier hooks did not finish in time; going on")
        enter(payload)
        try:
            # Only the session's start registers, so only it may create the relay.
            relay = open_relay(create=event == "SessionStart")
        except NoRelay:
            return  # no relay here: no presence to change
        with relay:
            if event == "SessionStart":
                me = register_session(relay, me_identity)
            else:
                try:
                    me = relay.agent(me_identity.agent_id)
                except NotFound:
                    return  # never registered (``claude mcp list`` runs SessionEnd alone)
            if shown:
                me.mark_read(shown, via=Via.HOOK)
            if files:
                ledger.forget_printed(folder, key, files)
            if event != "SessionStart" and request.get("presence", True):
                presence(event, payload, me)
    finally:
        if turn is not None:
            turns.end_turn(folder, turn)


def start_in_background(
    name: str, me: ident.SessionIdentity, payload: dict[str, Any], **extra: Any
) -> None:
    """Run ``relaybus hook NAME --background`` detached, handing it the
    session's identity, the hook input and ``extra`` (see :func:`run_background`)
    as JSON on stdin.

    Raises:
        OSError: the process could not be started.
    """
    import subprocess

    from . import turns

    path = ident.session_socket(me.session)
    try:
        turn: str | None = turns.take_turn(ledger.private_folder(path.parent), path.stem)
    except OSError as exc:  # works, only unordered
        log(EVENTS[name], f"could not take a turn for the background process: {exc}")
        turn = None
    exe = ident.executable()
    argv = [exe] if os.access(exe, os.X_OK) else [sys.executable, "-m", "relaybus"]
    try:
        with open(os.devnull, "wb") as null:
            proc = subprocess.Popen(
                [*argv, "hook", name, "--background"],
                stdin=subprocess.PIPE,
                stdout=null,
                stderr=null,
                start_new_session=True,
            )
    except OSError:
        if turn is not None:
            turns.end_turn(path.parent, turn)
        raise
    if turn is not None:
        try:
            turns.claim_turn(path.parent, turn, proc.pid)
        except OSError as exc:
            log(EVENTS[name], f"could not claim the background process's turn: {exc}")
    assert proc.stdin is not None
    request = {"identity": me.to_json(), "input": payload, "turn": turn, **extra}
    proc.stdin.write(json.dumps(request).encode("utf-8"))
    proc.stdin.close()


#: What each approval mode means, for the model's context.
APPROVAL_TEXT = {
    "open": "Approval mode: open (Claude Code's own permissions apply).",
    "guarded": "Approval mode: guarded: a person approves each tool call that changes files "
    "or runs commands (Write, Edit, Bash, other MCP servers' tools).",
    "read-only": "Approval mode: read-only: tool calls that change files or run commands "
    "(Write, Edit, Bash, other MCP servers' tools) are denied; read, search and use the "
    "relaybus tools.",
}


def usage_text(
    agent_id: str,
    label: str | None = None,
    tags: Sequence[str] = (),
    caps: Sequence[str] = (),
    approval: str | None = None,
) -> str:
    """The session's relay identity, its approval mode (None: open) and how to use the
    relay, for the model's context."""
    lines = [
        "You are connected to relaybus, the message relay between coding agents, as agent "
        f"`{agent_id}`" + (f" ({label})" if label else "") + "."
    ]
    if tags or caps:
        lines.append(f"Tags: {', '.join(tags) or '-'}; capabilities: {', '.join(caps) or '-'}.")
    lines.append(APPROVAL_TEXT.get(approval or "open", APPROVAL_TEXT["open"]))
    lines += [
        "Use the relaybus MCP tools: `agents` (who is online), `send` (to an agent id, "
        "tag:NAME, cap:NAME, label:TEXT or broadcast; reply_to=ID answers in a thread), "
        "`inbox`, `wait_for_message`, `task` (claim and report work).",
        "New messages for you appear in your context at your next prompt or tool call "
        "(call `inbox` or `wait_for_message` to look sooner). Acknowledge briefly; "
        "never reply to a pure acknowledgement (no ack loops).",
    ]
    return "\n".join(lines)


def identity_context(me: ident.SessionIdentity) -> dict[str, Any]:
    """SessionStart output from the identity alone (no relay call)."""
    profile = me.profile
    text = usage_text(
        me.agent_id, profile.label, profile.tags, profile.capabilities, profile.approval
    )
    return {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": text}}


def own_mail(
    event: str, me: ident.SessionIdentity, payload: dict[str, Any], folder: Path, skip: set[int]
) -> direct.UnreadPage:
    """The unread mail this hook hands over itself, without ``relaybus mcp``
    (:mod:`.direct`), ``skip`` left out; nothing for an event that shows no
    mail, or for a Stop that already continues.

    Raises:
        OSError, ValueError, sqlite3.Error: see :func:`.direct.unread_mail`;
            PermissionError: the session's runtime folder is not private.
    """
    if event not in MAIL_EVENTS or (event == "Stop" and payload.get("stop_hook_active")):
        return direct.UnreadPage([])
    ledger.private_folder(folder)  # where the printed ids will be recorded
    cwd = payload.get("cwd")
    here = Path(cwd) if isinstance(cwd, str) and os.path.isdir(cwd) else Path.cwd()
    return direct.unread_mail(me.agent_id, os.environ, here, skip=skip, timeout=remaining())


def mail_output(event: str, me: ident.SessionIdentity, text: str | None) -> dict[str, Any] | None:
    """The output of hook ``event`` answered without the relay: the identity
    (SessionStart) and the mail ``text`` it hands over."""
    if event == "SessionStart":
        output = identity_context(me)
        if text:
            output["hookSpecificOutput"]["additionalContext"] += "\n\n" + text
        return output
    if not text:
        return None
    if event == "Stop":
        return {"decision": "block", "reason": text}
    return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}


def dispatch(name: str, payload: dict[str, Any], tool: str = "claude") -> None:
    """Run hook ``name`` of a ``tool`` session for ``payload`` and print its output
    (see the module docstring).

    Raises:
        Exception: whatever went wrong; :func:`main` logs it.
    """
    event = EVENTS[name]
    me = session(payload, tool)
    path = ident.session_socket(me.session)
    folder, key = path.parent, path.stem
    earlier, files = ledger.printed(folder, key)
    try:
        wait = HOST_WAIT if event == "UserPromptSubmit" else 0.0
        ask_host(path, event, payload, wait=wait, printed=earlier)
    except (OSError, RuntimeError) as exc:
        if event != "SessionStart":  # expected there: relaybus mcp is still starting
            log(event, f"no answer from the session's relaybus mcp ({exc}); reading mail here")
    else:
        ledger.forget_printed(folder, key, files)  # the host marked them read
        if event in BACKGROUND and event != "SessionStart":
            from . import turns

            if turns.pending(folder, key):
                # The host changed the presence now, but earlier hooks' background
                # processes have yet to land theirs: change it again after them.
                start_in_background(name, me, payload, printed=[], files=[])
        return
    try:
        unread = own_mail(event, me, payload, folder, earlier)
    except Exception as exc:  # print the rest: the mail waits for the next hook
        log(event, f"could not read the mail: {type(exc).__name__}: {exc}")
        unread = direct.UnreadPage([])
    shown = [m.id for m in unread.mail]
    text = (
        direct.render_mail(unread.mail, more=unread.more, at_least=unread.at_least)
        if shown
        else None
    )
    emit(mail_output(event, me, text))
    if shown:
        files.append(ledger.record_printed(folder, key, shown))
    if event in BACKGROUND or earlier or shown:
        start_in_background(
            name,
            me,
            payload,
            printed=sorted(earlier | set(shown)),
            files=files,
            presence=event in BACKGROUND and not (event == "Stop" and shown),
        )


def main(argv: list[str]) -> int:
    """Run one hook; the exit code (0, or 2 for a bad command line)."""
    flags = {"--inline", "--background"} & set(argv)
    args = [a for a in argv if a not in flags]
    tool = TOOLS[0]
    if len(args) == 3 and args[1] == "--tool":
        tool = args.pop(2)
        args.pop(1)
    if len(args) != 1 or args[0] not in EVENTS or len(flags) > 1 or tool not in TOOLS:
        print(USAGE, file=sys.stderr)
        return 2
    name = args[0]
    if name == "pre-tool-use":  # the approval gate: the same however it is run
        from .gate import main as gate_main

        return gate_main(remaining())
    try:
        raw = sys.stdin.read()
        payload = json.loads(raw) if raw.strip() else {}
        if not isinstance(payload, dict):
            raise ValueError("the hook input is not a JSON object")
        if "--inline" in flags:
            run_inline(EVENTS[name], payload, tool)
        elif "--background" in flags:
            run_background(EVENTS[name], payload)
        else:
            dispatch(name, payload, tool)
    except Exception as exc:  # the boundary: a hook must never break the session
        log(EVENTS[name], f"{type(exc).__name__}: {exc}")
    return 0
