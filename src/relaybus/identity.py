"""Who a coding-agent session is on the relay: its agent id, label, tags,
capabilities and channels, and the key that ties its processes together.

A Claude Code session runs several relaybus processes: the MCP server
(``relaybus mcp``, alive for the whole session) and one short-lived process
per hook. They must agree on one agent without talking first, so each derives
the same **session key** from the nearest ancestor process that is not a shell
(the coding tool itself: ``claude``, ``codex``, ``gemini``…), by its pid and
start time. ``RELAYBUS_SESSION`` overrides the key.

This module imports only the standard library: the hook commands load it on
every call and must start in well under 100 ms.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

from .profiles import Profile, auto_names
from .records import Record

#: Process names skipped when looking for the session's tool process: the
#: shells a tool may run a command through.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "busybox", "env"})

HOSTNAME = socket.gethostname()


def derive_agent_id(
    *, host: str, tool: str, project: str, cwd: str, instance_id: str | None
) -> str:
    """The default agent id: ``{host}-{tool}-{project}-{hash}``.

    The 6-hex-digit hash covers host, cwd, tool and instance id, so two
    sessions of one tool in one repository get different ids while a
    re-registering instance keeps its own.
    """
    import hashlib  # here: importing it (OpenSSL) costs every command that loads this module

    seed = "\0".join([host, cwd, tool, instance_id or ""]).encode("utf-8")
    digest = hashlib.sha256(seed).hexdigest()[:6]

    def slug(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:32] or "x"

    return f"{slug(host.split('.')[0])}-{slug(tool)}-{slug(project)}-{digest}"


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """``(name, ppid, start ticks)`` of ``pid`` from ``/proc``, or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            raw = f.read()
    except OSError:
        return None
    # The name is in parentheses and may itself contain spaces or parentheses.
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return name, int(fields[1]), int(fields[19])


