"""JSON written back in the style it was read in, and the diffs of a dry run."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaybus.tools.install.files import (
    ConfigError,
    JsonStyle,
    dump_json,
    parse_json,
    unified_diff,
)

PATH = Path("/cfg.json")

#: Layouts found in the wild: JSON.stringify(x, null, 2) (no final newline),
#: Python's json.dumps(indent=4), tabs, CRLF, numbers and text
#: that a naive round trip would reformat.
LAYOUTS = [
    '{\n  "a": 1,\n  "b": [\n    true,\n    null\n  ],\n  "c": {}\n}',
    '{\n    "a": {\n        "b": []\n    }\n}\n',
    '{\n\t"a": [\n\t\t"x"\n\t]\n}\n',
    '{\r\n  "a": "b"\r\n}\r\n',
    '{\n  "cost": 0.00005,\n  "big": 1e+21,\n  "exp": 1.5E-7,\n  "int": 10000000000000000000\n}',
    '{\n  "text": "café ✓ \\n \\" \\\\ \\u0007",\n  "empty": [],\n  "none": {}\n}\n',
]


@pytest.mark.parametrize("text", LAYOUTS)
def test_a_file_is_written_back_byte_for_byte_in_its_own_style(text: str) -> None:
    assert dump_json(parse_json(text, PATH), JsonStyle.detect(text)) == text


def test_a_new_file_gets_two_spaces_and_a_final_newline() -> None:
    assert dump_json({"a": [1]}, JsonStyle.detect(None)) == '{\n  "a": [\n    1\n  ]\n}\n'


def test_a_one_line_file_is_laid_out_with_two_spaces() -> None:
    text = '{"a":1,"b":{}}'
    assert dump_json(parse_json(text, PATH), JsonStyle.detect(text)) == (
        '{\n  "a": 1,\n  "b": {}\n}'
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", r"/cfg\.json holds an array, not a JSON object"),
        ('{"a": }', r"/cfg\.json is not valid JSON \(line 1, column 7: Expecting value\)"),
    ],
)
def test_anything_but_a_json_object_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_json(text, PATH)


def test_a_blank_file_counts_as_an_empty_object() -> None:
    assert parse_json(" \n", PATH) == {}


def test_the_diff_of_a_new_file_and_a_missing_final_newline_are_marked() -> None:
    created = unified_diff(PATH, None, "{}\n")
    edited = unified_diff(PATH, '{"a": 1}', '{"a": 2}')

    assert created == "--- /dev/null\n+++ b/cfg.json\n@@ -0,0 +1 @@\n+{}\n"
    assert edited == (
        "--- a/cfg.json\n+++ b/cfg.json\n@@ -1 +1 @@\n"
        '-{"a": 1}\n\\ No newline at end of file\n'
        '+{"a": 2}\n\\ No newline at end of file\n'
    )
