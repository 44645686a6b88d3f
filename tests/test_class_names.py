"""Every class defined in relaybus has a name of its own: a reader (and a
search) never has to ask which ``Outcome`` or ``Cursor`` is meant."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import relaybus

SRC = Path(relaybus.__file__).resolve().parent

#: Names still defined twice on purpose, with the modules that define them.
#: ``Registration``: the server's response model and the client's; the single
#: wire model of issue 14 (helper "wire") replaces both. Remove the entry then:
#: the test fails while an entry is no longer needed.
PENDING: dict[str, set[str]] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def class_definitions() -> dict[str, set[str]]:
    """``{class name: {modules defining a class of that name}}`` over every module,
    nested classes included."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                found[node.name].add(module_name(path))
    return found


def test_no_two_classes_in_relaybus_share_a_name() -> None:
    found = class_definitions()
    assert len(found) > 100  # the walk saw the package
    shared = {
        name: sorted(modules)
        for name, modules in found.items()
        if len(modules) > 1 and PENDING.get(name) != modules
    }
    assert shared == {}, f"rename one of each: {shared}"


def test_every_pending_duplicate_still_exists() -> None:
    found = class_definitions()
    stale = [name for name, modules in PENDING.items() if found.get(name) != modules]
    assert stale == [], f"no longer defined twice: remove {stale} from PENDING"