def _psutil_stat(pid: int) -> tuple[str, int, int] | None:
    """The same as :func:`_proc_stat` where there is no ``/proc`` (macOS)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        return proc.name(), proc.ppid(), int(proc.create_time() * 100)
    except psutil.Error:
        return None


def session_anchor(start: int | None = None) -> tuple[int, int] | None:
    """The session's tool process as ``(pid, start time)``: the nearest
    ancestor of ``start`` (default: this process's parent) that is not a shell.

    The start time (clock ticks since boot, or centiseconds since the epoch
    without ``/proc``) tells a live process from a later one reusing its pid.
    None if the process table cannot be read or the walk reaches pid 1 (a
    detached process whose parent is gone: it must be handed its session's
    identity, see :meth:`SessionIdentity.to_json`).
    """
    stat = _proc_stat if os.path.exists("/proc/self/stat") else _psutil_stat
    pid = os.getppid() if start is None else start
    for _ in range(16):  # a bound, against a cycle in a broken process table
        if pid <= 1:
            # init (or a subreaper's orphan): the tool is gone or was never
            # there; pid 1 never ends, so it must never stand for a session
            return None
        info = stat(pid)
        if info is None:
            return None
        name, ppid, started = info
        base = os.path.basename(name).lower()
        if base not in SHELLS or ppid <= 1:
            return pid, started
        pid = ppid
    return None


def session_key(env: Mapping[str, str] | None = None) -> str:
    """The key every process of one coding-agent session derives alike.

    ``RELAYBUS_SESSION`` when set; otherwise 12 hex digits hashed from the host
    and the :func:`session_anchor`. Falls back to this process's own pid when
    the process table cannot be read (the session then has no shared key).
    """
    env = os.environ if env is None else env
    given = env.get("RELAYBUS_SESSION", "").strip()
    if given:
        return given
    anchor = session_anchor() or (os.getpid(), 0)
    seed = f"{HOSTNAME}\0{anchor[0]}\0{anchor[1]}".encode()
    import hashlib

    return hashlib.sha256(seed).hexdigest()[:12]


def runtime_root(env: Mapping[str, str] | None = None) -> Path:
    """The folder of this user's relay sockets (the stores' wake-up sockets, and a warm
    relay's socket when its relay folder is too deep for one): ``relaybus-UID`` in
    ``RELAYBUS_TMPDIR``, default ``/tmp``.

    Not in ``$TMPDIR``: every process of one store must find the same sockets, and
    ``TMPDIR`` differs between processes of one user (macOS gives each login its own;
    MCP clients start servers with a filtered environment without it), so a writer
    would not wake a reader and a command would not find the running relay. tmux keeps
    its sockets in ``/tmp/tmux-UID`` for the same reason (``TMUX_TMPDIR`` moves them).
    The folder must be this user's and closed to others
    (:func:`relaybus.store.files.private_runtime_folder` checks it).
    """
    env = os.environ if env is None else env
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(env.get("RELAYBUS_TMPDIR") or "/tmp") / f"relaybus-{uid}"


def session_socket(key: str, env: Mapping[str, str] | None = None) -> Path:
    """Where the session's MCP server listens for its hook commands.

    ``$XDG_RUNTIME_DIR/relaybus/KEY.sock``, else ``$TMPDIR/relaybus-hooks-UID/KEY.sock``:
    short paths (a Unix socket path has at most 107 bytes) in a folder only
    this user can enter.
    """
    env = os.environ if env is None else env
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        folder = Path(runtime) / "relaybus"
    else:
        uid = os.getuid() if hasattr(os, "getuid") else 0
        # tempfile.gettempdir() would cost the hook commands its import time
        folder = Path(env.get("TMPDIR") or "/tmp") / f"relaybus-hooks-{uid}"
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", key)[:64]
    return folder / f"{safe}.sock"


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/relaybus``, default ``~/.local/state/relaybus``: the
    hook log, and the install manifest and backups."""
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "relaybus"


class SessionIdentity(Record):
    """Everything a session registers with: see :func:`session_identity`.

    A process that registers on a session's behalf (the SessionStart hook's
    background registration) is handed the identity as JSON
    (:meth:`to_json`, :meth:`from_json`) rather than deriving it again: its
    own parent is not the session's tool.
    """

    __slots__ = ("agent_id", "tool", "instance_id", "session", "pid", "cwd", "profile")

    def __init__(
        self,
        agent_id: str,
        tool: str,
        instance_id: str,
        session: str,
        pid: int | None,
        cwd: str,
        profile: Profile,
    ) -> None:
        self.agent_id = agent_id
        self.tool = tool
        self.instance_id = instance_id
        self.session = session
        self.pid = pid
        self.cwd = cwd
        self.profile = profile

    def to_json(self) -> str:
        """The identity as one JSON object (see :meth:`from_json`)."""
        import json

        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> SessionIdentity:
        """The identity :meth:`to_json` wrote.

        Raises:
            ValueError: ``text`` is not such an object.
        """
        import json

        try:
            doc = json.loads(text)
            fields = {k: doc[k] for k in ("agent_id", "tool", "instance_id", "session", "cwd")}
            pid = doc["pid"]
            profile = Profile(**doc["profile"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a session identity: {exc}") from None
        if not all(isinstance(v, str) for v in fields.values()):
            raise ValueError("not a session identity: a field is not a string")
        if pid is not None and (not isinstance(pid, int) or pid <= 1):
            raise ValueError(f"not a session identity: pid {pid!r}")
        return cls(pid=pid, profile=profile, **fields)


def session_identity(
    tool: str, *, cwd: str | None = None, env: Mapping[str, str] | None = None
) -> SessionIdentity:
    """The identity of the coding-agent session this process belongs to.

    The agent id is the profile's (``RELAYBUS_AGENT``) or derived from host,
    ``tool``, the project directory (``cwd``, default ``CLAUDE_PROJECT_DIR``
    or the current directory) and the :func:`session_key`; the instance id is
    the session key, so the session's processes re-register without fencing
    each other off. ``pid`` is the tool's process (the session anchor), so
    presence ends with the tool. The profile's tags and capabilities get the
    session's automatic ones (:func:`auto_names`, as the environment and the
    profile say) after their own.

    Raises:
        ProfileError: see :meth:`Profile.from_env` and :func:`auto_names`.
    """
    env = os.environ if env is None else env
    profile = Profile.from_env(env)
    cwd = cwd or env.get("CLAUDE_PROJECT_DIR") or os.getcwd()
    tags, caps = auto_names(tool, cwd, env, profile)
    profile.tags = list(dict.fromkeys([*profile.tags, *tags]))
    profile.capabilities = list(dict.fromkeys([*profile.capabilities, *caps]))
    key = session_key(env)
    instance = f"session-{key}"
    agent_id = profile.agent or derive_agent_id(
        host=HOSTNAME, tool=tool, project=Path(cwd).name, cwd=cwd, instance_id=instance
    )
    anchor = None if env.get("RELAYBUS_SESSION") else session_anchor()
    return SessionIdentity(
        agent_id=agent_id,
        tool=tool,
        instance_id=instance,
        session=key,
        pid=anchor[0] if anchor else None,
        cwd=cwd,
        profile=profile,
    )


def executable() -> str:
    """The absolute path of the ``relaybus`` command this interpreter runs
    (the console script next to ``sys.executable``), for tools' configs."""
    here = Path(sys.argv[0]).absolute() if sys.argv and sys.argv[0] else None
    if here is not None and here.name == "relaybus" and here.is_file():
        return str(here)
    beside = Path(sys.executable).parent / "relaybus"
    return str(beside)
