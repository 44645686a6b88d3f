"""``relaybus doctor``: is relaybus set up end to end, and if not, what fixes it.

Checks, each with the exact command that fixes a failure:

- the relay: the embedded store opens and its schema is at head, or the relay
  server (``RELAYBUS_URL``) answers ``/healthz`` and ``/v1/info`` with this
  relaybus version and accepts the token; also every other server a tool's
  config points at;
- every settings file of every tool: it parses the way the tool reads it (a
  file the tool cannot read is a failure with its line and column, relaybus
  in it or not);
- for each tool with a relaybus entry in any scope: the configured command
  exists, is executable and ``<command> --version`` says it is relaybus of this
  version;
- Claude Code: the hooks are in the scope's settings file and start a working
  relaybus, and no other hook there starts a program that does not exist; a
  project's ``.mcp.json`` server that still waits for approval;
- Gemini CLI: the project folder is trusted (else Gemini CLI starts no MCP server).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .. import __version__
from ..errors import RelayError
from .install import TOOLS, ConfigError, Context, Tool
from .install.claude import SettingsFile, project_approval
from .install.files import read_text

if TYPE_CHECKING:
    from ..settings import Settings

Status = Literal["ok", "warn", "fail"]
#: The name of Gemini CLI's folder trust check.
TRUST_CHECK = "Gemini CLI (folder trust)"

#: Seconds a configured command gets to answer ``--version``.
VERSION_TIMEOUT = 30.0
#: What ``relaybus --version`` prints first (click's ``"%(prog)s, version %(version)s"``).
_VERSION = re.compile(r"relaybus,?\s+version\s+(\S+)")


@dataclass
class Check:
    """One finding: ``ok``, ``warn`` (works, but needs attention) or ``fail``,
    what was found, and the command that fixes it."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def run_checks(settings: Settings, ctx: Context) -> list[Check]:
    """Every check, in the order shown: relay first, then each installed tool."""
    checks = [
        check_server(settings.url, settings.token)
        if settings.url
        else check_embedded(settings, ctx.project)
    ]
    probe = CommandProbe(ctx.env)
    urls: dict[str, str] = {}
    found_any = False
    for tool in TOOLS.values():
        for scope in tool.scopes:
            found, tool_checks, url = check_tool(tool, scope, ctx, probe)
            found_any = found_any or found
            # A file two scopes share (~/.claude.json) or the folder trust of
            # Gemini CLI is reported once.
            checks += [c for c in tool_checks if c not in checks]
            if url and url != settings.url:
                urls.setdefault(url, f"{tool.title} ({scope})")
    for url, user in urls.items():
        server = check_server(url, settings.token)
        server.name = f"relay for {user}"
        checks.insert(1, server)
    service = check_service(ctx.env)
    if service is not None:
        checks.insert(1, service)
    if not found_any:
        checks.append(
            Check(
                "tools",
                "warn",
                f"relaybus is not set up in any coding tool for {ctx.project}",
                "relaybus install claude (or codex, gemini, cursor)",
            )
        )
    return checks


def check_service(env: Mapping[str, str]) -> Check | None:
    """The user service of ``relaybus service install``, if one is installed: it
    answers ``/healthz`` (ok) or not (warn); ``None`` when none is installed."""
    from . import service

    try:
        manager = service.this_manager()
    except RelayError:
        return None
    found = service.status(manager, env)
    if not found["installed"]:
        return None
    name = f"relay service ({manager})"
    if found["healthy"]:
        return Check(name, "ok", f"{found['state']}, answering at {found['url']}")
    return Check(
        name,
        "warn",
        f"{found['state']}: nothing answers at {found['url']} ({found['unit']})",
        "relaybus service start (and relaybus service logs to see why it stopped)",
    )


def check_server(url: str, token: str | None) -> Check:
    """The relay server answers, runs this version and takes the token."""
    from ..client.transport import check_url, new_client

    try:
        base = check_url(url)
    except RelayError as exc:
        return Check("relay", "fail", exc.message, "export RELAYBUS_URL=http://127.0.0.1:4850")
    import httpx

    start = "start it with `relaybus serve`, or `unset RELAYBUS_URL` for the embedded relay"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with new_client(base) as client:
            health = client.get("/healthz")
            info = client.get("/v1/info", headers=headers)
    except httpx.HTTPError as exc:
        return Check("relay", "fail", f"cannot reach the relay server at {base}: {exc}", start)
    if health.status_code != 200:
        return Check("relay", "fail", f"{base}/healthz answered {health.status_code}", start)
    if info.status_code == 401:
        detail = "refused the token in RELAYBUS_TOKEN" if token else "wants a token"
        fix = "export RELAYBUS_TOKEN=<the server's admin token, or an agent's token>"
        return Check("relay", "fail", f"the relay server at {base} {detail}", fix)
    if info.status_code != 200:
        return Check("relay", "fail", f"{base}/v1/info answered {info.status_code}", start)
    data = info.json()
    version = data.get("version")
    if version != __version__:
        return Check(
            "relay",
            "fail",
            f"the relay server at {base} runs relaybus {version}, this is relaybus {__version__}",
            "install the same relaybus on both sides (pip install -U relaybus), then restart "
            "`relaybus serve`",
        )
    who = f", token acts as {data['agent']}" if data.get("agent") else ""
    return Check(
        "relay",
        "ok",
        f"relay server at {base}: relaybus {version}, {data.get('backend')}, "
        f"auth {data.get('auth')}{who}",
    )


