"""The checks of a workflow file, each problem with its line and a sentence a person
understands: the JSON Schema (``schema.json``, Draft 2020-12, with jsonschema's
errors said again in plain words) and the checks of meaning no schema states (steps
named in ``depends_on`` and ``review.of`` exist, no cycles, template references name
steps, durations in range, command strings split).

The checks of meaning read the raw value defensively, so that one pass reports
every problem of a file, the schema's and theirs, whatever the file's shape.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.protocols import Validator

from .load_yaml import Located, Path, Text, WorkflowProblem, where
from .template import RUN_ID, WORKFLOW_NAME, placeholders

#: The longest duration (seconds): 30 days.
MAX_DURATION = 30 * 86400
#: A duration in the file: ``90``, ``"90"``, ``"90s"``, ``"5m"``, ``"1h30m"``.
DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?[hms])+|[0-9]+(?:\.[0-9]+)?")
_UNIT = re.compile(r"([0-9]+(?:\.[0-9]+)?)([hms])")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}
#: How the schema's JSON types are said.
_TYPES = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "empty",
}


@functools.cache
def schema() -> dict[str, Any]:
    """The workflow file's JSON Schema (``relaybus/workflows/schema.json``)."""
    text = resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@functools.cache
def _ecma(pattern: str) -> re.Pattern[str]:
    # The schema's patterns hold no literal "$": each "$" is an end of the text.
    return re.compile(pattern.replace("$", r"\Z"))


def _pattern(
    validator: Validator, pattern: str, instance: object, spec: object
) -> Iterator[ValidationError]:
    """JSON Schema's ``pattern`` as ECMA 262 reads it, as the schema's other readers
    (editors) do: ``$`` is the end of the text. Python's ``$`` also matches before a
    last line break, so jsonschema's own lets ``"5m\n"`` (a ``|`` block) pass."""
    if isinstance(instance, str) and _ecma(pattern).search(instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


#: Draft 2020-12 with :func:`_pattern`.
_Draft: Any = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"pattern": _pattern}
)


@functools.cache
def _validator() -> Validator:
    # The schema with its $refs written out: resolving a $ref (the referencing
    # library) was two thirds of a 50-step file's check. No $ref of the schema is
    # recursive, and beside each $ref stands a description only.
    defs = schema()["$defs"]

    def inline(part: Any) -> Any:
        if isinstance(part, list):
            return [inline(p) for p in part]
        if not isinstance(part, dict):
            return part
        ref = part.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            rest = {k: v for k, v in part.items() if k != "$ref"}
            return {**inline(defs[ref.removeprefix("#/$defs/")]), **inline(rest)}
        return {k: inline(v) for k, v in part.items() if k != "$defs"}

    validator: Validator = _Draft(inline(schema()))
    return validator


