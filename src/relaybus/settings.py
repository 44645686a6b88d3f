"""Settings: one typed object for the relay, its clients and ``relaybus serve``.

A value has one name everywhere: the field ``Settings.stale_ttl``, the
environment variable ``RELAYBUS_STALE_TTL``, the key ``stale_ttl`` of a TOML
config file and, where there is one, the CLI option. Each field is taken from
the first of these that sets it:

1. an explicit argument (``Settings(stale_ttl=30)``, a CLI option);
2. the environment (``RELAYBUS_<FIELD>``);
3. ``config.toml`` in the relay folder in use (``RELAYBUS_DIR``, else the
   ``.relay/`` found like git, see :func:`find_relay_dir`);
4. the user's ``$XDG_CONFIG_HOME/relaybus/config.toml`` (default
   ``~/.config/relaybus/config.toml``);
5. the default.

Loading is cheap on purpose (a hook or a one-shot CLI command reads it): the
standard library only, ``tomllib`` only when a config file exists, and no
pydantic. docs/configuration.md lists every field (a test keeps them in step).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from .repository import repository_root

# Not ``typing.TYPE_CHECKING``: see relaybus/__init__.py (importing typing costs
# a hook a few ms); type checkers treat any ``TYPE_CHECKING`` name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Literal

    from .errors import InvalidInput

RELAY_DIRNAME = ".relay"
#: The file name of both config files (in the relay folder and in the user's config folder).
CONFIG_FILENAME = "config.toml"
ENV_PREFIX = "RELAYBUS_"

#: Room for a request's JSON around a message body of ``max_body_bytes``: field
#: names, a subject, meta and escaping (bytes).
ENVELOPE_BYTES = 16 * 1024


@dataclass(frozen=True)
class Spec:
    """How one setting is parsed and documented.

    Attributes:
        kind: the value's type: ``str``, ``Path``, ``int`` or ``float`` (from the
            field's annotation).
        optional: whether ``None`` (unset) is a value (the annotation ends in
            ``| None``); an empty environment variable then means ``None``.
        unit: what the number counts (``seconds``, ``bytes``…), ``""`` for text.
        doc: one sentence for docs/configuration.md.
        gt, ge, le: bounds of a number (above, at least, at most).
    """

    kind: type
    optional: bool
    unit: str
    doc: str
    gt: float | None = None
    ge: float | None = None
    le: float | None = None


#: The types a setting may have, by their name in an annotation.
_KINDS: dict[str, type] = {"str": str, "Path": Path, "int": int, "float": float}


def setting(
    default: Any,
    doc: str,
    *,
    unit: str = "",
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
    secret: bool = False,
) -> Any:
    """A field of :class:`Settings`: its default, its documentation and bounds
    (see :class:`Spec`); ``secret`` keeps the value out of ``repr`` (logs,
    tracebacks). The type, and whether ``None`` is a value, are the annotation's."""
    metadata = {"unit": unit, "doc": doc, "gt": gt, "ge": ge, "le": le}
    return field(default=default, repr=not secret, metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """relaybus configuration: ``Settings()`` reads it (see the module docstring
    for where from); ``Settings(field=value)`` overrides a field.

    Durations are seconds, sizes are bytes, retention is days.

    Raises (on construction):
        InvalidInput: a value of the wrong type or out of range (the message
            names the variable, or the file and key), an unknown key in a
            config file, or a config file that is not TOML.
    """

    # -- where the relay is -------------------------------------------------
    dir: Path | None = setting(
        None,
        "the relay folder holding relay.db (and config.toml); default: the .relay/ found like git",
    )
    database: str | None = setting(
        None, "a SQLAlchemy URL (sqlite:///… or postgresql://…); beats dir"
    )
    url: str | None = setting(
        None, "a relay server (relaybus serve) to talk to instead of a database"
    )
    token: str | None = setting(
        None,
        "the admin token of relaybus serve; for a client, the token it sends (admin or an agent's "
        "own)",
        secret=True,
    )
    workspace: str = setting("default", "the workspace every call acts in")
    agent: str | None = setting(None, "the agent a command acts as")
    # -- behaviour of the relay ---------------------------------------------
    stale_ttl: float = setting(
        90.0, "seconds without a heartbeat before an agent counts as offline", unit="seconds", gt=0
    )
    stuck_after: float = setting(
        60.0,
        "seconds a delivery may stay queued while its agent is online before it counts as stuck "
        "(relaybus agents, /metrics)",
        unit="seconds",
        gt=0,
    )
    lease_seconds: float = setting(600.0, "the default claim lease", unit="seconds", gt=0)
    pair_invite_seconds: float = setting(
        600.0, "a pair invite nobody answers expires after this", unit="seconds", gt=0
    )
    pair_offline_grace_seconds: float = setting(
        300.0,
        "an active pair ends when one of its agents stays offline (unseen) for longer than this",
        unit="seconds",
        gt=0,
    )
    max_body_bytes: int = setting(64 * 1024, "the largest message body (UTF-8)", unit="bytes", gt=0)
    retention_days: float = setting(
        30.0, "prune deletes messages and events older than this", unit="days", gt=0
    )
    agent_retention_days: float = setting(
        7.0, "prune deletes agents offline for longer than this", unit="days", gt=0
    )
    # -- the server (relaybus serve) ----------------------------------------
    host: str = setting(
        "127.0.0.1", "the address to listen on; beyond loopback it needs an admin token (token)"
    )
    port: int = setting(4850, "the TCP port (0 picks a free one)", ge=0, le=65535)
    metrics_token: str | None = setting(
        None,
        "a token that may read /metrics and nothing else; with it or an admin token set, /metrics "
        "needs one of the two, without either it is open (loopback only)",
        secret=True,
    )
    rate_limit: float | None = setting(
        None,
        "requests per second per token (or per client address without one); none: no limit",
        unit="requests/second",
        gt=0,
    )
    rate_burst: int = setting(
        50, "requests a token may make at once before rate_limit applies", unit="requests", ge=1
    )
    request_body_bytes: int | None = setting(
        None,
        "the largest request body before 413; none: room for a message of max_body_bytes (twice "
        "it, plus 16 KiB for the rest of the JSON)",
        unit="bytes",
        gt=0,
    )
    sse_heartbeat_seconds: float = setting(
        15.0, "how often an idle event stream gets a ping", unit="seconds", gt=0
    )
    longpoll_max_seconds: float = setting(
        300.0,
        "the longest ?wait= long-poll honoured; longer waits are cut to this",
        unit="seconds",
        gt=0,
    )
    token_cache_seconds: float = setting(
        1.0,
        "how long an agent token's lookup is reused: a token revoked through another replica "
        "keeps working this long at most; 0 looks every request's token up",
        unit="seconds",
        ge=0,
    )
    mcp_idle_seconds: float = setting(
        30 * 60.0,
        "an MCP session at /mcp with no request in flight for this long has ended (its agent goes "
        "offline)",
        unit="seconds",
        gt=0,
    )
    sweep_interval: float = setting(
        5.0,
        "seconds between background sweeps (lapsed leases, offline agents); 0 turns them off. In "
        "a cluster one replica runs each sweep",
        unit="seconds",
        ge=0,
    )
    daemon_idle_seconds: float = setting(
        600.0,
        "the warm local relay (one per relay folder, shared by commands, hooks and MCP "
        "sessions) exits after this long with no request in flight",
        unit="seconds",
        gt=0,
    )
    prune_interval: float = setting(
        3600.0,
        "seconds between background retention prunes (retention_days, agent_retention_days); 0 "
        "turns them off",
        unit="seconds",
        ge=0,
    )
    # -- integrations (external systems) ------------------------------------
    integrations: str | None = setting(
        None,
        "integrations to declare at server start, as a JSON list of objects like "
        "agent-relay-server's AGENT_RELAY_INTEGRATIONS (name, token, scopes, targets, channels, "
        "callbackUrl, secret, rateLimitPerMinute); see docs/integrations.md",
        secret=True,
    )
    integration_rate_limit: int = setting(
        120,
        "events per minute an integration may post unless it sets its own; every replica "
        "takes from the same budget",
        unit="events/minute",
        ge=1,
    )
    callback_max_attempts: int = setting(
        8,
        "attempts to post a callback before it is dead-lettered (relaybus integration replay "
        "sends it again)",
        unit="attempts",
        ge=1,
    )
    callback_timeout: float = setting(
        10.0, "seconds a callback receiver has to answer an attempt", unit="seconds", gt=0
    )
    callback_backoff: float = setting(
        2.0,
        "seconds before a failed callback's second attempt, doubled for each later one (at "
        "most an hour, with jitter)",
        unit="seconds",
        gt=0,
    )
    repeat_notice_seconds: float = setting(
        300.0,
        "a repeated integration event tells the task's holder (or its audience) at most once "
        "per this long",
        unit="seconds",
        ge=0,
    )
    # -- PostgreSQL ---------------------------------------------------------
    pool_size: int = setting(10, "connections each process keeps open", unit="connections", ge=1)
    pool_overflow: int = setting(
        20, "extra connections a process may open at peaks", unit="connections", ge=0
    )
    pool_timeout: float = setting(
        30.0, "seconds a call waits for a free connection before failing", unit="seconds", gt=0
    )

    if not TYPE_CHECKING:
        # At run time ``Settings(**explicit)`` loads the other sources too; type
        # checkers see the dataclass's own keyword-only ``__init__`` (one typed
        # parameter per field), which is what a call may pass.
        def __init__(self, **explicit: Any) -> None:
            for name, value in load(explicit).items():
                object.__setattr__(self, name, value)

    @classmethod
    def specs(cls) -> dict[str, tuple[Any, Spec]]:
        """``{field: (default, spec)}`` in declaration order (for docs and tests)."""
        return {f.name: (f.default, _spec_of(str(f.type), f.metadata)) for f in fields(cls)}

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Settings:
        """A copy with ``update``'s fields replaced (validated as arguments are);
        nothing is read again. The name is pydantic's, which this class replaced.

        Raises:
            InvalidInput: an unknown field, or a bad value.
        """
        new = object.__new__(Settings)
        new.__dict__.update(self.__dict__)
        specs = self.specs()
        for name, value in (update or {}).items():
            if name not in specs:
                raise _invalid(f"unknown setting {name!r}", setting=name)
            object.__setattr__(
                new, name, _parse(value, specs[name][1], f"setting {name}", "argument")
            )
        return new

    # -- what the server derives from them ------------------------------------

    @property
    def admin_token(self) -> str | None:
        """The server's admin token: :attr:`token`, ``None`` when unset or empty."""
        return self.token or None

    @property
    def auth_mode(self) -> Literal["open", "token"]:
        """``"token"`` when the server has an admin token, else ``"open"``."""
        return "open" if self.admin_token is None else "token"

    def body_limit(self) -> int:
        """The server's request body limit (bytes): :attr:`request_body_bytes`, or
        room for a message of :attr:`max_body_bytes` with its meta and JSON escaping."""
        if self.request_body_bytes is not None:
            return self.request_body_bytes
        return self.max_body_bytes * 2 + ENVELOPE_BYTES

    def check_bind(self) -> None:
        """Refuse to serve a non-loopback address without an admin token.

        Raises:
            InvalidInput: :attr:`host` is not a loopback address and there is no
                admin token, or a token is blank.
        """
        if self.admin_token is None and not is_loopback(self.host):
            raise _invalid(
                f"refusing to listen on {self.host} without an admin token: anyone who can "
                "reach it could act as any agent. Set RELAYBUS_TOKEN (or --token), or listen "
                "on 127.0.0.1",
                host=self.host,
            )
        if self.admin_token is not None and not self.admin_token.strip():
            raise _invalid("the admin token is empty")
        if self.metrics_token and not self.metrics_token.strip():
            raise _invalid("the metrics token is empty")


def load(explicit: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every field's value: ``explicit`` > environment > the relay folder's
    ``config.toml`` > the user's ``config.toml`` > default.

    The relay folder is ``dir`` from the arguments, the environment or the
    user's file, else :func:`find_relay_dir` of the cwd; its own file cannot
    set ``dir``.

    Returns:
        ``{field: value}`` for every field, parsed and checked.

    Raises:
        InvalidInput: see :class:`Settings`.
    """
    specs = Settings.specs()
    explicit = explicit or {}
    for name in explicit:
        if name not in specs:
            raise _invalid(f"unknown setting {name!r}", setting=name)
    env = os.environ
    user = _read_file(user_config_path(env), specs, allow_dir=True)
    local: dict[str, Any] = {}  # the relay folder's file, read once dir is known

    def pick(name: str) -> Any:
        spec = specs[name][1]
        variable = ENV_PREFIX + name.upper()
        if name in explicit:
            return _parse(explicit[name], spec, f"setting {name}", "argument")
        if variable in env:
            return _parse(env[variable], spec, variable, "environment")
        for found in (local, user):
            if name in found:
                return found[name]
        return specs[name][0]

    values = {"dir": pick("dir")}
    try:
        relay_dir = values["dir"] or find_relay_dir()
    except OSError:  # the cwd is gone: no relay folder, so no file of its own
        pass
    else:
        local.update(_read_file(relay_dir / CONFIG_FILENAME, specs, allow_dir=False))
    values.update((name, pick(name)) for name in specs if name != "dir")
    return values


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/relaybus/config.toml``, default ``~/.config/relaybus/``:
    the folder of ``profiles.toml`` too (:func:`relaybus.profiles.config_dir`)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".config"
    )
    return Path(base) / "relaybus" / CONFIG_FILENAME


def _read_file(
    path: Path, specs: dict[str, tuple[Any, Spec]], *, allow_dir: bool
) -> dict[str, Any]:
    """The settings in the TOML file at ``path``, parsed; ``{}`` when there is none.

    Raises:
        InvalidInput: not TOML, an unknown key, ``dir`` where it is not allowed,
            or a bad value (naming the file and the key).
    """
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise _invalid(f"cannot read {path}: {exc.strerror}", file=str(path)) from None
    import tomllib  # only when a file exists: most runs have none

    try:
        table = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _invalid(f"{path} is not valid TOML: {exc}", file=str(path)) from None
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in specs:
            raise _invalid(f"unknown setting {key!r} in {path}", file=str(path), key=key)
        if key == "dir" and not allow_dir:
            raise _invalid(
                f"{path} cannot set dir: it is read from the relay folder dir points at",
                file=str(path),
                key=key,
            )
        values[key] = _parse(value, specs[key][1], f"{key} in {path}", "file")
    return values


def _spec_of(annotation: str, metadata: Mapping[str, Any]) -> Spec:
    """The :class:`Spec` of a field annotated ``annotation`` (``"float"``, ``"Path | None"``:
    text, as ``from __future__ import annotations`` leaves it) made by :func:`setting`."""
    kind, _, rest = annotation.partition(" | ")
    return Spec(_KINDS[kind], rest == "None", **metadata)


def _parse(value: Any, spec: Spec, where: str, origin: str) -> Any:
    """``value`` as ``spec.kind``: from the ``"environment"`` (text), a ``"file"``
    (a TOML value) or an ``"argument"``.

    ``where`` names the source in the error: ``RELAYBUS_PORT``, ``port in
    /x/config.toml``, ``setting port``.

    Raises:
        InvalidInput: a value of the wrong type or out of its bounds.
    """
    text = origin == "environment"
    if value is None or (text and value == "" and spec.optional):
        if spec.optional:
            return None
        raise _invalid(f"invalid {where}: a value is required", setting=where)
    kind = spec.kind
    if kind is Path and isinstance(value, str | Path):
        return Path(value).expanduser() if origin == "file" else Path(value)
    if kind is str or kind is Path:
        if not isinstance(value, str):
            raise _invalid(f"invalid {where}: expected text, got {value!r}", setting=where)
        return value
    if isinstance(value, bool) or (isinstance(value, str) and not text):
        # Only the environment is text; a file or an argument gives a number.
        raise _invalid(f"invalid {where}: expected a number, got {value!r}", setting=where)
    parsed: int | float
    try:
        if kind is int:
            if isinstance(value, float):
                raise ValueError(value)
            parsed = int(value.strip()) if isinstance(value, str) else int(value)
        else:
            parsed = float(value.strip()) if isinstance(value, str) else float(value)
            if not math.isfinite(parsed):
                raise ValueError(value)
    except (TypeError, ValueError):
        noun = "a whole number" if kind is int else "a number"
        raise _invalid(f"invalid {where}: expected {noun}, got {value!r}", setting=where) from None
    unit = f" {spec.unit}" if spec.unit else ""
    if spec.gt is not None and not parsed > spec.gt:
        raise _invalid(f"invalid {where}: {parsed:g} is not above {spec.gt:g}{unit}", setting=where)
    if spec.ge is not None and not parsed >= spec.ge:
        raise _invalid(f"invalid {where}: {parsed:g} is below {spec.ge:g}{unit}", setting=where)
    if spec.le is not None and not parsed <= spec.le:
        raise _invalid(f"invalid {where}: {parsed:g} is above {spec.le:g}{unit}", setting=where)
    return parsed


def _invalid(message: str, **details: Any) -> InvalidInput:
    from .errors import InvalidInput  # errors imports typing; most loads raise nothing

    return InvalidInput(message, **details)


def find_relay_dir(start: Path | None = None) -> Path:
    """The relay directory for ``start`` (default: the cwd), found the way git finds
    its repository, and never above it.

    Inside a repository: the nearest ``.relay/`` between ``start`` and the
    repository root (the nearest ``.git``, folder or file), else the root's
    ``.relay``. Outside any repository: ``start/.relay`` only; a ``.relay/``
    further up is never used, so a stray one (say ``/.relay``) cannot take over
    the folders below it. ``RELAYBUS_DIR`` (:attr:`Settings.dir`) overrides this
    search entirely.

    Returns:
        the ``.relay`` directory path (it may not exist yet).
    """
    here = (start or Path.cwd()).resolve()
    root = repository_root(here)
    if root is None:
        return here / RELAY_DIRNAME
    for folder in (here, *here.parents):
        if (folder / RELAY_DIRNAME).is_dir():
            return folder / RELAY_DIRNAME
        if folder == root:
            break
    return root / RELAY_DIRNAME


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, ``127.x``, ``::1``)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    import ipaddress  # only the server asks

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything
