"""The modules the hot commands import: each command is a whole process, and every
module it imports is paid for on every call (``bench/cli.py`` prints what that costs).

Each case runs the real console entry point in a fresh interpreter under
``python -X importtime``, on a SQLite relay, and reads ``sys.modules`` after the
command. A forbidden module fails the case with the chain of imports that pulled it
in (from ``-X importtime``), so the message says which import to make lazy.

Python imports a module once, so only the first importer of a module shows: the
chain names the import to move. ``asyncio`` and ``ssl`` (``asyncio`` imports
``ssl``) are allowed only when SQLAlchemy imported them, which it does on ``import
sqlalchemy``; ``email`` only through ``importlib.metadata``, which pydantic (its plugin
lookup, on the first model it builds) or SQLAlchemy (on ``import sqlalchemy``, when
pydantic has not built a model yet) imports. Commands that talk to the warm local relay
(issue 15) will drop those too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relaybus import Relay
from relaybus.client import warm
from tests.tools.hookutil import hook_env, log_lines, payload

#: Generous: one CLI call on a loaded CI machine.
CALL_TIMEOUT = 60.0

#: Runs the console script's ``main()`` in-process with the arguments given as JSON in
#: ``argv[1]``, then writes the exit code and ``sorted(sys.modules)`` to the file named
#: by ``argv[2]`` (stdout is the command's own).
PROBE = """
import gc, json, os, sys
args, out = json.loads(sys.argv[1]), sys.argv[2]
sys.argv = ["relaybus", *args]


def dump(code, at_once):
    with open(out, "w", encoding="utf-8") as f:
        json.dump(
            {
                "code": code,
                "modules": sorted(sys.modules),
                "frozen": gc.get_freeze_count(),
                "collecting": gc.isenabled(),
                "at_once": at_once,
                "plugins": getattr(sys.modules.get("pydantic.plugin._loader"), "_plugins", None)
                is not None,
            },
            f,
        )


exit_now = os._exit


def leave(code):  # a hot command ends the process at once (relaybus.cli.leave)
    dump(code, True)
    exit_now(0)  # the code is in the file, as below


os._exit = leave
from relaybus.entry import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
dump(code, False)
"""

#: Never imported by a hot command: the server, network and MCP stacks, migrations.
NEVER = (
    "httpx",
    "httpcore",
    "fastapi",
    "starlette",
    "uvicorn",
    "mcp",
    "anyio",
    "alembic",
    "rich",
    "sqlalchemy.dialects.postgresql",  # the relay here is SQLite
    "relaybus.server",
    "relaybus.mcp",
    "relaybus.runtime",
    "relaybus.workflows",
    "relaybus.tools.install",
    "relaybus.client.aio",
)
#: Other commands' modules, which a command does not import (help lists them all).
OTHER_COMMANDS = (
    "relaybus.cli.watch",
    "relaybus.cli.server",
    "relaybus.cli.run",
    "relaybus.cli.tmux",
)
#: Imported only by the third-party package named (see the module docstring).
ONLY_VIA = {
    "asyncio": ("sqlalchemy",),
    "ssl": ("sqlalchemy",),
    "email": ("pydantic", "sqlalchemy"),
}
#: Packages an in-process hot command puts in ``sys.modules`` without running their
#: body (:mod:`relaybus.cli.deferred`), with what that body would import.
DEFERRED = {
    "asyncio": ("asyncio.base_events", "asyncio.events", "ssl", "concurrent.futures"),
    "importlib.metadata": ("importlib.metadata._meta", "email", "zipfile", "csv"),
}
#: Not imported at all by a command that does not open the relay through the stack.
STACK = ("sqlalchemy", "pydantic", *ONLY_VIA)


@dataclass(frozen=True)
class Imports:
    """What one probed command did: its exit code, output, modules and import log."""

    code: int
    out: str
    err: str
    modules: frozenset[str]
    importtime: str
    #: Objects the garbage collector ignores at the end (``gc.get_freeze_count()``),
    #: and whether it was running.
    frozen: int = 0
    collecting: bool = True
    #: Whether the command ended the process at once (``os._exit``, no teardown).
    at_once: bool = False
    #: Whether pydantic looked its plugins up (every distribution's entry points).
    plugins: bool = False

    def has(self, name: str) -> bool:
        """Whether module ``name`` (or a submodule of it) was imported."""
        return any(m == name or m.startswith(name + ".") for m in self.modules)

    def chain(self, name: str) -> list[str]:
        """The first import of ``name`` (or of a submodule), then its importers,
        innermost first, from the ``-X importtime`` log."""
        rows: list[tuple[int, str]] = []
        for line in self.importtime.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            field = line.split("|")[2][1:]
            rows.append(((len(field) - len(field.lstrip(" "))) // 2, field.strip()))
        # The package's own line if it has one (it follows its submodules' lines).
        exact = [i for i, (_, module) in enumerate(rows) if module == name]
        inner = [i for i, (_, module) in enumerate(rows) if module.startswith(name + ".")]
        for i in exact[:1] or inner[:1]:
            depth, module = rows[i]
            found = [module]
            # importtime prints a module after what it imported, one level deeper:
            # the importer is the next line below at a lower level.
            for above, importer in rows[i + 1 :]:
                if above < depth:
                    found.append(importer)
                    depth = above
            return found
        return [name]

    def why(self, name: str) -> str:
        return " <- ".join(self.chain(name))

    def ran(self, name: str) -> bool:
        """Whether the body of module ``name`` itself ran (it is in the import log): a
        package put in ``sys.modules`` before its body runs
        (:mod:`relaybus.cli.deferred`) has not, even when its submodules have."""
        return any(
            line.split("|")[2].strip() == name
            for line in self.importtime.splitlines()
            if line.startswith("import time:") and "self [us]" not in line
        )


def probe(
    args: list[str], env: dict[str, str], cwd: Path, tmp_path: Path, stdin: str = ""
) -> Imports:
    """Run ``relaybus ARGS`` under :data:`PROBE` and ``-X importtime``."""
    out = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE, json.dumps(args), str(out)],
        input=stdin,
        capture_output=True,
        encoding="utf-8",
        cwd=cwd,
        env=env,
        timeout=CALL_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0 and out.exists(), proc.stderr[-2000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    log = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    err = "\n".join(
        line for line in proc.stderr.splitlines() if not line.startswith("import time:")
    )
    return Imports(
        result["code"],
        proc.stdout,
        err,
        frozenset(result["modules"]),
        "\n".join(log),
        result["frozen"],
        result["collecting"],
        result["at_once"],
        result["plugins"],
    )


def forbidden(imports: Imports, *, stack: bool, listing: bool = False) -> list[str]:
    """The forbidden modules ``imports`` holds, each with its import chain.
    ``stack``: the command opens the relay through SQLAlchemy and pydantic;
    ``listing``: it lists every command (help)."""
    never = NEVER if listing else (*NEVER, *OTHER_COMMANDS)
    problems = [imports.why(name) for name in never if imports.has(name)]
    for name, via in ONLY_VIA.items():
        if not imports.has(name):
            continue
        if name in DEFERRED and not imports.ran(name):
            continue  # its package body never ran: see relaybus.cli.deferred
        chain = imports.chain(name)
        excused = {n.split(".")[0] for n in (*ONLY_VIA, "importlib")}
        importer = next((m for m in chain if m.split(".")[0] not in excused), "")
        if not stack or importer.split(".")[0] not in via:
            problems.append(" <- ".join(chain))
    if not stack:
        problems += [
            imports.why(name) for name in STACK if imports.has(name) and name not in ONLY_VIA
        ]
    return problems


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A relay in ``tmp_path/relay`` with alice and bob (bob has one message from alice);
    the environment of a Claude Code session whose ``relaybus mcp`` is not running."""
    with Relay.open(dir=tmp_path / "relay") as relay:
        alice = relay.register("alice", pid=None)
        relay.register("bob", pid=None)
        alice.send("bob", "the schema is merged")
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    environ = hook_env(tmp_path, runtime, "imports-session")
    environ.pop("PYTHONPATH", None)
    return environ


EMBEDDED = {
    "agents": (["agents"], "bob"),
    "send": (["--as", "alice", "send", "--to", "bob", "hello"], "sent #2 to bob"),
    "inbox --peek": (["--as", "bob", "inbox", "--peek"], "the schema is merged"),
    "hook --inline": (["hook", "post-tool-use", "--inline"], ""),
}


@pytest.mark.parametrize("name", list(EMBEDDED))
def test_an_embedded_command_imports_no_server_network_or_postgresql_stack(
    name: str, env: dict[str, str], tmp_path: Path
) -> None:
    args, shows = EMBEDDED[name]
    stdin = json.dumps(payload("post-tool-use", cwd=str(tmp_path))) if args[0] == "hook" else ""
    imports = probe(args, env, tmp_path, tmp_path, stdin)

    assert imports.code == 0 and shows in imports.out, imports.err
    assert imports.has("sqlalchemy")  # it did open the relay
    problems = forbidden(imports, stack=True)
    assert not problems, f"relaybus {name} imported:\n" + "\n".join(problems)
    assert log_lines(tmp_path) == []


#: Never imported by a hot command that opens the relay in its own process: the API's
#: request and answer bodies (the SDK parses none embedded).
IN_PROCESS_HOT_NEVER = ("relaybus.wire",)


@pytest.mark.parametrize("name", ["agents", "send", "inbox --peek"])
def test_an_embedded_hot_command_imports_no_api_bodies_and_freezes_what_it_loaded(
    name: str, env: dict[str, str], tmp_path: Path
) -> None:
    args, shows = EMBEDDED[name]
    imports = probe(args, env, tmp_path, tmp_path)

    assert imports.code == 0 and shows in imports.out, imports.err
    assert imports.has("relaybus.service")  # it opened the relay in this process
    problems = [imports.why(name) for name in IN_PROCESS_HOT_NEVER if imports.has(name)]
    assert not problems, f"relaybus {name} imported:\n" + "\n".join(problems)
    # The stack it loaded is out of the collector's reach, and the collector runs again.
    assert imports.frozen > 10_000 and imports.collecting
    # pydantic did not scan the installed distributions for plugins, and the process
    # ended without tearing the interpreter down.
    assert not imports.plugins
    assert imports.at_once
    # SQLAlchemy imported asyncio, whose package body (event loops, ssl, ...) never ran.
    for package, body in DEFERRED.items():
        problems = [imports.why(name) for name in body if imports.has(name)]
        assert not imports.ran(package) and not problems, problems


def test_the_cli_called_inside_a_program_leaves_its_garbage_collector_alone(
    env: dict[str, str], tmp_path: Path
) -> None:
    code = (
        "import gc, sys\n"
        "from relaybus.cli import main\n"
        "try:\n"
        "    main(['agents'])\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, gc.get_freeze_count(), gc.isenabled())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        encoding="utf-8",
        cwd=tmp_path,
        env=env,
        timeout=CALL_TIMEOUT,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr
    assert "bob" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "0 0 True"


@pytest.mark.parametrize("args", [["--help"], ["agents", "--help"]], ids=" ".join)
def test_help_imports_neither_sqlalchemy_nor_pydantic_nor_asyncio(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    imports = probe(args, env, tmp_path, tmp_path)

    assert imports.code == 0 and "Usage:" in imports.out, imports.err
    problems = forbidden(imports, stack=False, listing=args == ["--help"])
    assert not problems, f"relaybus {' '.join(args)} imported:\n" + "\n".join(problems)
    assert log_lines(tmp_path) == []


#: All of relaybus the hook imports without ``relaybus mcp`` (the rest is the standard
#: library, see :mod:`relaybus.tools.hooks.command`); ``relaybus.client.warm`` only
#: when there is a store, to look for its warm relay.
HOOK_MODULES = {
    "relaybus",
    "relaybus.client",
    "relaybus.client.warm",
    "relaybus.entry",
    "relaybus.identity",
    "relaybus.profiles",
    "relaybus.records",
    "relaybus.repository",
    "relaybus.tools",
    "relaybus.tools.hooks",
    "relaybus.tools.hooks.command",
    "relaybus.tools.hooks.direct",
    "relaybus.tools.hooks.ledger",
}


def test_the_hook_without_relaybus_mcp_imports_only_the_standard_library(
    env: dict[str, str], tmp_path: Path
) -> None:
    # PostToolUse: the one event that starts no background process when no mail waits
    stdin = json.dumps(payload("post-tool-use", cwd=str(tmp_path)))
    imports = probe(["hook", "post-tool-use"], env, tmp_path, tmp_path, stdin)

    assert imports.code == 0, imports.err
    problems = forbidden(imports, stack=False)
    problems += [
        imports.why(name)
        for name in ("click", "typing", "dataclasses", "inspect")
        if imports.has(name)
    ]
    problems += [
        imports.why(name)
        for name in sorted(imports.modules)
        if name.startswith("relaybus") and name not in HOOK_MODULES
    ]
    assert not problems, "relaybus hook post-tool-use imported:\n" + "\n".join(problems)
    # it took its path without relaybus mcp (reading the mail itself), and nothing failed
    [line] = log_lines(tmp_path)
    assert "no answer from the session's relaybus mcp" in line and "reading mail here" in line


def test_the_import_check_names_the_chain_of_an_eager_import(
    env: dict[str, str], tmp_path: Path
) -> None:
    # An eager import that runs before the command, as one at the top of a command's
    # module would: a sitecustomize module on PYTHONPATH (the relaybus package itself
    # stays the real one). asyncio imported by it, not by SQLAlchemy, is caught too.
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "eager.py").write_text("import asyncio\nimport httpx\n", encoding="utf-8")
    (shim / "sitecustomize.py").write_text("import eager\n", encoding="utf-8")
    imports = probe(["agents"], {**env, "PYTHONPATH": str(shim)}, tmp_path, tmp_path)

    assert imports.code == 0, imports.err
    problems = forbidden(imports, stack=True)
    assert "asyncio <- eager <- sitecustomize <- site" in problems, problems
    assert "httpx <- eager <- sitecustomize <- site" in problems, problems


@pytest.fixture
def warm_env(env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """``env`` with the warm relay allowed and running; it is stopped at the end."""
    folder = tmp_path / "relay"
    warm.ensure(folder)
    yield {k: v for k, v in env.items() if k != "RELAYBUS_DAEMON"}
    warm.stop(folder)


#: Never imported by a command that talks to the warm relay: the store and service
#: layers, SQLAlchemy, and what it or an HTTP client would bring (pydantic stays for the
#: commands that go through the SDK, which parses the answers into its models).
WARM_NEVER = (
    *NEVER,
    *OTHER_COMMANDS,
    "sqlalchemy",
    "asyncio",
    "ssl",
    "http.client",
    "relaybus.store",
    "relaybus.service",
)


@pytest.mark.parametrize("name", list(EMBEDDED))
def test_a_command_through_the_warm_relay_imports_no_store_nor_network_stack(
    name: str, warm_env: dict[str, str], tmp_path: Path
) -> None:
    args, shows = EMBEDDED[name]
    stdin = json.dumps(payload("post-tool-use", cwd=str(tmp_path))) if args[0] == "hook" else ""
    imports = probe(args, warm_env, tmp_path, tmp_path, stdin)

    assert imports.code == 0 and shows in imports.out, imports.err
    assert imports.has("relaybus.client.warm_backend")  # it did use the warm relay
    problems = [imports.why(name) for name in WARM_NEVER if imports.has(name)]
    assert not problems, f"relaybus {name} imported:\n" + "\n".join(problems)
    assert log_lines(tmp_path) == []


def test_the_hook_reading_through_the_warm_relay_imports_only_the_standard_library(
    warm_env: dict[str, str], tmp_path: Path
) -> None:
    stdin = json.dumps(payload("post-tool-use", cwd=str(tmp_path)))
    imports = probe(["hook", "post-tool-use"], warm_env, tmp_path, tmp_path, stdin)

    # the session's agent is not registered yet: the relay says so, no mail, no file read
    assert (imports.code, imports.out) == (0, ""), imports.err
    problems = forbidden(imports, stack=False)
    problems += [
        imports.why(name)
        for name in ("click", "typing", "dataclasses", "inspect", "http.client", "sqlite3")
        if imports.has(name)
    ]
    problems += [
        imports.why(name)
        for name in sorted(imports.modules)
        if name.startswith("relaybus") and name not in HOOK_MODULES
    ]
    assert not problems, "relaybus hook post-tool-use imported:\n" + "\n".join(problems)


#: The hot commands through the warm relay (``relaybus.client.warm_json``): args, exit
#: code, and what stdout shows. The refusals too (an unknown task, an unknown agent):
#: the relay's problem documents become errors without the SDK.
WARM_HOT = {
    "agents": (["agents"], 0, "bob"),
    "agents --json": (["agents", "--json"], 0, '"id": "bob"'),
    "send": (["--as", "alice", "send", "--to", "bob", "hello"], 0, "sent #2 to bob"),
    "inbox --peek": (["--as", "bob", "inbox", "--peek"], 0, "the schema is merged"),
    "inbox --json": (["--as", "bob", "inbox", "--json"], 0, '"body": "the schema is merged"'),
    "reply": (["--as", "bob", "reply", "1", "merged here too"], 0, "replied #2 to alice"),
    "tasks": (["--as", "bob", "tasks", "--json"], 0, "[]"),
    "status": (["status", "1"], 0, "bob"),
    "heartbeat": (["--as", "bob", "heartbeat", "--status", "busy"], 0, "bob is busy"),
    "claim (unknown task)": (["--as", "bob", "claim", "7"], 2, ""),
    "send (unknown agent)": (["--as", "nobody", "send", "--to", "bob", "hi"], 2, ""),
}

#: Never imported by a hot command through the warm relay: besides :data:`WARM_NEVER`,
#: pydantic and what is built on it (the SDK's models, wire bodies, calls and clients),
#: and what the warm client does without (bench/cli.py: each costs milliseconds).
WARM_HOT_NEVER = (
    *WARM_NEVER,
    "pydantic",
    "pydantic_core",
    "relaybus.models",
    "relaybus.wire",
    "relaybus.client.calls",
    "relaybus.client.relay",
    "relaybus.client.handle",
    "relaybus.client.transport",
    "relaybus.identity",
    "relaybus.logs",
    "logging",
    "socket",
    "signal",
    "hashlib",
)


@pytest.mark.parametrize("name", list(WARM_HOT))
def test_a_hot_command_through_the_warm_relay_imports_neither_pydantic_nor_the_models(
    name: str, warm_env: dict[str, str], tmp_path: Path
) -> None:
    args, code, shows = WARM_HOT[name]
    imports = probe(args, warm_env, tmp_path, tmp_path)

    assert imports.code == code and shows in imports.out, imports.err
    assert imports.has("relaybus.client.warm_json")  # it did use the warm relay
    # A refusal is mapped to its error by transport.problem_error, as for the SDK.
    never = [n for n in WARM_HOT_NEVER if code == 0 or n != "relaybus.client.transport"]
    problems = [imports.why(name) for name in never if imports.has(name)]
    assert not problems, f"relaybus {name} imported:\n" + "\n".join(problems)
    assert log_lines(tmp_path) == []
