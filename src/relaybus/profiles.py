"""How a session presents itself: its profile (``profiles.toml`` and the
``RELAYBUS_*`` variables) and the automatic tags and capabilities it gets.

Like :mod:`relaybus.identity`, which builds a session's identity from these, this
module imports only the standard library: the hook commands load it on every call.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from .records import Record

# Not ``from typing import Any``: importing typing costs every hook command about
# 5 ms, and the annotations are never evaluated; type checkers treat it as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: The approval modes (``relaybus.models.Approval``'s values, kept literal here: the hook
#: commands load this module and never pydantic; a test keeps them equal).
APPROVAL_MODES = ("open", "guarded", "read-only")

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


class ProfileError(ValueError):
    """A profile that cannot be used: missing, or a malformed profiles.toml."""


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
