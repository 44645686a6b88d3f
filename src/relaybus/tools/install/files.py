"""Reading and writing coding tools' config files without disturbing what is not ours.

JSON files are parsed, changed and written back in the style they were found
in: the same indent (spaces or a tab), line endings, trailing newline and key
order, and numbers with their original text (``0.00005`` stays ``0.00005``).
Files that Claude Code, Gemini CLI and Cursor write (``JSON.stringify(x,
null, 2)``) therefore come back byte for byte apart from the lines we changed.

Every write is atomic (a temporary file in the same folder, then
``os.replace``), keeps the file's permissions, and goes through symlinks to
the real file, so a dotfiles manager's link stays a link.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.toml_document import TOMLDocument

from ...errors import InvalidInput

#: How a new JSON file is indented.
DEFAULT_INDENT = "  "
#: A ``\\u`` escape of a character beyond ASCII (``\\u00e9``), as Python's json writes.
_ESCAPED_NON_ASCII = re.compile(r"(?<!\\)(?:\\\\)*\\u(?!00[0-7])[0-9a-fA-F]{4}")


class ConfigError(InvalidInput):
    """A config file that cannot be changed safely: not valid JSON or TOML, not
    UTF-8, or a key of the wrong type. Nothing is written when this is raised."""


class JsonNumber(float):
    """A JSON number with a fraction or exponent that remembers its source text,
    so that writing the file back does not reformat it."""

    text: str

    @classmethod
    def parse(cls, text: str) -> JsonNumber:
        """The number ``text`` (``json.loads``'s ``parse_float``)."""
        number = cls(text)
        number.text = text
        return number


@dataclass(frozen=True)
class JsonStyle:
    """How a JSON file is laid out: ``indent`` (None: all on one line), the
    separators, the line ending, whether the file ends with one, and whether
    text beyond ASCII is written as ``\\u`` escapes (``ascii``, Python's
    ``json.dumps`` default).

    :meth:`detect` follows a file's indent (spaces or a tab), line ending,
    final newline and escapes; a file written on one line gets two spaces.
    """

    indent: str | None = DEFAULT_INDENT
    item_sep: str = ","
    key_sep: str = ": "
    newline: str = "\n"
    final_newline: bool = True
    ascii: bool = False

    @classmethod
    def detect(cls, text: str | None) -> JsonStyle:
        """The style of ``text``; the default (2 spaces, final newline) for a new file."""
        if text is None or not text.strip():
            return cls()
        newline = "\r\n" if "\r\n" in text else "\n"
        final = text.endswith("\n")
        escaped = text.isascii() and _ESCAPED_NON_ASCII.search(text) is not None
        if "\n" not in text.strip():
            # One line ("{}", or a minified file) sets no layout to follow: lay it
            # out like a new file, so the entry relaybus adds can be read.
            return cls(newline=newline, final_newline=final, ascii=escaped)
        # The first indented line of JSON (a comment line, `// …` or ` * …`, is no guide).
        found = re.search(r"^([ \t]+)[^\s/*]", text, re.MULTILINE)
        return cls(
            indent=found.group(1) if found else "",
            newline=newline,
            final_newline=final,
            ascii=escaped,
        )


def json_kind(value: Any) -> str:
    """``"an object"``, ``"an array"``… for error messages."""
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return kinds.get(type(value), type(value).__name__)


def parse_json(text: str, path: Path, *, comments: bool = False) -> dict[str, Any]:
    """The JSON object in ``text`` (an empty or blank file is ``{}``); with
    ``comments``, JSON with ``//`` and ``/* */`` comments (see :mod:`.jsonc`).

    Raises:
        ConfigError: not valid JSON, or not an object at the top level (its
            ``line`` and ``column`` say where, 1-based).
    """
    if not text.strip():
        return {}
    from .jsonc import JsonSyntaxError, loads

    try:
        if comments:
            data = loads(text, comments=True)
        else:
            data = json.loads(text, parse_float=JsonNumber.parse)
    except (json.JSONDecodeError, JsonSyntaxError) as exc:
        kind = "JSON (comments allowed)" if comments else "JSON"
        reason = f"{path} is not valid {kind} (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        raise ConfigError(
            f"{reason}; fix it by hand and run the command again: nothing was written",
            path=str(path),
            reason=reason,
            line=exc.lineno,
            column=exc.colno,
        ) from None
    if not isinstance(data, dict):
        reason = f"{path} holds {json_kind(data)}, not a JSON object"
        raise ConfigError(
            f"{reason}: fix it by hand and run the command again: nothing was written",
            path=str(path),
            reason=reason,
        )
    return data


