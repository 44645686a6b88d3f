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

# Not ``from typing import Any``: importing typing costs every hook command about
# 5 ms, and the annotations are never evaluated; type checkers treat it as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Process names skipped when looking for the session's tool process: the
#: shells a tool may run a command through.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "busybox", "env"})

HOSTNAME = socket.gethostname()

#: The approval modes (``relaybus.models.Approval``'s values, kept literal here: the hook
#: commands load this module and never pydantic; a test keeps them equal).
APPROVAL_MODES = ("open", "guarded", "read-only")


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


#: What ``RELAYBUS_AUTO_TAGS`` may name: the session's tool and its project.
AUTO_TAG_KINDS = ("tool", "project")
#: The automatic capabilities of a session unless ``RELAYBUS_AUTO_CAPS`` says otherwise.
DEFAULT_AUTO_CAPS = ("chat",)
#: Values of ``RELAYBUS_AUTO_TAGS`` / ``RELAYBUS_AUTO_CAPS`` that turn them off.
OFF = frozenset({"", "0", "false", "no", "off", "none"})
#: The keys of ``profiles.toml`` for the automatic names, as :class:`Profile` fields:
#: at the top of the file (every session) or in a profile's table (its sessions).
AUTO_KEYS = ("auto_tags", "auto_capabilities")


def name_slug(text: str) -> str | None:
    """``text`` as a valid tag or capability name (letters, digits, ``. _ - @``,
    starting with a letter or digit, at most 128 characters), other characters
    folded into ``-``; None when nothing is left."""
    slug = re.sub(r"[^A-Za-z0-9._@-]+", "-", text)
    slug = re.sub(r"^[^A-Za-z0-9]+", "", slug)[:128].rstrip("-")
    return slug or None


def project_name(cwd: str) -> str:
    """The session's project: the name of the repository folder holding ``cwd``
    (the nearest ``.git`` above it), else of ``cwd`` itself."""
    from .repository import repository_root

    here = Path(cwd)
    return (repository_root(here) or here).name


def auto_names(
    tool: str, cwd: str, env: Mapping[str, str] | None = None, profile: Profile | None = None
) -> tuple[list[str], list[str]]:
    """``(tags, capabilities)`` a session gets on top of its profile's.

    Tags: its tool (``claude``, ``codex``, ``gemini``, ``cursor``; none for ``mcp``, an
    unnamed tool) and its project
    (:func:`project_name`), as valid names; ``RELAYBUS_AUTO_TAGS`` picks which
    (comma-separated ``tool``, ``project``; default both; ``0`` or empty for
    none), else the ``profile``'s ``auto_tags``. Capabilities: ``RELAYBUS_AUTO_CAPS``
    (comma-separated names; default ``chat``; ``0`` or empty for none), else the
    ``profile``'s ``auto_capabilities``.

    Raises:
        ProfileError: ``RELAYBUS_AUTO_TAGS`` or ``auto_tags`` names something other
            than tool or project.
    """
    env = os.environ if env is None else env
    kinds: list[str] = list(AUTO_TAG_KINDS)
    caps: list[str] = list(DEFAULT_AUTO_CAPS)
    where = "RELAYBUS_AUTO_TAGS"
    if profile is not None and profile.auto_tags is not None:
        kinds, where = [k.lower() for k in profile.auto_tags], "profiles.toml: auto_tags"
    if profile is not None and profile.auto_capabilities is not None:
        caps = list(profile.auto_capabilities)
    if "RELAYBUS_AUTO_TAGS" in env:
        raw = env["RELAYBUS_AUTO_TAGS"]
        kinds = [] if raw.strip().lower() in OFF else split_list(raw.lower())
        where = "RELAYBUS_AUTO_TAGS"
    unknown = sorted(set(kinds) - set(AUTO_TAG_KINDS))
    if unknown:
        raise ProfileError(
            f"{where}: unknown {', '.join(unknown)} "
            f"(use {', '.join(AUTO_TAG_KINDS)}, or 0 for none)"
        )
    if "RELAYBUS_AUTO_CAPS" in env:
        raw = env["RELAYBUS_AUTO_CAPS"]
        caps = [] if raw.strip().lower() in OFF else split_list(raw)
    # ``mcp``: ``relaybus mcp`` without ``--tool``, no coding tool anyone could target.
    sources = {"tool": "" if tool == "mcp" else tool, "project": project_name(cwd)}
    tags = [slug for kind in kinds if (slug := name_slug(sources[kind]))]
    return tags, caps


