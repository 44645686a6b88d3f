"""Approval modes from the command line: set by ``register --approval``, ``run
--approval``, ``RELAYBUS_APPROVAL`` and a profile, changed in place by ``relaybus
approval``, shown by ``agents`` and ``whoami``; ``relaybus run -- codex`` gets Codex's
flags per mode. Real ``relaybus`` processes on a real SQLite relay."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from relaybus import Relay
from relaybus.models import Approval
from relaybus.profiles import APPROVAL_MODES
from tests.cli.conftest import Cli


def test_the_literal_approval_modes_are_the_model_s() -> None:
    assert APPROVAL_MODES == tuple(mode.value for mode in Approval)


def test_register_sets_the_mode_and_agents_and_whoami_show_it(cli: Cli, relay: Relay) -> None:
    registered = cli("register reviewer --approval read-only --json")
    plain = cli("register writer")
    listed = cli("agents")
    listed_json = cli("agents --json")
    whoami = cli("--as reviewer whoami")

    assert registered.code == 0, registered
    assert registered.json()["approval"] == "read-only"
    assert plain.code == 0, plain
    header, *rows = listed.out.splitlines()
    assert "APPROVAL" in header.split()
    column = header.split().index("APPROVAL")  # no label: one word a cell
    shown = {row.split()[0]: row.split()[column] for row in rows}
    assert (shown["reviewer"], shown["writer"]) == ("read-only", "open")
    modes = {a["id"]: a["approval"] for a in listed_json.json()}
    assert (modes["reviewer"], modes["writer"]) == ("read-only", "open")
    assert "approval      read-only" in whoami.out.splitlines()
    assert relay.get_agent("reviewer").approval is Approval.READ_ONLY


def test_relaybus_approval_changes_the_mode_in_place_without_fencing_the_holder(
    cli: Cli, relay: Relay
) -> None:
    holder = relay.register("runner", instance_id="run-1", pid=None, approval="open")

    guarded = cli("--as runner approval guarded")
    read_only = cli("--as runner approval READ-ONLY --json")

    assert guarded.code == 0, guarded
    assert guarded.out == "runner approval: guarded\n"
    assert read_only.code == 0, read_only
    assert read_only.json()["approval"] == "read-only"
    agent = holder.heartbeat()  # its epoch still holds
    assert (agent.epoch, agent.approval) == (1, Approval.READ_ONLY)


@pytest.mark.parametrize(
    ("command", "env", "error"),
    [
        (
            "--as runner approval careful",
            {},
            "the approval mode is open, guarded or read-only, not 'careful'",
        ),
        (
            "register other --approval yolo",
            {},
            "--approval is open, guarded or read-only, not 'yolo'",
        ),
        (
            "register other",
            {"RELAYBUS_APPROVAL": "strict"},
            "RELAYBUS_APPROVAL is open, guarded or read-only, not 'strict'",
        ),
        ("approval guarded", {}, "who are you?"),
    ],
    ids=["approval", "register-option", "env", "no-agent"],
)
def test_a_bad_mode_is_a_one_line_error_and_changes_nothing(
    cli: Cli, relay: Relay, command: str, env: dict[str, str], error: str
) -> None:
    relay.register("runner", pid=None)
    before = cli.snapshot()

    result = cli(command, env={"RELAYBUS_SESSION": "no-such-session", **env})

    assert result.code == 2, result
    assert len(result.err_lines) == 1, result
    assert result.err.startswith(f"relaybus: error: {error}"), result
    assert cli.snapshot() == before


def test_register_takes_the_mode_from_the_environment_then_the_profile(
    cli: Cli, relay: Relay, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    (config / "relaybus").mkdir(parents=True)
    (config / "relaybus" / "profiles.toml").write_text(
        '[reviewer]\nlabel = "reviewer"\napproval = "guarded"\n', encoding="utf-8"
    )
    profile = {"XDG_CONFIG_HOME": str(config), "RELAYBUS_PROFILE": "reviewer"}

    from_profile = cli("register a --json", env=profile)
    from_env = cli("register b --json", env={**profile, "RELAYBUS_APPROVAL": "read-only"})
    from_option = cli(
        "register c --approval open --json", env={**profile, "RELAYBUS_APPROVAL": "read-only"}
    )

    modes = [r.json()["approval"] for r in (from_profile, from_env, from_option)]
    assert modes == ["guarded", "read-only", "open"]


def test_a_profile_with_a_bad_mode_is_refused(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "config"
    (config / "relaybus").mkdir(parents=True)
    (config / "relaybus" / "profiles.toml").write_text(
        '[reviewer]\napproval = "sometimes"\n', encoding="utf-8"
    )

    result = cli("register a", env={"XDG_CONFIG_HOME": str(config), "RELAYBUS_PROFILE": "reviewer"})

    assert result.code == 2, result
    assert result.err_lines == [
        "relaybus: error: profile 'reviewer': approval is open, guarded or read-only, "
        "not 'sometimes'"
    ]


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    """A folder with a ``codex`` (and a ``claude``) that write their argv and
    ``RELAYBUS_APPROVAL`` as JSON to ``$ARGV_FILE``, for ``PATH``."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = (
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        "with open(os.environ['ARGV_FILE'], 'w', encoding='utf-8') as f:\n"
        "    json.dump({'argv': sys.argv[1:], "
        "'approval': os.environ.get('RELAYBUS_APPROVAL')}, f)\n"
    )
    for name in ("codex", "claude"):
        (folder / name).write_text(script, encoding="utf-8")
        (folder / name).chmod(0o755)
    return folder


