"""JSON with comments read with positions and edited in place: what install adds
and uninstall takes out leaves every other byte (comments, escapes, layout) alone."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybus.tools.install.files import ConfigError, JsonStyle, dump_json, parse_json
from relaybus.tools.install.jsonc import JsonSyntaxError, loads, patch, same

ENTRY = {"command": "/opt/relaybus", "args": ["mcp"], "env": {"RELAYBUS_TOOL": "gemini"}}

#: Files as people write them: comments everywhere Gemini CLI allows them, CRLF,
#: tabs, Python's \u escapes with 4 spaces, one-line objects inside, empty containers.
LAYOUTS = [
    '{\n  // the theme\n  "theme": "GitHub", /* inline */\n  "mcpServers": {}\n}\n',
    '{\n  "theme": "GitHub" // last member, with a comment after it\n}\n',
    '/* header */\n{\n  "mcpServers": {\n    "docs": {"command": "docs-mcp"} // mine\n  }\n}',
    '{\r\n    "name": "Ren\\u00e9",\r\n    "mcpServers": {},\r\n    "n": [\r\n    ]\r\n}\r\n',
    '{\n\t"a": [1, 2, 3],\n\t"b": {"x": 1, "y": 2}\n}\n',
    '{\n  "mcpServers": {\n    "docs": {\n      "command": "docs-mcp"\n    },\n    // next\n    '
    '"other": {"command": "x"}\n  }\n}\n',
    '{\n  "cost": 0.00005,\n  "big": 1e+21,\n  "text": "caf\u00e9 \\n \\" \\\\ \\u0007"\n}\n',
]


def add_server(data: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(data)
    changed.setdefault("mcpServers", {})["relaybus"] = ENTRY
    return changed


@pytest.mark.parametrize("text", LAYOUTS)
def test_adding_then_removing_an_entry_gives_the_original_bytes(text: str) -> None:
    style = JsonStyle.detect(text)
    original = loads(text, comments=True)
    added = patch(text, add_server(original), style, comments=True)
    removed = patch(added, original, style, comments=True)

    assert same(loads(added, comments=True), add_server(original))
    assert removed == text
    comments = re.findall(r"//[^\r\n]*|/\*.*?\*/", text)
    assert all(comment in added for comment in comments)


def test_a_new_member_follows_its_neighbours_indentation_and_escapes() -> None:
    text = '{\r\n    "name": "Ren\\u00e9",\r\n    "x": 1 // keep\r\n}\r\n'
    style = JsonStyle.detect(text)
    added = patch(text, {"name": "René", "x": 1, "who": {"é": [1]}}, style, comments=True)

    assert added == (
        '{\r\n    "name": "Ren\\u00e9",\r\n    "x": 1, // keep\r\n'
        '    "who": {\r\n        "\\u00e9": [\r\n            1\r\n        ]\r\n    }\r\n}\r\n'
    )


def test_the_indent_comes_from_the_json_not_from_a_comment_block() -> None:
    text = '/*\n * settings\n */\n{\n    "a": {}\n}\n'
    style = JsonStyle.detect(text)
    added = patch(text, {"a": {"b": 1}}, style, comments=True)

    assert style.indent == "    "
    assert added == '/*\n * settings\n */\n{\n    "a": {\n        "b": 1\n    }\n}\n'


def test_a_changed_value_is_replaced_where_it_stands() -> None:
    text = '{\n  // where\n  "args": ["old"], /* c */\n  "n": 1\n}\n'
    style = JsonStyle.detect(text)

    assert patch(text, {"args": ["mcp"], "n": 2}, style, comments=True) == (
        '{\n  // where\n  "args": ["mcp"], /* c */\n  "n": 2\n}\n'
    )


def test_an_item_is_removed_from_the_middle_of_an_array_with_its_line() -> None:
    text = '{\n  "hooks": [\n    {"a": 1},\n    {"b": 2},\n    {"c": 3}\n  ]\n}\n'
    style = JsonStyle.detect(text)

    assert patch(text, {"hooks": [{"a": 1}, {"c": 3}]}, style, comments=False) == (
        '{\n  "hooks": [\n    {"a": 1},\n    {"c": 3}\n  ]\n}\n'
    )


@pytest.mark.parametrize(
    ("text", "comments", "message"),
    [
        ('{\n  // no\n  "a": 1\n}', False, "Expecting property name enclosed in double quotes"),
        ('{\n  "a": 1,\n}', True, "Trailing comma"),  # Gemini CLI refuses these too
        ('{\n  "a": 1 /* open', True, "Unterminated comment"),
        ('{"a": 1} x', True, "Extra data"),
        ('{"a": tru}', True, "Expecting value"),
    ],
)
def test_what_the_tool_cannot_read_is_refused_with_line_and_column(
    text: str, comments: bool, message: str
) -> None:
    with pytest.raises(JsonSyntaxError) as raised:
        loads(text, comments=comments)
    assert raised.value.msg == message
    if message == "Trailing comma":
        assert (raised.value.lineno, raised.value.colno) == (3, 1)


def test_a_gemini_settings_error_names_the_file_line_and_column() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_json('{\n  "a": 1,\n}\n', Path("/s.json"), comments=True)
    assert raised.value.details["reason"] == (
        "/s.json is not valid JSON (comments allowed) (line 3, column 1: Trailing comma)"
    )
    assert (raised.value.details["line"], raised.value.details["column"]) == (3, 1)


def test_the_reader_agrees_with_the_standard_library_on_plain_json() -> None:
    text = '{"a": [1, 2.5, -3e2, true, false, null, "\\u00e9\\ud83d\\ude00", {}], "a": 0}'
    assert loads(text, comments=False) == json.loads(text)


# -- any JSON object, any nested place ----------------------------------------------

KEYS = st.text(alphabet='abcé"\\/ ', min_size=1, max_size=4)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=6),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=12,
)
STYLES = st.builds(
    JsonStyle,
    indent=st.sampled_from(["  ", "    ", "\t"]),
    newline=st.sampled_from(["\n", "\r\n"]),
    final_newline=st.booleans(),
    ascii=st.booleans(),
)


def objects(value: Any) -> list[list[str]]:
    """The key paths of every object in ``value`` (the root is [])."""
    if isinstance(value, dict):
        return [[]] + [[k, *p] for k, v in value.items() for p in objects(v)]
    return []


@settings(max_examples=100, deadline=None)
@given(
    data=st.dictionaries(KEYS, VALUES, min_size=1, max_size=4),
    style=STYLES,
    where=st.integers(0, 100),
    key=KEYS,
    value=VALUES,
)
def test_any_member_added_anywhere_comes_out_again_byte_for_byte(
    data: dict[str, Any], style: JsonStyle, where: int, key: str, value: Any
) -> None:
    text = dump_json(data, style)
    places = objects(data)
    path = places[where % len(places)]
    target = copy.deepcopy(data)
    node = target
    for step in path:
        node = node[step]
    if key in node:
        return
    node[key] = value

    added = patch(text, target, style, comments=True)
    assert same(loads(added, comments=True), target)
    assert same(json.loads(added), target)
    assert patch(added, data, style, comments=True) == text