def parse_duration(value: object) -> float:
    """Seconds of a duration as the file gives it: a number of seconds (``90``,
    ``"90"``, ``1.5``) or text of numbers with units ``h``, ``m``, ``s``
    (``"90s"``, ``"5m"``, ``"1h30m"``).

    Raises:
        ValueError: not a duration, or not more than 0 and at most 30 days (the
            message says which).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("not a duration: give seconds (90), or 90s, 5m, 1h, 1h30m")
    if isinstance(value, str):
        if DURATION.fullmatch(value) is None:
            raise ValueError(f"{value!r} is not a duration: give seconds (90), or 90s, 5m, 1h")
        units = _UNIT.findall(value)
        seconds = sum(float(n) * _SECONDS[u] for n, u in units) if units else float(value)
    else:
        seconds = float(value)
    if not 0 < seconds <= MAX_DURATION:
        raise ValueError(f"{value!r} is not more than 0 and at most 30 days ({MAX_DURATION}s)")
    return seconds


def did_you_mean(word: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` for close matches of ``word``, or ``""``.

    As :func:`relaybus.service.common.did_you_mean` but a little stricter (a file's
    few names make loose matches noise), and not imported from there: the service
    package brings SQLAlchemy, most of ``workflow validate``'s time.
    """
    close = difflib.get_close_matches(word, sorted(set(choices)), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


# -- the schema ------------------------------------------------------------------


def schema_problems(found: Located) -> list[WorkflowProblem]:
    """The schema's complaints about ``found.data``, in plain words, at their lines."""
    problems: list[WorkflowProblem] = []
    for error in _validator().iter_errors(found.data):
        problems.extend(_explain(error, found))
    return problems


def describe(value: object) -> str:
    """``value`` in an error: ``the text 'x'``, ``the number 5``, ``a list``..."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        short = value if len(value) <= 60 else value[:57] + "..."
        return f"the text {short!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _either(words: list[str]) -> str:
    quoted = [f"'{w}'" for w in words]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _explain(error: ValidationError, found: Located) -> Iterator[WorkflowProblem]:
    path: Path = tuple(error.absolute_path)
    at = where(path)
    kind = error.validator
    value = error.instance
    spec: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    line = found.line(path)
    if "propertyNames" in error.relative_schema_path:
        # The error is about a key (error.instance) of the mapping at ``path``.
        key = str(value)
        title = spec.get("title", "a name")
        yield WorkflowProblem(found.line((*path, key)), f"{at}: {key!r} is not {title}")
        return
    if kind == "additionalProperties":
        known = list(spec.get("properties", {}))
        for key in value if isinstance(value, dict) else ():
            if key not in known:
                hint = did_you_mean(key, known) or f" (known: {', '.join(known)})"
                yield WorkflowProblem(
                    found.line((*path, key)), f"{at} has an unknown key {key!r}{hint}"
                )
        return
    if kind == "required":
        required: Any = error.validator_value
        missing = [k for k in required if not isinstance(value, dict) or k not in value]
        for key in missing:
            yield WorkflowProblem(line, f"{at} has no {key!r} (it is required)")
        return
    if kind == "type":
        yield WorkflowProblem(line, f"{at} is {describe(value)}, not {_expected(spec, value)}")
        return
    yield WorkflowProblem(line, _reason(error, at, value, spec))


def _expected(spec: Mapping[str, Any], value: object) -> str:
    types = spec.get("type")
    names = [types] if isinstance(types, str) else list(types or [])
    if "title" in spec and "pattern" in spec:  # a form with a name: a duration, a name
        said = spec["title"]
    else:
        said = " or ".join(_TYPES.get(t, t) for t in names)
    if names == ["array"] and isinstance(value, str):
        said += f" (write [{value}])"
    elif "string" in names and isinstance(value, bool | int | float):
        said += " (quote it)"
    return str(said)


def _reason(error: ValidationError, at: str, value: Any, spec: Mapping[str, Any]) -> str:
    kind = error.validator
    rule: Any = error.validator_value
    if kind == "enum":
        choices = [str(c) for c in rule]
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        return f"{at} is {describe(value)}, not one of {', '.join(choices)}{hint}"
    if kind == "const":
        return f"{at} is {describe(value)}; this relaybus reads {rule!r} only"
    if kind == "pattern":
        return f"{at} is {describe(value)}, not {spec.get('title', 'of the right form')}"
    if kind == "not" and isinstance(rule, Mapping) and "required" in rule:
        return f"{at} gives both {' and '.join(repr(k) for k in rule['required'])}: give one"
    if kind == "anyOf" and all(isinstance(r, Mapping) and "required" in r for r in rule):
        return f"{at} needs {_either([k for r in rule for k in r['required']])}"
    if kind in ("minimum", "exclusiveMinimum", "maximum"):
        bound = {"minimum": "at least", "exclusiveMinimum": "more than", "maximum": "at most"}
        return f"{at} is {describe(value)}; it must be {bound[str(kind)]} {rule}"
    if kind == "minProperties":
        known = list(spec.get("properties", {}))
        return f"{at} is empty: give {_either(known)}" if known else f"{at} is empty"
    if kind in ("minItems", "minLength"):
        return f"{at} is empty"
    if kind == "uniqueItems" and isinstance(value, list):
        twice = next((v for i, v in enumerate(value) if v in value[:i]), None)
        return f"{at} names {twice!r} twice"
    return f"{at}: {error.message}"


# -- meaning -------------------------------------------------------------------


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def meaning_problems(found: Located) -> list[WorkflowProblem]:
    """What the schema cannot say: unknown or cyclic steps in ``depends_on`` and
    ``review.of``, template references to unknown steps, durations out of range,
    command strings that do not split. Parts of the wrong shape are skipped (the
    schema reports them)."""
    data = _mapping(found.data)
    steps = _mapping(data.get("steps"))
    problems = list(_durations(found, data))
    for name, agent in _mapping(data.get("agents")).items():
        command = _mapping(agent).get("command")
        if isinstance(command, str) and command.strip():
            path: Path = ("agents", name, "command")
            try:
                if not shlex.split(command):
                    raise ValueError("it is empty")
            except ValueError as exc:
                problems.append(
                    WorkflowProblem(found.line(path), f"{where(path)} does not split: {exc}")
                )
    names = list(steps)
    for name, step in steps.items():
        step = _mapping(step)
        depends_on = step.get("depends_on")
        for index, other in enumerate(depends_on if isinstance(depends_on, list) else []):
            problems.extend(_step_ref(found, ("steps", name, "depends_on", index), other, names))
        of = _mapping(step.get("review")).get("of")
        problems.extend(_step_ref(found, ("steps", name, "review", "of"), of, names))
        task = step.get("task")
        if isinstance(task, str):
            problems.extend(_template(found, ("steps", name, "task"), task, names))
    problems.extend(_cycles(found, steps))
    return problems


def _step_ref(
    found: Located, path: Path, other: object, names: list[str]
) -> Iterator[WorkflowProblem]:
    if not isinstance(other, str) or (other in names and other != path[1]):
        return
    if other == path[1]:
        why = "a step reviews another step" if path[2] == "review" else "it cannot wait for itself"
        reason = f"{where(path)} names the step itself ({why})"
    else:
        reason = f"{where(path)} names {other!r}, which is not a step{did_you_mean(other, names)}"
    yield WorkflowProblem(found.line(path), reason)


def _template(found: Located, path: Path, task: str, names: list[str]) -> Iterator[WorkflowProblem]:
    spot = found.texts.get(path, Text(found.line(path), False))
    forms = [WORKFLOW_NAME, RUN_ID, *(f"steps.{n}.result" for n in names)]
    for placeholder in placeholders(task):
        line = spot.line + (task.count("\n", 0, placeholder.offset) if spot.exact else 0)
        if not placeholder.known:
            hint = did_you_mean(placeholder.expression, forms) or (
                ": use {{ steps.NAME.result }}, {{ workflow.name }} or {{ run.id }}"
            )
            yield WorkflowProblem(
                line, f"{where(path)} has an unknown reference {placeholder.text}{hint}"
            )
        elif placeholder.step is not None and placeholder.step not in names:
            hint = did_you_mean(placeholder.step, names)
            reason = f"{where(path)} quotes {placeholder.text}, but there is no step"
            yield WorkflowProblem(line, f"{reason} {placeholder.step!r}{hint}")


def _durations(found: Located, data: dict[str, Any]) -> Iterator[WorkflowProblem]:
    keys = ("timeout", "nudge_after", "retry_after")
    places: list[tuple[Path, Any]] = [
        (("defaults", k), v) for k, v in _mapping(data.get("defaults")).items() if k in keys
    ]
    for name, step in _mapping(data.get("steps")).items():
        places += [(("steps", name, k), v) for k, v in _mapping(step).items() if k in keys]
    for path, value in places:
        shaped = isinstance(value, int | float) and not isinstance(value, bool)
        if shaped and value <= 0:
            continue  # the schema says so
        if shaped or (isinstance(value, str) and DURATION.fullmatch(value)):
            try:
                parse_duration(value)
            except ValueError as exc:
                yield WorkflowProblem(found.line(path), f"{where(path)}: {exc}")


def _cycles(found: Located, steps: dict[str, Any]) -> Iterator[WorkflowProblem]:
    """One problem per cycle of steps waiting for each other (``depends_on`` and
    ``review.of``), at the line of its first step in file order."""
    waits: dict[str, list[tuple[str, str]]] = {}
    for name, step in steps.items():
        step = _mapping(step)
        links: list[tuple[Any, str]] = []
        depends_on = step.get("depends_on")
        for other in depends_on if isinstance(depends_on, list) else []:
            links.append((other, "waits for"))
        of = _mapping(step.get("review")).get("of")
        if isinstance(of, str):
            links.append((of, "reviews"))
        waits[name] = [
            (o, how) for o, how in links if isinstance(o, str) and o in steps and o != name
        ]
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    reported: set[frozenset[str]] = set()
    for start in steps:
        if start in state:
            continue
        # The current path: names[i] waits for names[i + 1] as hows[i] says.
        names, hows = [start], list[str]()
        edges = [iter(waits[start])]
        state[start] = 1
        while names:
            edge = next(edges[-1], None)
            if edge is None:
                state[names.pop()] = 2
                edges.pop()
                if hows:
                    hows.pop()
                continue
            other, how = edge
            if state.get(other) == 1:
                first = names.index(other)
                cycle = list(zip(names[first:], [*hows[first:], how], strict=True))
                members = frozenset(names[first:])
                if members not in reported:
                    reported.add(members)
                    yield _cycle_problem(found, cycle, list(steps))
            elif other not in state:
                state[other] = 1
                names.append(other)
                hows.append(how)
                edges.append(iter(waits[other]))


def _cycle_problem(
    found: Located, cycle: list[tuple[str, str]], order: list[str]
) -> WorkflowProblem:
    """``cycle``: (step, how it waits for the next) pairs; the last waits for the first."""
    targets = [n for n, _ in cycle[1:]] + [cycle[0][0]]
    links = [(name, how, target) for (name, how), target in zip(cycle, targets, strict=True)]
    first = min(range(len(links)), key=lambda i: order.index(links[i][0]))
    links = links[first:] + links[:first]
    said = ", ".join(f"{name} {how} {target}" for name, how, target in links)
    line = found.line(("steps", links[0][0]))
    return WorkflowProblem(line, f"steps wait for each other in a cycle: {said}")