def split_list(raw: str | None) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]`` (the form of ``RELAYBUS_TAGS`` and friends)."""
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/relaybus``, default ``~/.config/relaybus``."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".config"
    )
    return Path(base) / "relaybus"


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/relaybus``, default ``~/.local/state/relaybus``: the
    hook log, and the install manifest and backups."""
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "relaybus"


class ProfileError(ValueError):
    """A profile that cannot be used: missing, or a malformed profiles.toml."""


class Record:
    """A record class without :mod:`dataclasses`: equality and ``repr`` over the fields
    named in ``__slots__``, as a dataclass has them. The hook commands load their
    records on every call, and importing ``dataclasses`` costs each of them about
    14 ms of CPU (it imports ``inspect``, which imports ``ast``, ``dis``, ``tokenize``).
    Mutable records are unhashable, as a dataclass with ``eq`` is (a class that
    defines ``__eq__`` and no ``__hash__`` gets ``__hash__ = None``).
    """

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__ or not isinstance(other, Record):
            return NotImplemented
        return self._values() == other._values()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def to_dict(self) -> dict[str, object]:
        """The fields as a dict, records in them as dicts too (``dataclasses.asdict``)."""
        return {
            name: value.to_dict() if isinstance(value, Record) else value
            for name, value in zip(self.__slots__, self._values(), strict=True)
        }


class FrozenRecord(Record):
    """A :class:`Record` whose fields cannot be assigned after ``__init__`` (which sets
    them with :meth:`_set`), hashable by its fields: a frozen dataclass."""

    __slots__ = ()

    def _set(self, **values: object) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a {type(self).__name__}")

    def __hash__(self) -> int:
        return hash(self._values())


class Profile(Record):
    """How a session presents itself: the fields of a registration, and which
    automatic names it gets (:func:`auto_names`).

    ``agent`` None means "derive the id from host, tool, project and session";
    ``approval`` None means no approval mode given (the relay reads it as ``open``).
    ``auto_tags`` / ``auto_capabilities`` None mean "the default".
    """

    __slots__ = (
        "agent",
        "label",
        "tags",
        "capabilities",
        "channels",
        "approval",
        "auto_tags",
        "auto_capabilities",
    )

    def __init__(
        self,
        agent: str | None = None,
        label: str | None = None,
        tags: list[str] | None = None,
        capabilities: list[str] | None = None,
        channels: list[str] | None = None,
        approval: str | None = None,
        auto_tags: list[str] | None = None,
        auto_capabilities: list[str] | None = None,
    ) -> None:
        self.agent = agent
        self.label = label
        self.tags: list[str] = [] if tags is None else tags
        self.capabilities: list[str] = [] if capabilities is None else capabilities
        self.channels: list[str] = [] if channels is None else channels
        self.approval = approval
        self.auto_tags = auto_tags
        self.auto_capabilities = auto_capabilities

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Profile:
        """The profile the environment describes.

        ``RELAYBUS_PROFILE`` names a table of ``profiles.toml`` (in
        :func:`config_dir`) with keys ``agent``, ``label``, ``tags``,
        ``capabilities``, ``channels``, ``approval``, ``auto_tags``,
        ``auto_capabilities``; ``RELAYBUS_AGENT``, ``RELAYBUS_LABEL``,
        ``RELAYBUS_APPROVAL`` and the comma-separated ``RELAYBUS_TAGS``,
        ``RELAYBUS_CAPS``, ``RELAYBUS_CHANNELS`` override its fields one by one.
        Without ``RELAYBUS_PROFILE``, the file's top-level ``auto_tags`` and
        ``auto_capabilities`` still apply (a profile's own override them).

        Raises:
            ProfileError: ``RELAYBUS_PROFILE`` names no table of the file, or
                the file is not valid TOML or has fields of the wrong type, or
                an approval mode is not one of :data:`APPROVAL_MODES`.
        """
        env = os.environ if env is None else env
        name = env.get("RELAYBUS_PROFILE", "").strip()
        path = config_dir(env) / "profiles.toml"
        if name:
            profile = load_profile(name, path)
        else:
            profile = cls()
            if path.exists():  # a stat: the hook commands read the file only if it is there
                with_auto(profile, read_profiles(path), str(path))
        if env.get("RELAYBUS_AGENT", "").strip():
            profile.agent = env["RELAYBUS_AGENT"].strip()
        if env.get("RELAYBUS_LABEL", "").strip():
            profile.label = env["RELAYBUS_LABEL"].strip()
        if env.get("RELAYBUS_APPROVAL", "").strip():
            profile.approval = check_approval("RELAYBUS_APPROVAL", env["RELAYBUS_APPROVAL"])
        for var, attr in (
            ("RELAYBUS_TAGS", "tags"),
            ("RELAYBUS_CAPS", "capabilities"),
            ("RELAYBUS_CHANNELS", "channels"),
        ):
            if var in env:
                setattr(profile, attr, split_list(env[var]))
        return profile


