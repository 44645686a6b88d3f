"""JSON and JSON-with-comments text, read with positions and edited in place.

Gemini CLI reads its ``settings.json`` and ``trustedFolders.json`` through
``strip-json-comments`` and then ``JSON.parse``: ``//`` and ``/* */`` comments
are allowed, trailing commas are not. Claude Code and Cursor parse strict JSON.
:func:`parse_tree` reads either (``comments=True`` for the first kind) and
keeps where every value, member and item starts and ends.

:func:`patch` turns a file's text into the text of another value by the
smallest edits it can find, one at a time: a member or an array item is
inserted or removed with its separator, a changed scalar is replaced. Every
other byte (comments, blank lines, ``\\u00e9`` escapes, key order, number
spellings) stays as it was, and removing what an insert added gives the
original bytes back (one exception: an empty object or array written over
several lines, ``{\\n}``, comes back as ``{}``; uninstall then restores the
file's bytes from its backup). The edits follow the approach of VS Code's
``jsonc-parser`` (``modify``/``applyEdits``); no maintained Python library
does a comment-keeping round trip (``json5``, ``commentjson`` and ``jsonc``
readers drop comments on write).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .files import JsonNumber, JsonStyle, dump_json

_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}
#: Edits :func:`patch` makes at most before it gives up (each is one member or item).
MAX_EDITS = 1000


class JsonSyntaxError(ValueError):
    """Text that is not valid JSON (or JSON with comments): ``msg`` at
    ``lineno``:``colno`` (1-based, like :class:`json.JSONDecodeError`)."""

    def __init__(self, msg: str, text: str, pos: int) -> None:
        self.msg = msg
        self.pos = pos
        self.lineno = text.count("\n", 0, pos) + 1
        self.colno = pos - text.rfind("\n", 0, pos)
        super().__init__(f"{msg}: line {self.lineno} column {self.colno} (char {pos})")


@dataclass
class Node:
    """One JSON value: its text is ``text[start:end]``; ``children`` are an
    object's members or an array's items, in the order written."""

    kind: Literal["object", "array", "scalar"]
    start: int
    end: int
    value: Any
    children: list[JsonChild] = field(default_factory=list)


@dataclass
class JsonChild:
    """A member (``key`` set, ``start`` at its key) or an item (``key`` None)."""

    key: str | None
    start: int
    node: Node


class _Parser:
    def __init__(self, text: str, comments: bool) -> None:
        self.text = text
        self.comments = comments

    def fail(self, msg: str, pos: int) -> JsonSyntaxError:
        return JsonSyntaxError(msg, self.text, pos)

    def skip(self, pos: int) -> int:
        """``pos`` moved past whitespace (and comments, where allowed)."""
        text = self.text
        while True:
            m = _WS.match(text, pos)
            pos = m.end() if m else pos
            if not self.comments or not text.startswith("/", pos):
                return pos
            if text.startswith("//", pos):
                newline = text.find("\n", pos)
                pos = len(text) if newline < 0 else newline
            elif text.startswith("/*", pos):
                close = text.find("*/", pos + 2)
                if close < 0:
                    raise self.fail("Unterminated comment", pos)
                pos = close + 2
            else:
                return pos

    def value(self, pos: int) -> Node:
        text = self.text
        char = text[pos : pos + 1]
        if char == "{":
            return self.container(pos, "object")
        if char == "[":
            return self.container(pos, "array")
        if char == '"':
            return Node("scalar", pos, (end := self.string_end(pos)), json.loads(text[pos:end]))
        m = _NUMBER.match(text, pos)
        if m:
            token = m.group()
            value: Any = JsonNumber.parse(token) if m.group(1) or m.group(2) else int(token)
            return Node("scalar", pos, m.end(), value)
        for word, literal in _LITERALS.items():
            if text.startswith(word, pos):
                return Node("scalar", pos, pos + len(word), literal)
        raise self.fail("Expecting value", pos)

    def string_end(self, pos: int) -> int:
        m = _STRING.match(self.text, pos)
        if m is None:
            raise self.fail("Unterminated string or invalid character in string", pos)
        return m.end()

    def container(self, pos: int, kind: Literal["object", "array"]) -> Node:
        text = self.text
        closing = "}" if kind == "object" else "]"
        node = Node(kind, pos, pos, {} if kind == "object" else [])
        pos = self.skip(pos + 1)
        if text.startswith(closing, pos):
            node.end = pos + 1
            return node
        while True:
            start = pos
            key: str | None = None
            if kind == "object":
                if not text.startswith('"', pos):
                    raise self.fail("Expecting property name enclosed in double quotes", pos)
                end = self.string_end(pos)
                key = json.loads(text[pos:end])
                pos = self.skip(end)
                if not text.startswith(":", pos):
                    raise self.fail("Expecting ':' delimiter", pos)
                pos = self.skip(pos + 1)
            child = self.value(pos)
            node.children.append(JsonChild(key, start, child))
            if key is None:
                node.value.append(child.value)
            else:
                node.value[key] = child.value
            pos = self.skip(child.end)
            if text.startswith(closing, pos):
                node.end = pos + 1
                return node
            if not text.startswith(",", pos):
                raise self.fail("Expecting ',' delimiter", pos)
            pos = self.skip(pos + 1)
            if text.startswith(closing, pos):
                raise self.fail("Trailing comma", pos)


def parse_tree(text: str, *, comments: bool) -> Node:
    """``text`` as a tree of :class:`Node` (numbers with a fraction or exponent
    are :class:`JsonNumber`; a repeated key keeps its last value, as in
    ``JSON.parse``).

    Raises:
        JsonSyntaxError: not one valid JSON value (comments only when ``comments``).
    """
    parser = _Parser(text, comments)
    try:
        root = parser.value(parser.skip(0))
    except RecursionError:
        raise parser.fail("Nested too deeply", 0) from None
    end = parser.skip(root.end)
    if end != len(text):
        raise parser.fail("Extra data", end)
    return root


def loads(text: str, *, comments: bool) -> Any:
    """The value of ``text`` (see :func:`parse_tree`).

    Raises:
        JsonSyntaxError: not valid.
    """
    return parse_tree(text, comments=comments).value


def same(a: Any, b: Any) -> bool:
    """Whether two JSON values are equal as JSON: ``1``, ``1.0`` and ``True``
    all differ; objects compare without regard to key order."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, float) and isinstance(b, float) and a == b
    return type(a) is type(b) and bool(a == b)


