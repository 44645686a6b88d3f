"""The documented patterns are no wider than the service's checks: every string the
OpenAPI document calls a valid name, target or text is one the service accepts
(so a schema-valid request is never refused for its form)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from relaybus.bounds import NAME_PATTERN, TARGET_PATTERN, TEXT_PATTERN, anchored
from relaybus.service.common import check_name, check_text
from relaybus.service.targets import parse_target

EXAMPLES = settings(max_examples=300, deadline=None)


@EXAMPLES
@given(st.from_regex(anchored(NAME_PATTERN), fullmatch=True))
def test_every_documented_name_is_a_valid_name(name: str) -> None:
    assert check_name("tag", name) == name


@EXAMPLES
@given(st.from_regex(anchored(TARGET_PATTERN), fullmatch=True))
def test_every_documented_target_parses(target: str) -> None:
    parsed = parse_target(target)
    assert str(parsed) == target


@EXAMPLES
@given(st.from_regex(anchored(TEXT_PATTERN), fullmatch=True))
def test_every_documented_text_is_storable(text: str) -> None:
    assert check_text("body", text) == text


def test_the_patterns_refuse_what_the_service_refuses() -> None:
    for name in ("", "-x", "a b", "é", "x" * 129):
        assert not re.fullmatch(anchored(NAME_PATTERN), name)
    for target in ("foo:bar", "tag:", "label:", "tag:a b", " "):
        assert not re.fullmatch(anchored(TARGET_PATTERN), target)
    assert not re.fullmatch(anchored(TEXT_PATTERN), "nul\x00")
