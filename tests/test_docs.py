"""The documentation tells the truth: every ``relaybus`` command line in README.md
and docs/*.md names commands and options that exist, and the README's examples
run as written in a fresh repository."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from relaybus.cli import cli
from relaybus.client import warm
from tests.support.env import clean_environ

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: A command line in a code block, after an optional prompt and VAR=value assignments.
COMMAND_LINE = re.compile(r"^\s*(?:\$\s+)?(?:[A-Z_]+=\S+\s+)*(relaybus\s.*)$")
#: ``relaybus ...`` in an inline code span.
INLINE = re.compile(r"`(relaybus\s[^`]+)`")
#: Where one shell command ends and the next begins.
SEPARATORS = {"|", "||", "&&", ";"}
#: Docs with a table of one command's options (the first column).
OPTION_TABLES = {"docs/server.md": "serve", "docs/runtime.md": "run"}
#: Options every command has, though not among its params.
ALWAYS = {"--help", "-h"}


def doc_command_lines() -> Iterator[tuple[str, str]]:
    """``(where, line)`` for each relaybus command in the docs: code-block lines and
    inline code spans."""
    for path in DOCS:
        fenced = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{number}"
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            if fenced or line.startswith("    "):
                found = COMMAND_LINE.match(line)
                if found:
                    yield where, found.group(1)
                continue
            for span in INLINE.findall(line):
                yield where, span


def options_of(command: click.Command) -> dict[str, click.Option]:
    return {
        name: param
        for param in command.params
        if isinstance(param, click.Option)
        for name in [*param.opts, *param.secondary_opts]
    }


def unknown_words(line: str) -> list[str]:
    """The commands and options of ``line`` (one ``relaybus`` invocation, maybe with
    placeholders like ``[--scope ...]`` or ``claude|codex``) that the CLI lacks."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        words = line.split()
    for index, word in enumerate(words):
        if word in SEPARATORS:
            words = words[:index]
            break
    words = [w.strip("[]") for w in words[1:]]
    problems: list[str] = []
    command: click.Command = cli
    path = "relaybus"
    position = 0
    while position < len(words):
        word = words[position]
        position += 1
        if word == "--" or word == "-":
            break  # what follows is another program's command line (or stdin)
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            option = options_of(command).get(name)
            if option is None:
                if name.startswith("--") and name not in ALWAYS:
                    problems.append(f"{path} has no option {name}")
                continue
            takes_value = not option.is_flag and option.nargs == 1 and "=" not in word
            position += 1 if takes_value else 0
            continue
        if isinstance(command, click.Group):
            name = word.split("|")[0]
            if name.isdigit() and "show" in command.commands:
                name = "show"  # relaybus task ID runs relaybus task show ID
                position -= 1
            found = command.commands.get(name)
            if found is None:
                if name.isupper() or name in {"...", "COMMAND"}:
                    break  # a placeholder
                problems.append(f"{path} has no command {name}")
                break
            command, path = found, f"{path} {name}"
    return problems


def test_every_command_and_option_in_the_docs_exists() -> None:
    lines = list(doc_command_lines())
    assert len(lines) > 50  # the scan found the docs' commands
    problems = [f"{where}: {p}  ({line})" for where, line in lines for p in unknown_words(line)]
    assert problems == []


def test_every_option_in_the_docs_option_tables_exists() -> None:
    problems = []
    for doc, name in OPTION_TABLES.items():
        command = cli.commands[name]
        for number, line in enumerate((ROOT / doc).read_text(encoding="utf-8").splitlines(), 1):
            if not line.startswith("| `"):
                continue
            for span in re.findall(r"`([^`]+)`", line.split(" | ")[0]):
                if span.startswith("relaybus "):
                    problems += [f"{doc}:{number}: {p}" for p in unknown_words(span)]
                    continue
                for word in re.findall(r"--[a-z-]+", span):
                    if word not in options_of(command):
                        problems.append(f"{doc}:{number}: relaybus {name} has no option {word}")
    assert problems == []


def test_the_docs_check_catches_an_option_that_does_not_exist() -> None:
    assert unknown_words("relaybus serve --dir .relay") == ["relaybus serve has no option --dir"]
    assert unknown_words("relaybus --dir .relay serve --port 0") == []
    assert unknown_words("relaybus frobnicate") == ["relaybus has no command frobnicate"]


# -- the README, run as written -------------------------------------------------------


def readme_section(title: str) -> str:
    """The text of the README's section ``## title``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def code_blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


def readme_walkthrough() -> list[str]:
    """The commands of "The CLI in two minutes", without their prompts."""
    (block,) = code_blocks(readme_section("The CLI in two minutes"), "console")
    return [line[2:] for line in block.splitlines() if line.startswith("$ ")]


def readme_sdk_snippet() -> str:
    (block,) = code_blocks(readme_section("The Python SDK"), "python")
    return block


@pytest.fixture
def fresh_repository(tmp_path: Path) -> Path:
    """An empty git repository, as a new user has it."""
    repo = tmp_path / "project"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=60)
    return repo


def clean_env(**values: str) -> dict[str, str]:
    env = clean_environ()
    # Any unread mail is stuck at once: a walkthrough that leaves mail unread fails.
    env.update(RELAYBUS_STUCK_AFTER="0.001", **values)
    return env


def relaybus(words: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relaybus", *words],
        cwd=cwd,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=120,
    )


@pytest.mark.slow
def test_readme_cli_walkthrough_runs_as_written_in_a_fresh_repository(
    fresh_repository: Path,
) -> None:
    commands = [shlex.split(line, comments=True) for line in readme_walkthrough()]
    assert commands[0] == ["relaybus", "init"]  # a fresh repository starts with its relay
    env = clean_env()
    env.pop("RELAYBUS_DAEMON")  # as a user runs them: through the warm local relay
    try:
        for words in commands:
            command = shlex.join(words)
            assert words[0] == "relaybus"
            done = relaybus(words[1:], fresh_repository, env)
            said = done.stdout + done.stderr
            assert done.returncode == 0, f"$ {command}\n{said}"
            assert "STUCK" not in said and "stuck past" not in said, f"$ {command}\n{said}"

        agents = relaybus(["agents", "--json"], fresh_repository, env)
        stuck = {a["id"]: a["stuck"] for a in json.loads(agents.stdout)}
        assert stuck == {"alice": 0, "bob": 0}
        listed = relaybus(["agents"], fresh_repository, env)
        assert listed.returncode == 0 and listed.stderr == ""  # no "queued past" warning
        assert warm.probe(fresh_repository / ".relay") is not None
    finally:
        warm.stop(fresh_repository / ".relay")


def test_readme_sdk_snippet_runs_as_written_in_a_fresh_repository(
    fresh_repository: Path,
) -> None:
    script = fresh_repository / "snippet.py"
    script.write_text(readme_sdk_snippet(), encoding="utf-8")

    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=fresh_repository,
        env=clean_env(),
        capture_output=True,
        encoding="utf-8",
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "STUCK" not in done.stdout + done.stderr
