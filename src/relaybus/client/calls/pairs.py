"""Pair calls: invite, accept, reject, hang up, pair messages, and reading pairs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...models import Message, Pair
from .. import pair_requests as requests
from .base import _builder

if TYPE_CHECKING:
    from pydantic import TypeAdapter

_LIST: list[TypeAdapter[list[Pair]]] = []


def _pairs(content: bytes) -> list[Pair]:
    # The adapter is built on first use: pydantic is loaded by then (the models).
    if not _LIST:
        from pydantic import TypeAdapter

        _LIST.append(TypeAdapter(list[Pair]))
    return _LIST[0].validate_json(content)


_one = Pair.model_validate_json

pair_invite = _builder(requests.pair_invite, _one, lambda s: s.pair_invite)
pair_accept = _builder(requests.pair_accept, _one, lambda s: s.pair_accept)
pair_reject = _builder(requests.pair_reject, _one, lambda s: s.pair_reject)
pair_hangup = _builder(requests.pair_hangup, _one, lambda s: s.pair_hangup)
pair_send = _builder(requests.pair_send, Message.model_validate_json, lambda s: s.pair_send)
get_pair = _builder(requests.get_pair, _one, lambda s: s.get_pair)
list_pairs = _builder(requests.list_pairs, _pairs, lambda s: s.list_pairs)
