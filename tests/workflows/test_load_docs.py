"""docs/workflows.md tells the truth about the format: its JSON Schema is the one the
package ships, its example file loads, and its tables name every key of the schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

from relaybus.workflows.load import loads, schema
from relaybus.workflows.template import RUN_ID, WORKFLOW_NAME

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "workflows.md").read_text(encoding="utf-8")
#: A fenced block: its language and its text.
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def section(title: str) -> str:
    """The text of the ``## title`` section (up to the next ``## ``)."""
    start = DOC.index(f"\n## {title}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end != -1 else None]


def blocks(text: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == language]


def table_keys(text: str, heading: str) -> list[str]:
    """The first column's `keys` of the first table after ``heading``."""
    after = text[text.index(heading) :]
    table = after[after.index("\n|") :].split("\n\n")[0]
    return re.findall(r"^\| `([^`]+)` \|", table, re.M)


def test_the_docs_print_the_schema_the_package_ships() -> None:
    [printed] = blocks(section("Validation"), "json")
    assert json.loads(printed) == schema()


def test_the_format_example_loads_and_uses_every_kind_of_part() -> None:
    [example] = blocks(section("Format"), "yaml")
    workflow = loads(example)
    assert workflow.name == "review"
    assert workflow.order() == ["plan", "implement", "review"]
    assert workflow.steps["implement"].verify is not None
    assert workflow.steps["review"].review is not None


def test_the_format_tables_name_every_key_of_the_schema() -> None:
    defs = schema()["$defs"]
    step = defs["step"]["properties"]
    expected = {
        "### Top level": schema()["properties"],
        "### `defaults`": schema()["properties"]["defaults"]["properties"],
        "### `agents.NAME`": defs["agent"]["properties"],
        "### `steps.NAME`": step,
        "`verify` (all given": step["verify"]["properties"],
        "`review` (a review loop": step["review"]["properties"],
    }
    format_ = section("Format")
    for heading, properties in expected.items():
        assert table_keys(format_, heading) == list(properties), heading


def test_the_template_table_lists_the_three_references() -> None:
    keys = table_keys(section("Format"), "### Templates")
    assert keys == ["{{ steps.NAME.result }}", f"{{{{ {WORKFLOW_NAME} }}}}", f"{{{{ {RUN_ID} }}}}"]


def test_the_running_section_is_there() -> None:
    assert "## Running" in DOC
