"""docs/configuration.md and the code agree.

Every field of :class:`relaybus.settings.Settings` has one row with its variable,
TOML key, default and unit; every option named there exists; every ``RELAYBUS_*``
variable the code reads (outside test hooks) is on the page, and the page names
no variable the code does not read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from relaybus.cli import cli
from relaybus.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"
SRC = ROOT / "src" / "relaybus"
VARIABLE = re.compile(r"RELAYBUS_[A-Z][A-Z0-9_]*")
#: Variables the test suite sets to make a server misbehave on purpose; not for users.
TEST_HOOK = "RELAYBUS_TEST_"


def setting_rows() -> dict[str, dict[str, str]]:
    """``{variable: {column: cell}}`` from the page's tables that have a TOML key column."""
    rows: dict[str, dict[str, str]] = {}
    header: list[str] | None = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif "TOML key" in header and not set(cells[0]) <= {"-"}:
            row = dict(zip(header, cells, strict=True))
            variable = row["variable"].strip("`")
            assert variable not in rows, f"{variable} is listed twice"
            rows[variable] = row
    return rows


def shown(default: Any) -> str:
    """A default as the page writes it: ``none``, or the value in backticks."""
    if default is None:
        return "none"
    if isinstance(default, float):
        return f"`{default:g}`"
    return f"`{default}`"


def variables_in_code() -> set[str]:
    """The ``RELAYBUS_*`` names in ``src/`` outside settings.py, test hooks left out."""
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        if path.name != "settings.py" or path.parent != SRC:
            found.update(VARIABLE.findall(path.read_text(encoding="utf-8")))
    return {name for name in found if not name.startswith(TEST_HOOK)}


def setting_variables() -> set[str]:
    return {ENV_PREFIX + name.upper() for name in Settings.specs()}


def test_every_setting_is_listed_with_its_variable_key_default_and_unit() -> None:
    rows = setting_rows()
    wrong = []
    for name, (default, spec) in Settings.specs().items():
        variable = ENV_PREFIX + name.upper()
        row = rows.get(variable)
        if row is None:
            wrong.append(f"{variable}: not listed")
            continue
        if row["TOML key"] != f"`{name}`":
            wrong.append(f"{variable}: TOML key {row['TOML key']}, not `{name}`")
        if not row["default"].startswith(shown(default)):
            wrong.append(f"{variable}: default {row['default']}, not {shown(default)}")
        if row["unit"] != spec.unit:
            wrong.append(f"{variable}: unit {row['unit']!r}, not {spec.unit!r}")
        if not row["meaning"]:
            wrong.append(f"{variable}: no meaning")
    assert wrong == []


def test_the_page_lists_no_setting_the_code_lacks() -> None:
    assert set(setting_rows()) - setting_variables() == set()


def test_every_option_the_page_names_exists_and_names_its_variable() -> None:
    wrong = []
    for variable, row in setting_rows().items():
        option = row.get("option", "").strip("`")
        if not option:
            continue
        *sub, flag = option.split()
        command: click.Command = cli
        for word in sub:
            assert isinstance(command, click.Group)
            command = command.commands[word]
        params = [p for p in command.params if flag in getattr(p, "opts", ())]
        if not params:
            wrong.append(f"{variable}: no option {option}")
        elif variable not in (getattr(params[0], "help", None) or ""):
            wrong.append(f"{variable}: the help of {option} does not name it")
    assert wrong == []


def test_every_variable_the_code_reads_is_on_the_page() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = sorted(
        name for name in variables_in_code() | setting_variables() if f"`{name}`" not in text
    )
    assert missing == []


def test_the_page_names_no_variable_the_code_does_not_read() -> None:
    named = set(VARIABLE.findall(DOC.read_text(encoding="utf-8")))
    assert named - variables_in_code() - setting_variables() == set()
