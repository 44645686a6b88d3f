"""The presets (how ``--cli`` starts claude, codex, gemini, opencode) and the preflight
check, against real programs: fake CLI scripts on a temporary PATH, and the real Claude
Code CLI where it is installed (``.ci/run`` installs it)."""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

import pytest

from relaybus.errors import InvalidInput
from relaybus.presets import CLIS, PRESETS, build_command, preflight
from tests.tools.test_claude_cli import find_claude


def test_every_preset_cli_has_a_preset() -> None:
    assert tuple(PRESETS) == CLIS == ("claude", "codex", "gemini", "opencode")


@pytest.mark.parametrize(
    ("cli", "expected"),
    [
        ("claude", ["claude", "--model", "sonnet", "fix the bug"]),
        ("codex", ["codex", "--no-daemon", "--model", "o3", "fix the bug"]),
        ("gemini", ["gemini", "--model", "gemini-2.5-pro", "--prompt-interactive", "fix the bug"]),
        ("opencode", ["opencode", "--model", "anthropic/claude", "--prompt", "fix the bug"]),
    ],
)
def test_interactive_command_gives_the_model_and_the_first_task(
    cli: str, expected: list[str]
) -> None:
    model = expected[expected.index("--model") + 1]
    assert build_command(cli, model=model, task="fix the bug") == expected


@pytest.mark.parametrize(
    ("cli", "expected"),
    [
        ("claude", ["claude", "-p", "--model", "sonnet", "fix the bug"]),
        ("codex", ["codex", "exec", "--model", "o3", "fix the bug"]),
        ("gemini", ["gemini", "--model", "gemini-2.5-pro", "--prompt", "fix the bug"]),
        ("opencode", ["opencode", "run", "--model", "anthropic/claude", "fix the bug"]),
    ],
)
def test_headless_command_runs_the_task_as_the_prompt(cli: str, expected: list[str]) -> None:
    model = expected[expected.index("--model") + 1]
    assert build_command(cli, model=model, task="fix the bug", headless=True) == expected


@pytest.mark.parametrize("cli", CLIS)
def test_bare_preset_is_the_program_alone(cli: str) -> None:
    bare = ["codex", "--no-daemon"] if cli == "codex" else [cli]  # its own process
    assert build_command(cli) == bare
    assert build_command(cli, approval="open") == bare


@pytest.mark.parametrize(
    ("cli", "approval", "headless", "expected"),
    [
        ("claude", "guarded", False, ["claude", "--permission-mode", "default"]),
        ("claude", "guarded", True, ["claude", "-p", "--permission-mode", "dontAsk", "t"]),
        ("claude", "read-only", False, ["claude", "--permission-mode", "plan"]),
        ("claude", "read-only", True, ["claude", "-p", "--permission-mode", "plan", "t"]),
        (
            "codex",
            "guarded",
            False,
            ["codex", "--no-daemon", "--sandbox", "read-only", "--ask-for-approval", "on-request"],
        ),
        (
            "codex",
            "guarded",
            True,
            ["codex", "--sandbox", "read-only", "--ask-for-approval", "never", "exec", "t"],
        ),
        (
            "codex",
            "read-only",
            True,
            ["codex", "--sandbox", "read-only", "--ask-for-approval", "never", "exec", "t"],
        ),
        ("gemini", "guarded", False, ["gemini", "--approval-mode", "default"]),
        ("gemini", "read-only", True, ["gemini", "--approval-mode", "plan", "--prompt", "t"]),
        ("opencode", "read-only", False, ["opencode", "--agent", "plan"]),
        ("opencode", "read-only", True, ["opencode", "run", "--agent", "plan", "t"]),
    ],
)
def test_approval_modes_map_to_each_clis_permission_flags(
    cli: str, approval: str, headless: bool, expected: list[str]
) -> None:
    task = "t" if headless else None
    assert build_command(cli, approval=approval, headless=headless, task=task) == expected


@pytest.mark.parametrize("cli", CLIS)
@pytest.mark.parametrize("headless", [False, True])
def test_every_preset_takes_the_task_as_an_argument_of_its_own(cli: str, headless: bool) -> None:
    # the supervisor types the task in only when the command does not hold it
    assert "fix it\nand test it" in build_command(
        cli, task="fix it\nand test it", headless=headless
    )


def test_extra_args_go_before_the_task() -> None:
    argv = build_command(
        "codex", task="go", headless=True, args=["--skip-git-repo-check", "--ephemeral"]
    )
    assert argv == ["codex", "exec", "--skip-git-repo-check", "--ephemeral", "go"]