def check_embedded(settings: Settings, project: Path) -> Check:
    """The embedded store: a SQLite file that passes ``PRAGMA quick_check``, private
    to its owner, with the schema at head. Nothing is created, migrated or changed
    (the file is opened read-only). A PostgreSQL ``database`` is opened to read
    its schema revision."""
    import sqlalchemy as sa

    from ..store import Store, find_relay_dir, sqlite_url
    from ..store.files import examine
    from ..store.migrate import HEAD

    if settings.database:
        url = settings.database
        path = Path(sa.make_url(url).database or "") if url.startswith("sqlite") else None
    else:
        folder = Path(os.path.abspath(settings.dir or find_relay_dir(project)))
        url, path = sqlite_url(folder), folder / "relay.db"
    if path is not None and not os.path.lexists(path):
        parent = next(p for p in (path.parent, *path.parent.parents) if p.exists())
        if not os.access(parent, os.W_OK | os.X_OK):
            return Check(
                "relay",
                "fail",
                f"cannot create {path}: {parent} is not writable",
                "export RELAYBUS_DIR=<a folder you can write>",
            )
        return Check(
            "relay",
            "ok",
            f"no relay at {path} yet: `relaybus init` creates it (as do register, run, mcp "
            "and serve)",
        )
    aside = (
        f"restore {path} from a backup, or move it aside and start a new, empty relay: "
        f"mv {path} {path}.broken && relaybus init"
    )
    loose: list[str] = []
    if path is not None:
        try:
            found = examine(path)
        except RelayError as exc:
            return Check("relay", "fail", exc.message, aside)
        if found.damage:
            more = f" (and {len(found.damage) - 1} more)" if len(found.damage) > 1 else ""
            return Check(
                "relay",
                "fail",
                f"the relay at {path} is damaged: SQLite's quick_check found "
                f"{found.damage[0]}{more}",
                aside,
            )
        where, revision, loose = str(path), found.revision, found.loose
    else:
        try:
            store = Store(url, settings=settings, migrate_on_open=False, create=False)
        except RelayError as exc:
            return Check("relay", "fail", exc.message, "relaybus migrate")
        where = store.url.render_as_string(hide_password=True)
        try:
            with store.read() as conn:
                revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except sa.exc.SQLAlchemyError as exc:
            reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
            return Check(
                "relay", "fail", f"cannot read the relay at {where}: {reason}", "relaybus migrate"
            )
        finally:
            store.close()
    if revision is None:
        return Check(
            "relay",
            "fail",
            f"{where} is a SQLite database without relaybus's schema",
            f"relaybus migrate (if it is meant to be the relay), or {aside}",
        )
    if revision == HEAD:
        if loose:
            folder = Path(where).parent
            return Check(
                "relay",
                "warn",
                f"the relay at {where} is readable by other users ({', '.join(loose)})",
                f"chmod 700 {folder} && chmod 600 {folder}/relay.db* (relaybus does this "
                "when it next opens the relay)",
            )
        return Check("relay", "ok", f"embedded relay at {where}: schema {HEAD} (current)")
    from alembic.script import ScriptDirectory

    from ..store.migrate import alembic_config

    known = {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if revision in known:
        return Check(
            "relay",
            "fail",
            f"the relay at {where} is at schema {revision}, this relaybus needs {HEAD}",
            "relaybus migrate",
        )
    return Check(
        "relay",
        "fail",
        f"the relay at {where} has schema {revision}, newer than this relaybus ({HEAD})",
        "pip install -U relaybus",
    )


class CommandProbe:
    """Runs ``<command> --version`` once per command and remembers the verdict:
    None when it is a working relaybus of this version, else the problem."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self._seen: dict[str, str | None] = {}

    def problem(self, command: object) -> str | None:
        """What is wrong with ``command`` as the relaybus to start, or None."""
        if not isinstance(command, str) or not command:
            return "has no command"
        if command not in self._seen:
            self._seen[command] = self._probe(command)
        return self._seen[command]

    def _probe(self, command: str) -> str | None:
        exe = (
            command if os.path.isabs(command) else shutil.which(command, path=self.env.get("PATH"))
        )
        if exe is None or not os.path.exists(exe):
            return f"starts {command}, which does not exist"
        if not os.path.isfile(exe) or not os.access(exe, os.X_OK):
            return f"starts {command}, which is not an executable file"
        try:
            done = subprocess.run(
                [exe, "--version"],
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=VERSION_TIMEOUT,
                env=self.env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"starts {command}, which did not answer --version in {VERSION_TIMEOUT:g} s"
        except OSError as exc:
            return f"starts {command}, which cannot run: {exc.strerror}"
        lines = done.stdout.strip().splitlines()
        found = _VERSION.match(lines[0].strip()) if lines else None
        if found is None:
            said = " ".join((lines[0] if lines else done.stderr).split())[:120]
            answer = f"says: {said}" if said else "says nothing"
            if done.returncode != 0:
                answer = f"failed (exit {done.returncode})" + (f": {said}" if said else "")
            return f"starts {exe}, which is not relaybus (`{command} --version` {answer})"
        if done.returncode != 0:
            return f"starts {command}, whose --version failed (exit {done.returncode})"
        if found.group(1) != __version__:
            return f"starts {command}, which is relaybus {found.group(1)}, not {__version__}"
        return None


def check_tool(
    tool: Tool, scope: str, ctx: Context, probe: CommandProbe
) -> tuple[bool, list[Check], str | None]:
    """Checks of ``tool`` in ``scope``: (whether relaybus is set up there at all,
    the checks, the RELAYBUS_URL its entry sets)."""
    name = f"{tool.title} ({scope})"
    fix = _install_command(tool, scope, ctx)
    entry: dict[str, Any] | None = None
    entry_file: Path | None = None
    hooks: dict[str, list[str]] | None = None
    hooks_file: Path | None = None
    others: list[tuple[str, str]] = []
    checks: list[Check] = []
    for f in tool.files(scope, ctx):
        try:
            text = read_text(f.path)
            if text is None:
                continue
            found_entry = f.server_entry(text)
            found_hooks = f.hook_commands(text)
            if isinstance(f, SettingsFile):
                others = f.other_hooks(text)
        except ConfigError as exc:
            # The tool cannot read the file either (Claude Code drops the whole
            # settings file, say), relaybus's part in it or not.
            reason = exc.details.get("reason") or exc.message
            checks.append(
                Check(
                    tool.title,
                    "fail",
                    f"{reason}: {tool.title} cannot read it",
                    f"fix {f.path} by hand, then run `relaybus doctor` again",
                )
            )
            continue
        except OSError as exc:
            checks.append(Check(name, "fail", f"cannot read {f.path}: {exc.strerror}", None))
            continue
        if found_entry is not None:
            entry, entry_file = found_entry, f.path
        if found_hooks is not None:
            hooks_file = f.path
            hooks = found_hooks if any(found_hooks.values()) else None
    if entry is None and hooks is None:
        return bool(checks), checks, None
    if entry is None:
        checks.append(Check(name, "fail", "hooks are set up but the MCP server entry is gone", fix))
    else:
        checks.append(_check_entry(name, entry, entry_file, probe, fix))
    if hooks_file is not None:
        checks.append(_check_hooks(name, hooks or {}, hooks_file, probe, fix))
        checks += _check_other_hooks(name, others, hooks_file, ctx.env)
    if tool.name == "claude" and scope == "project" and entry is not None:
        checks.append(_check_approval(name, ctx))
    if tool.name == "gemini" and entry is not None:
        checks.append(check_gemini_trust(ctx, scope))
    env = entry.get("env") if entry else None
    url = env.get("RELAYBUS_URL") if isinstance(env, dict) else None
    return True, checks, url if isinstance(url, str) else None


def _check_entry(
    name: str, entry: dict[str, Any], path: Path | None, probe: CommandProbe, fix: str
) -> Check:
    command, args = entry.get("command"), entry.get("args")
    if args != ["mcp"]:
        shown = " ".join(shlex.quote(str(a)) for a in args) if isinstance(args, list) else args
        return Check(name, "fail", f"the MCP server in {path} runs `{command} {shown}`", fix)
    problem = probe.problem(command)
    if problem is not None:
        return Check(name, "fail", f"the MCP server in {path} {problem}", fix)
    return Check(name, "ok", f"MCP server in {path}: {command} mcp (relaybus {__version__})")


def _check_hooks(
    name: str, hooks: dict[str, list[str]], path: Path, probe: CommandProbe, fix: str
) -> Check:
    missing = [event for event, commands in hooks.items() if not commands]  # the file's own events
    if missing:
        return Check(name, "fail", f"hooks missing in {path}: {', '.join(missing)}", fix)
    for commands in hooks.values():
        for command in commands:
            # Claude Code runs a hook through the shell: ~ and $HOME are expanded.
            word = shlex.split(command)[0]
            problem = probe.problem(_expand(word, probe.env) or word)
            if problem is not None:
                return Check(name, "fail", f"a hook in {path} {problem}", fix)
    return Check(name, "ok", f"hooks for {len(hooks)} events in {path}")


def _check_other_hooks(
    name: str, hooks: list[tuple[str, str]], path: Path, env: Mapping[str, str]
) -> list[Check]:
    """A warning for each hook whose program is a path that does not exist
    (Claude Code runs every hook of an event and reports each failing one)."""
    checks = []
    for event, command in hooks:
        try:
            words = shlex.split(command)
        except ValueError:
            continue
        program = _expand(words[0], env) if words else None
        if program is None or "/" not in program or os.path.exists(program):
            continue  # a shell word or a command on PATH: the shell finds it or says so
        checks.append(
            Check(
                name,
                "warn",
                f"a {event} hook in {path} starts {program}, which does not exist",
                f"fix or remove that hook in {path}",
            )
        )
    return checks


def _expand(word: str, env: Mapping[str, str]) -> str | None:
    """``word`` with ``~`` and ``$VARS`` from ``env`` expanded; None if one is unset."""
    if word.startswith("~/"):
        home = env.get("HOME")
        if not home:
            return None
        word = home + word[1:]
    unset = False

    def value(m: re.Match[str]) -> str:
        nonlocal unset
        found = env.get(m.group(1) or m.group(2))
        unset = unset or found is None
        return found or ""

    word = re.sub(r"\$\{(\w+)\}|\$(\w+)", value, word)
    return None if unset else word


def check_gemini_trust(ctx: Context, scope: str) -> Check:
    """Gemini CLI trusts the project folder (or has folder trust off); the fix
    trusts it along with the install in ``scope``."""
    from .install.gemini import trust_hint

    hint = trust_hint(ctx)
    if hint is None:
        return Check(TRUST_CHECK, "ok", f"Gemini CLI starts MCP servers in {ctx.project}")
    fix = f"relaybus install gemini --scope {scope} --trust"
    if ctx.project != Path.cwd().resolve():
        fix += f" --project {shlex.quote(str(ctx.project))}"
    return Check(TRUST_CHECK, "warn", hint, fix)


def _check_approval(name: str, ctx: Context) -> Check:
    state = project_approval(ctx)
    if state == "approved":
        return Check(name, "ok", f"relaybus from {ctx.project / '.mcp.json'} is approved")
    if state == "declined":
        return Check(
            name,
            "fail",
            f"relaybus from {ctx.project / '.mcp.json'} was declined in Claude Code",
            f"start `claude` in {ctx.project}, open /mcp and enable relaybus",
        )
    return Check(
        name,
        "warn",
        "Claude Code connects servers from a project's .mcp.json only after you approve them",
        f"start `claude` in {ctx.project} and accept relaybus when asked (or approve it in /mcp)",
    )


def _install_command(tool: Tool, scope: str, ctx: Context) -> str:
    command = f"relaybus install {tool.name} --scope {scope}"
    if tool.uses_project(scope) and ctx.project != Path.cwd().resolve():
        command += f" --project {shlex.quote(str(ctx.project))}"
    return command


def failed(checks: Iterable[Check]) -> bool:
    """Whether any check failed (warnings do not count)."""
    return any(c.status == "fail" for c in checks)