#: An edit: replace ``text[start:end]`` with the string.
Edit = tuple[int, int, str]
#: Renders a new member or item: (the indentation of its line, whether it goes on one line).
Render = Callable[[str, bool], str]


def patch(text: str, target: Any, style: JsonStyle, *, comments: bool) -> str:
    """``text`` edited in place until it holds ``target`` (see the module's doc).

    Only the members and items that differ are touched; new ones are written in
    ``style`` at the indentation of their neighbours.

    Raises:
        JsonSyntaxError: ``text`` is not valid.
    """
    for _ in range(MAX_EDITS):
        root = parse_tree(text, comments=comments)
        edit = _Differ(text, style).diff(root, target)
        if edit is None:
            return text
        start, end, replacement = edit
        text = text[:start] + replacement + text[end:]
    # Each edit fixes one member or item; a file this different is rewritten.
    return dump_json(target, style)


class _Differ:
    """Finds the first edit that brings a tree closer to a target value."""

    def __init__(self, text: str, style: JsonStyle) -> None:
        self.text = text
        self.style = style
        self.unit = style.indent or "  "

    def diff(self, node: Node, new: Any) -> Edit | None:
        if same(node.value, new):
            return None
        if node.kind == "object" and isinstance(new, dict):
            return self._object(node, new)
        if node.kind == "array" and isinstance(new, list):
            return self._array(node, new)
        return self._replace(node, new)

    def _object(self, node: Node, new: dict[str, Any]) -> Edit | None:
        last = {c.key: i for i, c in enumerate(node.children)}
        members = [(i, c) for i, c in enumerate(node.children) if last[c.key] == i]
        for i, c in members:
            if c.key not in new:
                return self._remove(node, i)
        for _, c in members:
            assert c.key is not None
            if edit := self.diff(c.node, new[c.key]):
                return edit
        for key, value in new.items():
            if key not in last:
                return self._insert(node, len(node.children), self._member(key, value))
        return None  # the same members in another order: leave the order alone

    def _array(self, node: Node, new: list[Any]) -> Edit | None:
        old = [c.node.value for c in node.children]
        i = next(
            (k for k, (a, b) in enumerate(zip(old, new, strict=False)) if not same(a, b)),
            min(len(old), len(new)),
        )
        if len(new) < len(old) and _subsequence(new, old):
            return self._remove(node, i)
        if len(new) > len(old) and _subsequence(old, new):
            return self._insert(node, i, lambda base, inline: self._render(new[i], base, inline))
        if len(new) == len(old):
            return self.diff(node.children[i].node, new[i])
        return self._replace(node, new)

    # -- text helpers -------------------------------------------------------------

    def _line_start(self, pos: int) -> int:
        return self.text.rfind("\n", 0, pos) + 1

    def _indent(self, pos: int) -> str:
        start = self._line_start(pos)
        m = re.match(r"[ \t]*", self.text[start:pos])
        return m.group() if m else ""

    def _first_on_line(self, pos: int) -> bool:
        return not self.text[self._line_start(pos) : pos].strip()

    def _line_tail(self, pos: int) -> int:
        """``pos`` moved past blanks and comments that end on the same line."""
        text = self.text
        while True:
            m = re.match(r"[ \t]*", text[pos:])
            after = pos + (m.end() if m else 0)
            if text.startswith("//", after):
                m2 = re.compile(r"[^\r\n]*").match(text, after)
                return m2.end() if m2 else len(text)
            if text.startswith("/*", after):
                close = text.find("*/", after)
                if close >= 0 and "\n" not in text[after:close]:
                    pos = close + 2
                    continue
            return pos

    def _comma_after(self, pos: int) -> int:
        """Where the ``,`` after a value ending at ``pos`` is."""
        parser = _Parser(self.text, comments=True)
        return parser.skip(pos)

    def _render(self, value: Any, base: str, inline: bool) -> str:
        style = self.style
        if inline:
            style = dataclasses.replace(style, indent=None, item_sep=", ", final_newline=False)
        else:
            style = dataclasses.replace(style, indent=self.unit, final_newline=False)
        rendered = dump_json(value, dataclasses.replace(style, newline="\n"))
        return rendered.replace("\n", self.style.newline + base)

    def _member(self, key: str, value: Any) -> Render:
        def render(base: str, inline: bool) -> str:
            name = json.dumps(key, ensure_ascii=self.style.ascii)
            return name + self.style.key_sep + self._render(value, base, inline)

        return render

    # -- edits ----------------------------------------------------------------------

    def _replace(self, node: Node, new: Any) -> Edit:
        inline = node.kind != "scalar" and "\n" not in self.text[node.start : node.end]
        return node.start, node.end, self._render(new, self._indent(node.start), inline)

    def _insert(self, node: Node, index: int, render: Render) -> Edit:
        text, nl, children = self.text, self.style.newline, node.children
        outer = self._indent(node.start)
        if not children:
            inner = text[node.start + 1 : node.end - 1]
            child = outer + self.unit
            if "\n" in inner:
                return node.start + 1, node.start + 1, nl + child + render(child, False)
            return node.start + 1, node.end - 1, nl + child + render(child, False) + nl + outer
        if index < len(children):
            before = children[index]
            if self._first_on_line(before.start):
                base = self._indent(before.start)
                return before.start, before.start, render(base, False) + "," + nl + base
            return before.start, before.start, render("", True) + ", "
        last = children[-1]
        end = last.node.end
        if self._first_on_line(last.start):
            base = self._indent(last.start)
            tail = self._line_tail(end)
            return end, tail, "," + text[end:tail] + nl + base + render(base, False)
        return end, end, ", " + render("", True)

    def _remove(self, node: Node, index: int) -> Edit:
        text, children = self.text, node.children
        child = children[index]
        end = child.node.end
        if len(children) == 1:
            before = text[node.start + 1 : child.start]
            after = text[end : node.end - 1]
            if not before.strip() and not after.strip():
                return node.start + 1, node.end - 1, ""
            return child.start, end, ""
        if index + 1 < len(children):
            following = children[index + 1]
            comma = self._comma_after(end)
            if self._first_on_line(child.start) and self._first_on_line(following.start):
                stop = self._line_tail(comma + 1)
                if text.startswith("\r\n", stop):
                    stop += 2
                elif text.startswith("\n", stop):
                    stop += 1
                return self._line_start(child.start), stop, ""
            return child.start, following.start, ""
        previous = children[index - 1]
        comma = self._comma_after(previous.node.end)
        if self._first_on_line(child.start):
            newline = text.rfind("\n", comma, child.start)
            if newline > comma and text[newline - 1] == "\r":
                newline -= 1
            if newline > comma:
                return comma, end, text[comma + 1 : newline]
        return comma, end, ""


def _subsequence(short: list[Any], long: list[Any]) -> bool:
    it = iter(long)
    return all(any(same(x, y) for y in it) for x in short)