def read_profiles(path: Path) -> dict[str, Any]:
    """The TOML document ``path`` (``profiles.toml``).

    Raises:
        FileNotFoundError: no such file. ProfileError: not valid TOML.
    """
    import tomllib  # here, not at the top: most hook commands never read profiles

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path} is not valid TOML: {exc}") from None


def auto_settings(table: Mapping[str, object], where: str) -> dict[str, list[str]]:
    """The :data:`AUTO_KEYS` a TOML table sets, as lists: a list of strings, a
    comma-separated string, or ``false`` / ``"0"`` / ``[]`` for none.

    Raises:
        ProfileError: a value of another type.
    """
    found: dict[str, list[str]] = {}
    for key in AUTO_KEYS:
        if key not in table:
            continue
        value = table[key]
        if value is False or (isinstance(value, str) and value.strip().lower() in OFF):
            value = []
        elif isinstance(value, str):
            value = split_list(value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ProfileError(f"{where}: {key} must be a list of strings, or false")
        found[key] = list(value)
    return found


def with_auto(profile: Profile, table: Mapping[str, object], where: str) -> Profile:
    """``profile`` with the :data:`AUTO_KEYS` ``table`` sets (see :func:`auto_settings`).

    Raises:
        ProfileError: see :func:`auto_settings`.
    """
    for key, value in auto_settings(table, where).items():
        setattr(profile, key, value)
    return profile


def load_profile(name: str, path: Path) -> Profile:
    """The table ``[NAME]`` (or ``[profiles.NAME]``) of the TOML file ``path``, over
    the file's top-level ``auto_tags`` and ``auto_capabilities``.

    Raises:
        ProfileError: no such file or table, invalid TOML, or a field of the wrong type.
    """
    try:
        doc = read_profiles(path)
    except FileNotFoundError:
        raise ProfileError(f"RELAYBUS_PROFILE={name} but there is no {path}") from None
    tables = doc.get("profiles", doc)
    table = tables.get(name) if isinstance(tables, dict) else None
    if not isinstance(table, dict):
        known = ", ".join(sorted(k for k, v in tables.items() if isinstance(v, dict))) or "none"
        raise ProfileError(f"no profile {name!r} in {path} (profiles: {known})")
    profile = with_auto(with_auto(Profile(), doc, str(path)), table, f"profile {name!r}")
    for key in ("agent", "label", "approval"):
        value = table.get(key)
        if value is not None and not isinstance(value, str):
            raise ProfileError(f"profile {name!r}: {key} must be a string")
        setattr(profile, key, value)
    if profile.approval is not None:
        profile.approval = check_approval(f"profile {name!r}: approval", profile.approval)
    for key in ("tags", "capabilities", "channels"):
        value = table.get(key, [])
        if isinstance(value, str):
            value = split_list(value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ProfileError(f"profile {name!r}: {key} must be a list of strings")
        setattr(profile, key, list(value))
    unknown = set(table) - {
        "agent",
        "label",
        "tags",
        "capabilities",
        "channels",
        "approval",
        *AUTO_KEYS,
    }
    if unknown:
        raise ProfileError(f"profile {name!r}: unknown keys {', '.join(sorted(unknown))}")
    return profile


def check_approval(what: str, value: str) -> str:
    """``value`` (spaces around it and case ignored) as one of :data:`APPROVAL_MODES`;
    ``what`` names where it came from in the error.

    Raises:
        ProfileError: not an approval mode.
    """
    mode = value.strip().lower()
    if mode not in APPROVAL_MODES:
        raise ProfileError(f"{what} is open, guarded or read-only, not {value!r}")
    return mode


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
