"""A run's state document: the quick check (:func:`check_state`'s one pass of the JSON
encoder) accepts and refuses exactly what the walk of every value does, with the same
words."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from relaybus.errors import RelayError
from relaybus.service.workflow_runs import MAX_STATE_DEPTH, _refuse_state, check_state

LIMIT = 2000

PIECES = ["a", "é", "\x00", "\\", "u0000", "\ud800", "\U0001f600", '"']
TEXT = st.lists(st.sampled_from(PIECES), max_size=6).map("".join)
SCALARS: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # nan and the infinities included
    | TEXT
    | st.builds(bytes)
    | st.builds(set)
)
KEYS = TEXT | st.integers() | st.none()
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(KEYS, inner, max_size=4)
    ),
    max_leaves=20,
)


def reference(state: Mapping[str, Any], limit: int) -> dict[str, Any]:
    """The check as it was before the quick pass: every value walked, then encoded."""
    _refuse_state(state)
    encoded = json.dumps(dict(state), allow_nan=False)
    if len(encoded.encode("utf-8")) > limit:
        raise ValueError("too large")
    decoded: dict[str, Any] = json.loads(encoded)
    return decoded


def outcome(check: Any, state: Any) -> tuple[str, object]:
    try:
        return "ok", check(state, LIMIT)
    except RelayError as exc:
        return "refused", str(exc)
    except (ValueError, TypeError) as exc:  # the reference's size, an unencodable value
        return type(exc).__name__, None


def quick(state: Any, limit: int) -> dict[str, Any]:
    try:
        return check_state(state, limit)
    except RelayError as exc:
        if exc.status == 413:
            raise ValueError("too large") from None
        raise


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=5))
def test_the_quick_check_matches_the_walk_of_every_value(state: dict[Any, Any]) -> None:
    assert outcome(quick, state) == outcome(reference, state)


def test_depth_is_refused_past_the_limit_and_taken_at_it() -> None:
    def nested(levels: int) -> dict[str, Any]:
        node: dict[str, Any] = {}
        top = node
        for _ in range(levels - 1):
            node["a"] = [{}]
            node = node["a"][0]
        return top

    # levels counts dicts; each adds a list too, so 2 * levels - 1 containers deep
    ok = nested(MAX_STATE_DEPTH // 2)
    assert check_state(ok, 1 << 20) == reference(ok, 1 << 20)
    too_deep = nested(MAX_STATE_DEPTH // 2 + 2)
    assert outcome(quick, too_deep) == outcome(reference, too_deep)
    assert outcome(quick, too_deep)[0] == "refused"