def run_stand_in(
    cli: Cli, stand_in: Path, tmp_path: Path, args: str, env: dict[str, str] | None = None
) -> dict[str, object]:
    """``relaybus run --headless ARGS`` with the stand-ins first on ``PATH``: what the
    program got."""
    seen = tmp_path / "argv.json"
    path = f"{stand_in}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
    log = shlex.quote(str(tmp_path / "run.log"))
    result = cli(
        f"run --headless --log {log} {args}",
        env={"PATH": path, "ARGV_FILE": str(seen), **(env or {})},
    )
    assert result.code == 0, result
    found: dict[str, object] = json.loads(seen.read_text(encoding="utf-8"))
    return found


@pytest.mark.parametrize(
    ("mode", "flags"),
    [
        ("read-only", ["--sandbox", "read-only", "--ask-for-approval", "never"]),
        ("guarded", ["--sandbox", "read-only", "--ask-for-approval", "on-request"]),
        ("open", []),
    ],
)
def test_run_presets_codex_s_sandbox_and_approval_flags_per_mode(
    cli: Cli, relay: Relay, stand_in: Path, tmp_path: Path, mode: str, flags: list[str]
) -> None:
    got = run_stand_in(cli, stand_in, tmp_path, f"--name cx --approval {mode} -- codex exec hi")

    assert got == {"argv": [*flags, "exec", "hi"], "approval": mode}
    assert relay.get_agent("cx").approval == mode


def test_run_keeps_the_codex_flags_the_user_gave(
    cli: Cli, relay: Relay, stand_in: Path, tmp_path: Path
) -> None:
    sandbox = run_stand_in(
        cli, stand_in, tmp_path, "--name cx --approval read-only -- codex -s workspace-write"
    )
    policy = run_stand_in(
        cli,
        stand_in,
        tmp_path,
        "--name cx --approval guarded -- codex -c approval_policy=never",
    )
    bypass = run_stand_in(
        cli,
        stand_in,
        tmp_path,
        "--name cx --approval read-only -- codex --dangerously-bypass-approvals-and-sandbox",
    )

    assert sandbox["argv"] == ["--ask-for-approval", "never", "-s", "workspace-write"]
    assert policy["argv"] == ["--sandbox", "read-only", "-c", "approval_policy=never"]
    assert bypass["argv"] == ["--dangerously-bypass-approvals-and-sandbox"]


def test_run_takes_the_mode_from_the_environment_and_adds_no_flag_to_other_programs(
    cli: Cli, relay: Relay, stand_in: Path, tmp_path: Path
) -> None:
    got = run_stand_in(
        cli, stand_in, tmp_path, "--name cc -- claude -p hi", env={"RELAYBUS_APPROVAL": "guarded"}
    )

    assert got == {"argv": ["-p", "hi"], "approval": "guarded"}
    assert relay.get_agent("cc").approval is Approval.GUARDED


def test_run_refuses_a_bad_mode_before_it_starts_anything(
    cli: Cli, stand_in: Path, tmp_path: Path
) -> None:
    result = cli("run --headless --name cx --approval maybe -- codex")

    assert result.code == 2, result
    assert result.err_lines == [
        "relaybus: error: --approval is open, guarded or read-only, not 'maybe'"
    ]
    assert not (tmp_path / "argv.json").exists()


@pytest.mark.parametrize("mode", ["guarded", "read-only"])
def test_the_real_codex_cli_accepts_the_preset_flags(mode: str, tmp_path: Path) -> None:
    """The flags ``relaybus run`` gives, as Codex CLI 0.171.0 (npm ``@openai/codex``)
    parses them: before the interactive session's options and before ``exec``."""
    from relaybus.runtime.approval import preset_flags
    from tests.support.npmtool import npm_tool

    codex = str(npm_tool("@openai/codex", "0.171.0", name="codex", binary="codex"))
    env = {**os.environ, "CODEX_HOME": str(tmp_path / "codex-home")}
    (tmp_path / "codex-home").mkdir()
    for argv in ([codex, "--help"], [codex, "exec", "--help"]):
        command = preset_flags(argv, mode)
        assert command[1:5] == ["--sandbox", "read-only", "--ask-for-approval", command[4]]
        done = subprocess.run(
            command, capture_output=True, encoding="utf-8", env=env, timeout=60, check=False
        )
        assert done.returncode == 0, (command, done.stderr)
