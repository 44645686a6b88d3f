"""YAML for workflow files: the values, with the line of every part, and the problems
found on the way (bad YAML, a key given twice, an alias that expands forever).

PyYAML composes the file into nodes (each with its position); this module turns the
nodes into plain values itself, so that it can note the line of each mapping entry
and list item (:attr:`Located.lines`, by path: ``("steps", "review", "depends_on",
0)``) and refuse a key given twice at the line of the second (PyYAML keeps the last).

Scalars are read as YAML 1.2's core schema reads them where YAML 1.1 (PyYAML's) is
surprising: only ``true``/``false`` are booleans (``no``, ``yes``, ``on``, ``off``
are text: ``restart: no`` means "no"), a date is text, and only plain decimal
numbers are integers (``010`` and ``1:30`` are text). Mapping keys are always their
text (a step named ``1`` is ``"1"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

#: Where a part is: mapping keys and list indexes from the top.
Path = tuple[str | int, ...]

#: Most values a file may expand to (aliases repeat values: ``&a [*a, *a]`` doubles).
MAX_VALUES = 100_000
#: Deepest nesting of mappings and lists.
MAX_DEPTH = 64

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, order=True)
class WorkflowProblem:
    """One thing wrong with a workflow file: its ``line`` (1-based; 0 when it is about
    the whole file, e.g. it cannot be read) and a sentence saying what is wrong."""

    line: int
    reason: str

    def format(self, file: str) -> str:
        """``FILE:LINE: reason`` (``FILE: reason`` without a line)."""
        return f"{file}:{self.line}: {self.reason}" if self.line else f"{file}: {self.reason}"


@dataclass(frozen=True)
class Text:
    """Where a scalar's text starts: ``line`` of its first character, and whether line
    ``n`` of the value is line ``line + n`` of the file (literal blocks ``|`` and
    one-line scalars; folded and multi-line flow scalars move lines around)."""

    line: int
    exact: bool


@dataclass
class Located:
    """A file's value (``None`` for an empty file) and where its parts are."""

    data: Any = None
    #: The line of each mapping entry's key and each list item.
    lines: dict[Path, int] = field(default_factory=dict)
    #: Where each scalar's text starts.
    texts: dict[Path, Text] = field(default_factory=dict)
    problems: list[WorkflowProblem] = field(default_factory=list)

    def line(self, path: Path) -> int:
        """The line of ``path``, or of the nearest part that holds it (1 for the top)."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1


#: libyaml's parser (C) where PyYAML was built with it: ten times the pure-Python one's speed.
_BASE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE):  # type: ignore[valid-type,misc]
    """PyYAML's safe loader with YAML 1.2's booleans and integers, and no timestamps."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))


class _TooMuch(Exception):
    """The file nests or expands past the bounds (the message says which)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.problem = WorkflowProblem(line, reason)


def where(path: Path) -> str:
    """``path`` as the errors name it: ``steps.review.depends_on[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "the workflow"


def read(text: str) -> Located:
    """The value of the YAML document ``text``, with where its parts are; any problem
    (bad YAML, a duplicate key, more than one document) is in
    :attr:`Located.problems`, and the value then holds what could be read."""
    found = Located()
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            found.data = _Walker(loader, found).value(node, (), 0)
    except _TooMuch as exc:
        found.problems.append(exc.problem)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = exc.problem or exc.context or "unreadable"
        found.problems.append(WorkflowProblem(line, f"not valid YAML: {problem}"))
    except yaml.YAMLError as exc:  # a reader error: a character YAML does not allow
        found.problems.append(WorkflowProblem(0, f"not valid YAML: {exc}"))
    finally:
        loader.dispose()
    return found


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _Walker:
    """Turns composed nodes into values, noting lines and problems in ``found``."""

    def __init__(self, loader: _Loader, found: Located) -> None:
        self.loader = loader
        self.found = found
        self.count = 0
        self.open: set[int] = set()  # the collections being read: an alias to one loops

    def value(self, node: Node, path: Path, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _TooMuch(_line(node), f"the file expands to more than {MAX_VALUES} values")
        if depth > MAX_DEPTH:
            raise _TooMuch(_line(node), f"the file nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.open:
            raise _TooMuch(_line(node), f"{where(path)} is an alias of itself (it never ends)")
        self.open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                items = []
                for index, item in enumerate(node.value):
                    self.found.lines[(*path, index)] = _line(item)
                    items.append(self.value(item, (*path, index), depth + 1))
                return items
            assert isinstance(node, MappingNode)
            return self.mapping(node, path, depth)
        finally:
            self.open.discard(id(node))

    def scalar(self, node: ScalarNode, path: Path) -> Any:
        style = node.style
        if style in ("|", ">"):
            # The text starts on the line after the indicator; a literal keeps lines.
            self.found.texts[path] = Text(_line(node) + 1, style == "|")
        else:
            self.found.texts[path] = Text(_line(node), node.start_mark.line == node.end_mark.line)
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            reason = f"{where(path)}: {exc.problem or 'a value YAML cannot read'}"
            self.found.problems.append(WorkflowProblem(_line(node), reason))
            return None

    def mapping(self, node: MappingNode, path: Path, depth: int) -> dict[str, Any]:
        given: dict[str, Any] = {}
        lines: dict[str, int] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = _line(key_node)
            if key_node.tag == _MERGE:
                merged.update(self.merge(value_node, path, depth, line))
                continue
            if isinstance(key_node, MappingNode) and key_node.flow_style:
                # `task: {{ steps.a.result }}` unquoted is a mapping in a mapping.
                reason = (
                    f"{where(path)} starts with {{{{, which YAML reads as a mapping: "
                    'put the text in quotes ("{{ ... }}")'
                )
                self.found.problems.append(WorkflowProblem(line, reason))
                continue
            if not isinstance(key_node, ScalarNode):
                reason = f"{where(path)} has a key that is a list or a mapping, not a name"
                self.found.problems.append(WorkflowProblem(line, reason))
                continue
            key = str(key_node.value)
            if key in lines:
                reason = f"{where((*path, key))} is given twice (first on line {lines[key]})"
                self.found.problems.append(WorkflowProblem(line, reason))
                continue
            lines[key] = line
            self.found.lines[(*path, key)] = line
            given[key] = self.value(value_node, (*path, key), depth + 1)
        for key, line in lines.items():  # a merge read later may have noted its own line
            self.found.lines[(*path, key)] = line
        return {**{k: v for k, v in merged.items() if k not in given}, **given}

    def merge(self, node: Node, path: Path, depth: int, line: int) -> dict[str, Any]:
        """The entries a ``<<:`` merge key brings in: a mapping's, or a list of mappings'
        (earlier ones win, as YAML's merge key says)."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for source in reversed(sources):
            if not isinstance(source, MappingNode):
                reason = f"{where(path)}: a merge (<<) takes a mapping or a list of mappings"
                self.found.problems.append(WorkflowProblem(line, reason))
                continue
            merged.update(self.value(source, path, depth + 1))
        return merged
