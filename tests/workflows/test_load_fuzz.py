"""Whatever a file holds, the loader answers with a Workflow or a WorkflowError whose
problems all have a line in the file: never another exception (a traceback in
``workflow validate``). Files are drawn near the format (its real keys, values of any
type) so that the checks of meaning meet every wrong shape, and as any text."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from relaybus.workflows.load import WorkflowError, loads
from relaybus.workflows.spec import Workflow

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 5)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.sampled_from(
        ["a", "b", "plan", "5m", "0s", "90", "claude", "review", "{{ steps.a.result }}",
         "{{ x }}", "on-failure", "python3 'x", ""]
    )
)  # fmt: skip
ANY = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner, max_size=3)
    ),
    max_leaves=8,
)
STEP_KEYS = [
    "agent", "capability", "task", "depends_on", "timeout", "retries", "nudge_after",
    "verify", "review",
]  # fmt: skip
AGENT_KEYS = ["cli", "command", "model", "capabilities", "env", "restart", "headless", "args"]
NAMES = st.sampled_from(["a", "b", "c"])


def near(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A mapping with some of ``keys``, each with a value of any shape, or a likely one."""
    value = ANY | st.lists(NAMES, max_size=3) | st.fixed_dictionaries({"of": NAMES})
    return st.dictionaries(st.sampled_from(keys), value, max_size=len(keys))


FILES = st.fixed_dictionaries(
    {"version": st.just(1) | SCALARS, "name": st.just("flow") | SCALARS},
    optional={
        "steps": st.dictionaries(NAMES, near(STEP_KEYS) | ANY, max_size=3) | ANY,
        "agents": st.dictionaries(NAMES, near(AGENT_KEYS) | ANY, max_size=3) | ANY,
        "defaults": near(["timeout", "retries", "nudge_after", "retry_after"]) | ANY,
    },
)


def answer(text: str) -> Workflow | WorkflowError:
    try:
        return loads(text)
    except WorkflowError as err:
        return err


@settings(max_examples=300, deadline=None)
@given(FILES)
def test_a_file_of_any_shape_loads_or_is_refused_with_lines(data: dict[str, Any]) -> None:
    text = json.dumps(data)  # JSON is YAML
    result = answer(text)
    if isinstance(result, WorkflowError):
        assert result.errors
        assert all(p.line >= 0 and p.reason for p in result.errors)
    else:
        assert list(result.order()) and set(result.order()) == set(result.steps)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab: -[]{}\n#&*!|>'\"<12")), max_size=60))
def test_any_text_loads_or_is_refused(text: str) -> None:
    result = answer(text)
    if isinstance(result, WorkflowError):
        lines = text.count("\n") + 1
        assert all(0 <= p.line <= lines + 1 for p in result.errors)
