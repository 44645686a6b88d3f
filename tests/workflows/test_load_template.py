"""The task template: ``{{ steps.NAME.result }}``, ``{{ workflow.name }}`` and
``{{ run.id }}`` with or without spaces, nothing else; and, with hypothesis, the
loader's promises over many files: :meth:`Workflow.order` runs every step after its
``depends_on`` for any DAG, a cycle is always found and named, and any text survives
rendering as it is."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybus.errors import InvalidInput
from relaybus.workflows.load import WorkflowError, loads, parse_duration, schema
from relaybus.workflows.template import placeholders, references, render


def test_render_replaces_the_three_references_with_or_without_spaces() -> None:
    template = (
        "{{ workflow.name }}#{{run.id}}: plan={{ steps.plan.result }}, "
        "review={{  steps.review.result  }}, again={{steps.plan.result}}"
    )
    text = render(template, {"plan": "P", "review": None}, workflow="flow", run_id=7)
    assert text == "flow#7: plan=P, review=, again=P"


def test_a_missing_result_is_empty_text() -> None:
    assert render("[{{ steps.x.result }}]", {}, workflow="w", run_id="r1") == "[]"


def test_render_takes_the_workflow_itself_too() -> None:
    workflow = loads("version: 1\nname: flow\nsteps:\n  a: {agent: x, task: t}\n")
    assert render("{{ workflow.name }}", {}, workflow=workflow, run_id=1) == "flow"


def test_a_result_is_not_read_again_as_a_template() -> None:
    results = {"a": "{{ steps.b.result }} {{ run.id }}", "b": "B"}
    assert render("{{ steps.a.result }}", results, workflow="w", run_id=1) == (
        "{{ steps.b.result }} {{ run.id }}"
    )


def test_render_refuses_an_unknown_reference() -> None:
    with pytest.raises(InvalidInput, match=r"unknown template reference \{\{ env.HOME \}\}"):
        render("{{ env.HOME }}", {}, workflow="w", run_id=1)


def test_references_are_the_quoted_steps_once_each_in_order() -> None:
    template = "{{ steps.b.result }} {{steps.a.result}} {{ steps.b.result }} {{ run.id }}"
    assert references(template) == ["b", "a"]
    assert references("no braces, { single } or {{ steps.a.output }}") == []


def test_placeholders_say_what_each_is_and_where() -> None:
    found = placeholders("x {{ steps.a.result }} {{ nope }}\n{{ run.id }}")
    assert [(p.text, p.step, p.known, p.offset) for p in found] == [
        ("{{ steps.a.result }}", "a", True, 2),
        ("{{ nope }}", None, False, 23),
        ("{{ run.id }}", None, True, 34),
    ]


#: Step names as the schema allows them (few shapes: drawing from a regex is slow).
NAMES = st.builds("{}{}".format, st.sampled_from(["a", "step-", "B_", "9"]), st.integers(0, 99))


def _file(edges: dict[str, list[str]]) -> str:
    steps = {
        name: {"agent": "a", "task": f"do {name}", "depends_on": before}
        for name, before in edges.items()
    }
    # JSON is YAML: the file's text, with every step's depends_on as written.
    return json.dumps({"version": 1, "name": "flow", "steps": steps})


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """Steps in some order, each depending on some steps before it (so: no cycle),
    then shuffled so that file order is not a topological order."""
    names = draw(st.lists(NAMES, min_size=1, max_size=12, unique=True))
    edges = {
        name: draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else []
        for i, name in enumerate(names)
    }
    order = draw(st.permutations(names))
    return {name: edges[name] for name in order}


@settings(max_examples=100, deadline=None)
@given(dags())
def test_order_runs_every_step_after_its_depends_on(edges: dict[str, list[str]]) -> None:
    workflow = loads(_file(edges))
    order = workflow.order()
    assert sorted(order) == sorted(edges)
    position = {name: i for i, name in enumerate(order)}
    for name, before in edges.items():
        assert workflow.steps[name].depends_on == tuple(before)
        assert all(position[b] < position[name] for b in before)


@settings(max_examples=100, deadline=None)
@given(dags(), st.data())
def test_a_back_edge_makes_a_cycle_that_is_named(
    edges: dict[str, list[str]], data: st.DataObject
) -> None:
    # Make a path a -> ... -> b through depends_on, then make a wait for b too.
    waiting = [n for n, before in edges.items() if before]
    if not waiting:
        return
    last = data.draw(st.sampled_from(waiting))
    chain = [last]
    while edges[chain[-1]]:
        chain.append(data.draw(st.sampled_from(edges[chain[-1]])))
    first = chain[-1]
    edges[first] = [*edges[first], last]
    with pytest.raises(WorkflowError) as caught:
        loads(_file(edges))
    cycles = [p.reason for p in caught.value.errors if "in a cycle" in p.reason]
    assert cycles
    # The named cycle is a real one: each link is a depends_on of the file.
    said = cycles[0].split(": ", 1)[1]
    for link in said.split(", "):
        name, other = link.split(" waits for ")
        assert other in edges[name]


@given(st.text(), st.dictionaries(NAMES, st.text() | st.none()))
def test_text_without_placeholders_renders_as_it_is(
    text: str, results: dict[str, str | None]
) -> None:
    if "{{" in text:
        return
    assert render(text, results, workflow="w", run_id=1) == text


@given(st.from_regex(schema()["$defs"]["duration"]["pattern"]))
def test_every_duration_the_schema_allows_parses_or_is_out_of_range(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        assert "not more than 0 and at most 30 days" in str(exc)
    else:
        assert 0 < seconds <= 30 * 86400