def dump_json(data: Any, style: JsonStyle) -> str:
    """``data`` as JSON text in ``style`` (see :class:`JsonStyle`)."""
    text = _encode(data, style, 0)
    if style.final_newline:
        text += "\n"
    # Strings never hold a raw line break (JSON escapes it), so this only
    # touches the layout.
    return text.replace("\n", style.newline) if style.newline != "\n" else text


def _encode(value: Any, style: JsonStyle, depth: int) -> str:
    if isinstance(value, JsonNumber):
        return value.text
    if isinstance(value, dict):
        items = [
            json.dumps(str(k), ensure_ascii=style.ascii)
            + style.key_sep
            + _encode(v, style, depth + 1)
            for k, v in value.items()
        ]
        return _wrap("{", "}", items, style, depth)
    if isinstance(value, list):
        return _wrap("[", "]", [_encode(v, style, depth + 1) for v in value], style, depth)
    return json.dumps(value, ensure_ascii=style.ascii)


def _wrap(opening: str, closing: str, items: list[str], style: JsonStyle, depth: int) -> str:
    if not items:
        return opening + closing
    if style.indent is None:
        return opening + style.item_sep.join(items) + closing
    inner = "\n" + style.indent * (depth + 1)
    return opening + inner + ("," + inner).join(items) + "\n" + style.indent * depth + closing


def parse_toml(text: str, path: Path) -> TOMLDocument:
    """``text`` as a tomlkit document (which keeps comments and layout).

    Raises:
        ConfigError: not valid TOML.
    """
    try:
        return tomlkit.parse(text)
    except TOMLKitError as exc:
        reason = f"{path} is not valid TOML ({exc})"
        raise ConfigError(
            f"{reason}; fix it by hand and run the command again: nothing was written",
            path=str(path),
            reason=reason,
        ) from None


def load_toml(text: str) -> dict[str, Any]:
    """``text`` as plain Python values (the standard library's reading of it)."""
    return tomllib.loads(text)


def lookup(data: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """``data[k1][k2]…``, or None where a key is missing or a step is not a mapping."""
    node: Any = data
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def read_text(path: Path) -> str | None:
    """The file's text exactly as stored (line endings kept), or None if it does not exist.

    Raises:
        ConfigError: the file is not UTF-8, or is a directory.
        OSError: it cannot be read.
    """
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a config file", path=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path} is not UTF-8 text: fix it by hand; nothing was written",
            path=str(path),
            reason=f"{path} is not UTF-8 text",
        ) from None


def write_text(path: Path, text: str, *, mode: int | None = None) -> list[Path]:
    """Write ``text`` to ``path`` atomically, creating missing folders.

    The file keeps its permission bits (a new one gets the umask's), or gets
    ``mode``; the temporary file is 0600 until then, so a private file is never
    readable by others. A symlink is followed and its target replaced. Returns
    the folders that had to be created, outermost first.

    Raises:
        OSError: the folder or the file cannot be written.
    """
    real = Path(os.path.realpath(path))
    created = missing_dirs(real.parent)
    real.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = real.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".relaybus-tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return created


def delete_file(path: Path) -> None:
    """Delete ``path`` (a symlink itself, not its target); gone already is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def missing_dirs(folder: Path) -> list[Path]:
    """The folders on the way to ``folder`` that do not exist yet, outermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing[::-1]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def unified_diff(path: Path, before: str | None, after: str | None) -> str:
    """A unified diff (``difflib``) from ``before`` to ``after``; None is a missing file."""
    old = (before or "").splitlines(keepends=True)
    new = (after or "").splitlines(keepends=True)
    lines = difflib.unified_diff(
        old,
        new,
        fromfile="/dev/null" if before is None else f"a{path}",
        tofile="/dev/null" if after is None else f"b{path}",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