def test_task_that_looks_like_an_option_is_not_read_as_one() -> None:
    assert build_command("claude", task="-rf everything") == ["claude", "--", "-rf everything"]
    assert build_command("gemini", task="--yolo", headless=True) == ["gemini", "--prompt=--yolo"]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"cli": "cursor"}, "no preset for 'cursor'"),
        ({"cli": "claude", "headless": True}, "headless claude needs a task"),
        ({"cli": "claude", "approval": "sometimes"}, "open, guarded or read-only"),
        ({"cli": "opencode", "approval": "guarded"}, "opencode has no flag for approval"),
        ({"cli": "codex", "model": " "}, "the model is empty"),
        ({"cli": "codex", "task": ""}, "the task is empty"),
    ],
)
def test_bad_settings_are_invalid_input(kwargs: dict[str, object], reason: str) -> None:
    cli = str(kwargs.pop("cli"))
    with pytest.raises(InvalidInput, match=reason):
        build_command(cli, **kwargs)  # type: ignore[arg-type]


def fake_cli(folder: Path, name: str, body: str) -> Path:
    """An executable ``folder/name``: a Python script running ``body``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!{sys.executable}\nimport sys, time\n{body}\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_preflight_finds_each_cli_on_the_given_path_with_its_version(tmp_path: Path) -> None:
    bin_ = tmp_path / "bin"
    claude = fake_cli(bin_, "claude", 'print("2.1.197 (Claude Code)")')
    codex = fake_cli(bin_, "codex", 'print("codex-cli 0.171.0")')
    gemini = fake_cli(bin_, "gemini", 'print("nightly build")')
    env = {"PATH": str(bin_)}
    found = preflight(["claude", "codex", "gemini", "opencode", "cursor"], env=env)
    assert [p.cli for p in found] == ["claude", "codex", "gemini", "opencode", "cursor"]
    assert [(p.ok, p.path, p.version) for p in found[:3]] == [
        (True, str(claude), "2.1.197"),
        (True, str(codex), "0.171.0"),
        (True, str(gemini), "nightly build"),
    ]
    assert not found[3].ok and found[3].error == f"opencode is not on PATH ({bin_})"
    assert not found[4].ok and "no preset for 'cursor'" in (found[4].error or "")


def test_preflight_gets_the_environment_it_is_given(tmp_path: Path) -> None:
    bin_ = tmp_path / "bin"
    fake_cli(bin_, "codex", 'import os; print("codex-cli", os.environ["CODEX_TEST_VERSION"])')
    [found] = preflight(["codex"], env={"PATH": str(bin_), "CODEX_TEST_VERSION": "9.8.7"})
    assert found.ok and found.version == "9.8.7"


def test_preflight_reports_a_cli_that_fails_or_says_nothing(tmp_path: Path) -> None:
    bin_ = tmp_path / "bin"
    fake_cli(
        bin_,
        "claude",
        'print("starting", flush=True); print("no credentials", file=sys.stderr)\nsys.exit(3)',
    )
    fake_cli(bin_, "gemini", "pass")
    broken = bin_ / "codex"
    broken.write_text("not a program\n", encoding="utf-8")
    broken.chmod(0o755)
    claude, gemini, codex = preflight(["claude", "gemini", "codex"], env={"PATH": str(bin_)})
    assert not claude.ok
    assert claude.error == "claude --version exited with code 3: no credentials"
    assert not gemini.ok and gemini.error == "gemini --version printed nothing"
    assert not codex.ok and codex.error is not None and codex.path == str(broken)


def test_preflight_gives_up_on_a_cli_that_hangs(tmp_path: Path) -> None:
    bin_ = tmp_path / "bin"
    fake_cli(bin_, "opencode", "time.sleep(600)")
    [hung] = preflight(["opencode"], env={"PATH": str(bin_)}, timeout=0.5)
    assert not hung.ok and hung.error == "opencode --version did not answer in 0.5 s"


def test_preflight_defaults_to_this_process_environment(tmp_path: Path) -> None:
    bin_ = tmp_path / "bin"
    fake_cli(bin_, "gemini", 'print("0.61.0")')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ.get('PATH', '')}")
        [found] = preflight(["gemini"])
    assert found.ok and found.version == "0.61.0"


def test_preflight_of_the_real_claude_code_cli() -> None:
    claude = find_claude()
    if claude is None:
        pytest.skip("the Claude Code CLI is not installed (.ci/run installs it)")
    path = str(Path(claude).parent)
    env = {**os.environ, "PATH": f"{path}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update(DISABLE_AUTOUPDATER="1", DISABLE_TELEMETRY="1")
    [found] = preflight(["claude"], env=env)
    assert found.ok, found.error
    assert re.fullmatch(r"\d+\.\d+\.\d+", found.version or ""), found.version
    assert found.path is not None and Path(found.path).name == "claude"


def test_the_cli_lists_the_presets_and_restart_policies_it_accepts() -> None:
    from relaybus.cli import spawn
    from relaybus.models import RestartPolicy

    assert spawn.CLIS == CLIS
    assert spawn.RESTART_POLICIES == tuple(p.value for p in RestartPolicy)
