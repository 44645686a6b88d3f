"""``relaybus workflow validate FILE...``, run as a real process: ``FILE: ok (N steps,
M agents)`` for a good file, every problem of a bad one as ``FILE:LINE: reason``,
exit 0 only when every file is good, a JSON document per file with ``--json``.

Until ``workflow`` is among the top-level commands (relaybus.cli.COMMANDS), the
process runs the ``workflow`` group by itself (as the top level would dispatch to it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from relaybus.cli import COMMANDS
from tests.support.env import clean_environ

ROOT = Path(__file__).resolve().parents[2]
#: Seconds one validate process may take on a loaded machine.
HUNG = 60.0
#: The ``workflow`` group alone, as a program: ``python -c GROUP validate ...``.
GROUP = (
    "import sys\n"
    "from relaybus.cli.app import App\n"
    "from relaybus.cli.workflow import workflow\n"
    "workflow.main(sys.argv[1:], prog_name='relaybus workflow', obj=App())\n"
)
GOOD = "version: 1\nname: flow\nsteps:\n  a: {agent: x, task: do it}\n"


def validate(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    if "workflow" in COMMANDS:
        argv = [sys.executable, "-m", "relaybus", "workflow", "validate", *args]
    else:
        argv = [sys.executable, "-c", GROUP, "validate", *args]
    return subprocess.run(
        argv,
        cwd=cwd,
        env=clean_environ(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=HUNG,
        check=False,
    )


def test_every_example_is_valid() -> None:
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "examples").glob("*.yaml"))
    done = validate(*files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        *(
            f"{f}: ok ({s})"
            for f, s in zip(
                files,
                [
                    "3 steps, 3 agents",
                    "5 steps, 3 agents",
                    "2 steps, 2 agents",
                    "3 steps, 4 agents",
                ],
                strict=True,
            )
        )
    ]


def test_bad_files_print_every_problem_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    bad = GOOD.replace("version: 1", "version: 2").replace("task: do it", 'task: "{{ x }}"')
    (tmp_path / "bad.yaml").write_text(bad, encoding="utf-8")
    done = validate("good.yaml", "bad.yaml", "missing.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout.splitlines() == [
        "good.yaml: ok (1 step, 0 agents)",
        "bad.yaml:1: version is the number 2; this relaybus reads 1 only",
        "bad.yaml:4: steps.a.task has an unknown reference {{ x }}: use "
        "{{ steps.NAME.result }}, {{ workflow.name }} or {{ run.id }}",
        "missing.yaml: no such file",
    ]
    assert done.stderr == ""


def test_json_gives_a_document_per_file(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "bad.yaml").write_text(GOOD + "  a: {agent: y, task: t}\n", encoding="utf-8")
    done = validate("good.yaml", "bad.yaml", "--json", cwd=tmp_path)
    assert done.returncode == 2
    assert json.loads(done.stdout) == [
        {
            "file": "good.yaml",
            "ok": True,
            "name": "flow",
            "steps": 1,
            "agents": 0,
            "order": ["a"],
            "errors": [],
            "warnings": [],
        },
        {
            "file": "bad.yaml",
            "ok": False,
            "errors": [
                {
                    "line": 5,
                    "reason": "steps.a is given twice (first on line 4)",
                    "message": "bad.yaml:5: steps.a is given twice (first on line 4)",
                }
            ],
            "warnings": [],
        },
    ]
    done = validate("good.yaml", "--json", cwd=tmp_path)
    assert done.returncode == 0 and json.loads(done.stdout)[0]["ok"] is True


def test_a_likely_typo_of_an_agent_is_a_warning_not_an_error(tmp_path: Path) -> None:
    text = (
        "version: 1\nname: flow\nagents:\n  reviewer: {cli: claude}\n"
        "steps:\n  a: {agent: reviwer, task: t}\n  b: {agent: by-hand, task: t}\n"
    )
    (tmp_path / "flow.yaml").write_text(text, encoding="utf-8")
    done = validate("flow.yaml", cwd=tmp_path)
    assert done.returncode == 0
    warning = (
        "steps.a.agent 'reviwer' is not one of agents: (did you mean 'reviewer'?); "
        "the runner will wait for an agent of that name to register"
    )
    assert done.stdout.splitlines() == [
        "flow.yaml: ok (2 steps, 1 agent)",
        f"flow.yaml:6: warning: {warning}",
    ]
    [document] = json.loads(validate("flow.yaml", "--json", cwd=tmp_path).stdout)
    assert document["warnings"] == [
        {"line": 6, "reason": warning, "message": f"flow.yaml:6: {warning}"}
    ]


def test_no_file_is_a_usage_error_and_help_has_examples() -> None:
    done = validate()
    assert done.returncode == 2
    assert "FILES" in done.stderr
    helped = validate("--help")
    assert helped.returncode == 0
    assert "relaybus workflow validate examples/*.yaml" in helped.stdout


def test_validate_needs_no_relay_and_imports_no_store(tmp_path: Path) -> None:
    # It reads files only: no relay folder appears, SQLAlchemy is never imported.
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    program = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from relaybus.cli.app import App\n"
        "from relaybus.cli.workflow import workflow\n"
        "done = CliRunner().invoke(workflow, ['validate', 'good.yaml'], obj=App())\n"
        "print(done.exit_code, 'sqlalchemy' in sys.modules, 'relaybus.client' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        env=clean_environ(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=HUNG,
        check=False,
    )
    assert done.stdout.split() == ["0", "False", "False"], done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.yaml"]
