"""Workflow files load into :class:`~relaybus.workflows.spec.Workflow`, and a bad file
is refused with every problem at its line and a reason a person understands: each
kind of mistake, one small file each (table-driven), then the YAML details (duplicate
keys, YAML 1.2 scalars, aliases, merges) and reading from disk."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest

from relaybus.bounds import NAME_PATTERN
from relaybus.errors import InvalidInput
from relaybus.models import Approval
from relaybus.presets import CLIS
from relaybus.workflows.load import (
    MAX_CHARS,
    WorkflowError,
    WorkflowProblem,
    load,
    loads,
    parse_duration,
    schema,
)
from relaybus.workflows.spec import STEP_RETRIES, STEP_TIMEOUT, Workflow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

#: A good file: every other case is this with one thing broken.
GOOD = """\
version: 1
name: flow
agents:
  coder:
    cli: claude
steps:
  plan:
    agent: coder
    task: Plan {{ workflow.name }}
  build:
    capability: code
    depends_on: [plan]
    task: Build {{ steps.plan.result }}
"""


def problems_of(text: str) -> list[tuple[int, str]]:
    """The ``(line, reason)`` of every problem of ``text`` (it must not load)."""
    with pytest.raises(WorkflowError) as caught:
        loads(dedent(text), path="flow.yaml")
    return [(p.line, p.reason) for p in caught.value.errors]


def test_every_example_loads() -> None:
    assert {p.name for p in EXAMPLES} >= {
        "review.yaml", "fan-out.yaml", "review-loop.yaml", "claude-codex.yaml",
    }  # fmt: skip
    for path in EXAMPLES:
        workflow = load(path)
        assert workflow.path == path
        assert workflow.source == path.read_text(encoding="utf-8")
        assert workflow.order()[0] == next(iter(workflow.steps))
        assert all(step.line > 0 for step in workflow.steps.values())


def test_the_review_example_is_the_demo_scenario() -> None:
    workflow = load(ROOT / "examples" / "review.yaml")
    assert workflow.name == "review"
    assert list(workflow.agents) == ["alice", "bob", "carol", "dave"]
    reviewers = [a for a in workflow.agents.values() if "review" in a.capabilities]
    assert [a.name for a in reviewers] == ["bob", "carol", "dave"]
    assert all(
        a.command[:3] == ("python3", "-m", "relaybus.workflows.demo_agent") for a in reviewers
    )
    assert workflow.steps["review"].capability == "review"
    assert workflow.order() == ["write", "review", "merge"]


def test_a_good_file_loads_with_defaults_and_lines() -> None:
    workflow = loads(GOOD, path="dir/flow.yaml")
    assert isinstance(workflow, Workflow)
    assert workflow.path == Path("dir/flow.yaml")
    assert workflow.agents["coder"].cli == "claude"
    assert workflow.agents["coder"].line == 4
    plan, build = workflow.steps["plan"], workflow.steps["build"]
    assert (plan.line, build.line) == (7, 10)
    assert (plan.timeout, plan.retries, plan.nudge_after) == (STEP_TIMEOUT, STEP_RETRIES, None)
    assert build.depends_on == ("plan",)
    assert build.capability == "code" and build.agent is None


def test_every_key_of_the_format_is_read() -> None:
    workflow = loads(
        dedent("""\
        version: 1
        name: all.keys_1
        description: Every key
        defaults: {timeout: 90, retries: 2, nudge_after: 1m30s, retry_after: "45"}
        agents:
          r:
            command: "python3 'my agent.py' --fast"
            capabilities: [review, code]
            tags: [backend]
            channels: [dev]
            headless: true
            cwd: sub
            restart: on-failure
            env: {KEY: value}
          p:
            cli: codex
            model: o3
            args: [--verbose]
            approval: read-only
        steps:
          a:
            agent: p
            task: A
            timeout: 1h
            retries: 0
            nudge_after: 10s
            verify: {contains: DONE, command: test -f out.txt, file: out.txt}
          b:
            agent: r
            task: B
            review: {of: a, approve: LGTM, max_rounds: 5}
        """)
    )
    assert workflow.description == "Every key"
    assert (workflow.nudge_after, workflow.retry_after) == (90.0, 45.0)
    r, p = workflow.agents["r"], workflow.agents["p"]
    assert r.command == ("python3", "my agent.py", "--fast")
    assert (r.capabilities, r.tags, r.channels) == (("review", "code"), ("backend",), ("dev",))
    assert (r.headless, r.cwd, r.restart, dict(r.env)) == (
        True,
        "sub",
        "on-failure",
        {"KEY": "value"},
    )
    assert (p.cli, p.model, p.args, p.approval, p.restart) == (
        "codex", "o3", ("--verbose",), "read-only", "no",
    )  # fmt: skip
    a, b = workflow.steps["a"], workflow.steps["b"]
    assert (a.timeout, a.retries, a.nudge_after) == (3600.0, 0, 10.0)
    assert (a.verify.contains, a.verify.command, a.verify.file) == (  # type: ignore[union-attr]
        "DONE", "test -f out.txt", "out.txt",
    )  # fmt: skip
    assert (b.timeout, b.retries) == (90.0, 2)  # from defaults
    assert b.review is not None and (b.review.of, b.review.approve, b.review.max_rounds) == (
        "a", "LGTM", 5,
    )  # fmt: skip
    # A reviewing step waits for the step it reviews.
    assert b.depends_on == ("a",)


#: (what is wrong, the file, the (line, reason) expected among its problems).
BAD: list[tuple[str, str, tuple[int, str]]] = [
    (
        "wrong version",
        GOOD.replace("version: 1", "version: 2"),
        (1, "version is the number 2; this relaybus reads 1 only"),
    ),
    (
        "version as text",
        GOOD.replace("version: 1", 'version: "1"'),
        (1, "version is the text '1', not a whole number"),
    ),
    (
        "missing version",
        GOOD.replace("version: 1\n", ""),
        (1, "the workflow has no 'version' (it is required)"),
    ),
    (
        "missing steps",
        GOOD.split("steps:")[0],
        (1, "the workflow has no 'steps' (it is required)"),
    ),
    (
        "no steps",
        GOOD.split("steps:")[0] + "steps: {}\n",
        (6, "steps is empty"),
    ),
    (
        "bad workflow name",
        GOOD.replace("name: flow", "name: My Flow"),
        (
            2,
            "name is the text 'My Flow', not a workflow name: lower-case letters, digits, "
            "'.', '_' and '-', starting with a letter or digit, at most 64",
        ),
    ),
    (
        "unknown top-level key",
        GOOD + "step: {}\n",
        (14, "the workflow has an unknown key 'step' (did you mean 'steps'?)"),
    ),
    (
        "unknown step key",
        GOOD.replace("    depends_on: [plan]", "    dependson: [plan]"),
        (12, "steps.build has an unknown key 'dependson' (did you mean 'depends_on'?)"),
    ),
    (
        "unknown agent key",
        GOOD.replace("    cli: claude", "    cli: claude\n    modle: opus"),
        (6, "agents.coder has an unknown key 'modle' (did you mean 'model'?)"),
    ),
    (
        "step missing task",
        GOOD.replace("    task: Plan {{ workflow.name }}\n", ""),
        (7, "steps.plan has no 'task' (it is required)"),
    ),
    (
        "retries as text",
        GOOD.replace("    depends_on: [plan]", "    depends_on: [plan]\n    retries: two"),
        (13, "steps.build.retries is the text 'two', not a whole number"),
    ),
    (
        "negative retries",
        GOOD.replace("    depends_on: [plan]", "    depends_on: [plan]\n    retries: -1"),
        (13, "steps.build.retries is the number -1; it must be at least 0"),
    ),
    (
        "depends_on as text",
        GOOD.replace("depends_on: [plan]", "depends_on: plan"),
        (12, "steps.build.depends_on is the text 'plan', not a list (write [plan])"),
    ),
    (
        "task as a number",
        GOOD.replace("task: Plan {{ workflow.name }}", "task: 42"),
        (9, "steps.plan.task is the number 42, not text (quote it)"),
    ),
    (
        "empty task",
        GOOD.replace("task: Plan {{ workflow.name }}", "task:"),
        (9, "steps.plan.task is empty, not text"),
    ),
    (
        "steps as a list",
        GOOD.split("steps:")[0] + "steps:\n  - plan\n",
        (6, "steps is a list, not a mapping"),
    ),
    (
        "the file is a list",
        "- version: 1\n",
        (1, "the workflow is a list, not a mapping"),
    ),
    (
        "duplicate step",
        GOOD + "  plan:\n    agent: coder\n    task: again\n",
        (14, "steps.plan is given twice (first on line 7)"),
    ),
    (
        "duplicate key in a step",
        GOOD.replace("    agent: coder\n", "    agent: coder\n    agent: other\n"),
        (9, "steps.plan.agent is given twice (first on line 8)"),
    ),
    (
        "unknown dependency",
        GOOD.replace("depends_on: [plan]", "depends_on: [plna]"),
        (12, "steps.build.depends_on[0] names 'plna', which is not a step (did you mean 'plan'?)"),
    ),
    (
        "depends on itself",
        GOOD.replace("depends_on: [plan]", "depends_on: [build]"),
        (12, "steps.build.depends_on[0] names the step itself (it cannot wait for itself)"),
    ),
    (
        "dependency listed twice",
        GOOD.replace("depends_on: [plan]", "depends_on: [plan, plan]"),
        (12, "steps.build.depends_on names 'plan' twice"),
    ),
    (
        "cycle",
        GOOD.replace("    agent: coder\n", "    agent: coder\n    depends_on: [build]\n"),
        (7, "steps wait for each other in a cycle: plan waits for build, build waits for plan"),
    ),
    (
        "both agent and capability",
        GOOD.replace("    capability: code\n", "    capability: code\n    agent: coder\n"),
        (10, "steps.build gives both 'agent' and 'capability': give one"),
    ),
    (
        "neither agent nor capability",
        GOOD.replace("    capability: code\n", ""),
        (10, "steps.build needs 'agent' or 'capability'"),
    ),
    (
        "both cli and command",
        GOOD.replace("    cli: claude", "    cli: claude\n    command: [agent.py]"),
        (4, "agents.coder gives both 'cli' and 'command': give one"),
    ),
    (
        "neither cli nor command",
        GOOD.replace("    cli: claude", "    model: opus"),
        (4, "agents.coder needs 'cli' or 'command'"),
    ),
    (
        "unknown preset",
        GOOD.replace("cli: claude", "cli: cloude"),
        (
            5,
            "agents.coder.cli is the text 'cloude', not one of claude, codex, gemini, opencode "
            "(did you mean 'claude', 'codex'?)",
        ),
    ),
    (
        "command string that does not split",
        GOOD.replace("cli: claude", "command: python3 'agent.py"),
        (5, "agents.coder.command does not split: No closing quotation"),
    ),
    (
        "bad restart policy",
        GOOD.replace("cli: claude", "cli: claude\n    restart: sometimes"),
        (6, "agents.coder.restart is the text 'sometimes', not one of no, on-failure, always"),
    ),
    (
        "env value not text",
        GOOD.replace("cli: claude", "cli: claude\n    env: {PORT: 8080}"),
        (6, "agents.coder.env.PORT is the number 8080, not text (quote it)"),
    ),
    (
        "bad duration",
        GOOD.replace("depends_on: [plan]", "depends_on: [plan]\n    timeout: 5 min"),
        (
            13,
            "steps.build.timeout is the text '5 min', not a duration: seconds (90), or 90s, "
            "5m, 1h, 1h30m",
        ),
    ),
    (
        "zero duration",
        GOOD.replace("depends_on: [plan]", "depends_on: [plan]\n    timeout: 0s"),
        (13, "steps.build.timeout: '0s' is not more than 0 and at most 30 days (2592000s)"),
    ),
    (
        "duration too long",
        GOOD.replace("name: flow", "name: flow\ndefaults: {nudge_after: 800h}"),
        (3, "defaults.nudge_after: '800h' is not more than 0 and at most 30 days (2592000s)"),
    ),
    (
        "unknown template reference to a step",
        GOOD.replace("Build {{ steps.plan.result }}", "Build {{ steps.plna.result }}"),
        (
            13,
            "steps.build.task quotes {{ steps.plna.result }}, but there is no step 'plna' "
            "(did you mean 'plan'?)",
        ),
    ),
    (
        "unknown kind of template reference",
        GOOD.replace("Build {{ steps.plan.result }}", "Build {{steps.plan.output}}"),
        (
            13,
            "steps.build.task has an unknown reference {{steps.plan.output}} "
            "(did you mean 'steps.plan.result'?)",
        ),
    ),
    (
        "template reference to nothing known",
        GOOD.replace("Build {{ steps.plan.result }}", "Build {{ env.HOME }}"),
        (
            13,
            "steps.build.task has an unknown reference {{ env.HOME }}: use "
            "{{ steps.NAME.result }}, {{ workflow.name }} or {{ run.id }}",
        ),
    ),
    (
        "review of an unknown step",
        GOOD + "    review: {of: plam}\n",
        (14, "steps.build.review.of names 'plam', which is not a step (did you mean 'plan'?)"),
    ),
    (
        "review of itself",
        GOOD + "    review: {of: build}\n",
        (14, "steps.build.review.of names the step itself (a step reviews another step)"),
    ),
    (
        "review without of",
        GOOD + "    review: {approve: OK}\n",
        (14, "steps.build.review has no 'of' (it is required)"),
    ),
    (
        "review loop written both ways is a cycle",
        GOOD.replace("    agent: coder\n", "    agent: coder\n    depends_on: [build]\n").replace(
            "    depends_on: [plan]\n", ""
        )
        + "    review: {of: plan}\n",
        (7, "steps wait for each other in a cycle: plan waits for build, build reviews plan"),
    ),
    (
        "empty verify",
        GOOD + "    verify: {}\n",
        (14, "steps.build.verify is empty: give 'contains', 'command' or 'file'"),
    ),
    (
        "bad step name",
        GOOD.replace("  build:", "  build.it:"),
        (
            10,
            "steps: 'build.it' is not a step name: letters, digits, '_' and '-' (no dots), "
            "starting with a letter or digit, at most 64",
        ),
    ),
]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (GOOD.replace("    task: Plan {{ workflow.name }}", "    task: [unclosed"), 10),
        (GOOD + "---\nversion: 1\n", 14),
        (GOOD.replace("  plan:", "\tplan:"), 7),
    ],
    ids=["unclosed", "two documents", "tab"],
)
def test_text_that_is_not_yaml_is_refused_at_its_line(text: str, line: int) -> None:
    # The reason is the YAML parser's own (libyaml's words differ from PyYAML's).
    [(found_line, reason)] = problems_of(text)
    assert found_line == line
    assert reason.startswith("not valid YAML: ")


@pytest.mark.parametrize(
    ("text", "expected"), [(t, e) for _, t, e in BAD], ids=[w for w, _, _ in BAD]
)
def test_a_bad_file_is_refused_with_the_line_and_the_reason(
    text: str, expected: tuple[int, str]
) -> None:
    assert expected in problems_of(text)


def test_every_problem_of_a_file_is_reported_at_once_in_line_order() -> None:
    text = (
        GOOD.replace("version: 1", "version: 3")
        .replace("cli: claude", "cli: claude\n    cli: codex")
        .replace("depends_on: [plan]", "depends_on: [nope]")
    )
    found = problems_of(text)
    assert [line for line, _ in found] == [1, 6, 13]
    with pytest.raises(WorkflowError) as caught:
        loads(text, path="flow.yaml")
    err = caught.value
    assert isinstance(err, InvalidInput) and err.exit_code == 2
    assert err.message == (
        "flow.yaml:1: version is the number 3; this relaybus reads 1 only (and 2 more problems)"
    )
    assert err.lines()[1] == "flow.yaml:6: agents.coder.cli is given twice (first on line 5)"
    assert err.to_dict()["errors"][2] == {
        "line": 13,
        "reason": "steps.build.depends_on[0] names 'nope', which is not a step",
    }
    json.dumps(err.to_dict())  # the CLI prints it


def test_a_template_reference_points_at_its_own_line_in_a_literal_block() -> None:
    text = GOOD.replace(
        "    task: Build {{ steps.plan.result }}\n",
        "    task: |\n      Build it.\n\n      Then {{ steps.nope.result }}.\n",
    )
    assert [line for line, _ in problems_of(text)] == [16]


def test_an_unquoted_template_says_to_quote_it() -> None:
    text = GOOD.replace("task: Build {{ steps.plan.result }}", "task: {{ steps.plan.result }}")
    assert (
        13,
        "steps.build.task starts with {{, which YAML reads as a mapping: put the text in "
        'quotes ("{{ ... }}")',
    ) in problems_of(text)


def test_yaml_1_2_scalars_no_is_text_dates_and_octals_too() -> None:
    text = GOOD.replace("cli: claude", "cli: claude\n    restart: no\n    env: {ON: off}")
    text = text.replace("name: flow", "name: flow\ndescription: 2024-01-01")
    workflow = loads(text)
    assert workflow.agents["coder"].restart == "no"
    assert dict(workflow.agents["coder"].env) == {"ON": "off"}
    assert workflow.description == "2024-01-01"
    assert (3, "description is the number 8, not text (quote it)") not in problems_of(
        text.replace("2024-01-01", "010").replace("version: 1", "version: 2")
    )
    assert (6, "agents.coder.headless is the text 'yes', not true or false") in problems_of(
        GOOD.replace("cli: claude", "cli: claude\n    headless: yes")
    )


def test_a_line_break_after_a_name_or_a_duration_is_refused() -> None:
    text = GOOD.replace("name: flow", "name: |\n  flow").replace(
        "depends_on: [plan]", "depends_on: [plan]\n    timeout: |\n      5m"
    )
    found = problems_of(text)
    assert [(line, reason.split(",")[0]) for line, reason in found] == [
        (2, "name is the text 'flow\\n'"),
        (14, "steps.build.timeout is the text '5m\\n'"),
    ]


def test_anchors_aliases_and_merge_keys_are_read() -> None:
    text = dedent("""\
        version: 1
        name: flow
        agents:
          bob: &reviewer
            command: [python3, reviewer.py]
            capabilities: [review]
          carol: *reviewer
          dave:
            <<: *reviewer
            tags: [night]
            capabilities: [review, security]
        steps:
          review: {capability: review, task: Review}
        """)
    workflow = loads(text)
    assert workflow.agents["carol"].command == ("python3", "reviewer.py")
    assert workflow.agents["dave"].capabilities == ("review", "security")  # given wins
    assert workflow.agents["dave"].tags == ("night",)
    assert workflow.agents["dave"].command == ("python3", "reviewer.py")


def test_an_alias_of_itself_and_an_alias_bomb_are_refused() -> None:
    loop = "version: 1\nname: flow\nsteps: &s\n  a: *s\n"
    assert problems_of(loop) == [(3, "steps.a is an alias of itself (it never ends)")]
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 7):
        bomb.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 10) + "]")
    found = problems_of("\n".join(bomb) + "\n")
    assert found[0][1] == "the file expands to more than 100000 values"


def test_non_text_keys_are_their_text() -> None:
    workflow = loads(
        GOOD + "  1:\n    agent: coder\n    task: one\n  true:\n    agent: c\n    task: t\n"
    )
    assert list(workflow.steps) == ["plan", "build", "1", "true"]


def test_an_empty_file_says_so() -> None:
    assert problems_of("") == [
        (0, "is empty: a workflow is a mapping with version, name and steps")
    ]
    assert problems_of("# nothing\n") == problems_of("")


def test_load_reads_a_file_and_names_it_in_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD, encoding="utf-8")
    assert load(good).path == good
    assert load(str(good)).name == "flow"
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("version: 1", "version: 9"), encoding="utf-8")
    with pytest.raises(WorkflowError, match=r"bad\.yaml:1: version is the number 9"):
        load(bad)
    cases = {
        tmp_path / "missing.yaml": "no such file",
        tmp_path: "is a folder, not a workflow file",
    }
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    cases[latin] = "not UTF-8 text (invalid continuation byte at byte 9)"
    big = tmp_path / "big.yaml"
    big.write_text("#" * (MAX_CHARS + 1), encoding="utf-8")
    cases[big] = f"is larger than {MAX_CHARS} characters"
    for path, reason in cases.items():
        with pytest.raises(WorkflowError) as caught:
            load(path)
        assert caught.value.errors == [WorkflowProblem(0, reason)]
        assert caught.value.message == f"{path}: {reason}"


def test_loads_without_a_path_names_the_text() -> None:
    with pytest.raises(WorkflowError, match="^<workflow>:1: "):
        loads(GOOD.replace("version: 1", "version: 0"))
    assert loads(GOOD).path is None


@pytest.mark.parametrize(
    ("given", "seconds"),
    [(90, 90.0), (1.5, 1.5), ("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1h", 3600.0),
     ("1h30m", 5400.0), ("2m30s", 150.0), ("0.5h", 1800.0), ("720h", 2592000.0)],
)  # fmt: skip
def test_durations_are_seconds(given: float | str, seconds: float) -> None:
    assert parse_duration(given) == seconds


@pytest.mark.parametrize("given", [0, -1, "0s", "721h", "5 min", "1d", "m", "", True, None, [1]])
def test_a_bad_duration_raises(given: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(given)


def test_the_schema_agrees_with_the_presets_the_approval_modes_and_the_name_bounds() -> None:
    agent = schema()["$defs"]["agent"]["properties"]
    assert agent["cli"]["enum"] == list(CLIS)
    assert agent["approval"]["enum"] == [a.value for a in Approval]
    assert schema()["$defs"]["agent_name"]["pattern"] == f"^{NAME_PATTERN}$"
    assert schema()["$defs"]["label"]["pattern"] == f"^{NAME_PATTERN}$"


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
