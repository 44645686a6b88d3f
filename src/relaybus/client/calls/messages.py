"""Message and inbox calls: send, send_many, get, thread, inbox, wait, mark_read,
unread_count, and delivery receipts: mark_delivered, deliveries, wait_deliveries; and
history (the broadcasts a late joiner missed); listing messages and a page's receipts."""

from __future__ import annotations

from ...models import Message
from .. import message_requests as requests
from .. import operations
from .base import _builder, _deliveries, _marked, _messages, _unread

_message = Message.model_validate_json

send = _builder(operations.send, _message, lambda s: s.send)
send_many = _builder(operations.send_many, _messages, lambda s: s.send_many)
get_message = _builder(operations.get_message, _message, lambda s: s.get_message)
thread = _builder(operations.thread, _messages, lambda s: s.thread)
inbox = _builder(operations.inbox, _messages, lambda s: s.inbox)
wait = _builder(operations.wait, _messages, lambda s: s.wait)
mark_read = _builder(operations.mark_read, _marked, lambda s: s.mark_read)
mark_delivered = _builder(operations.mark_delivered, _marked, lambda s: s.mark_delivered)
unread_count = _builder(operations.unread_count, _unread, lambda s: s.unread_count)
deliveries = _builder(operations.deliveries, _deliveries, lambda s: s.deliveries)
wait_deliveries = _builder(operations.wait_deliveries, _deliveries, lambda s: s.wait_deliveries)
history = _builder(operations.history, _messages, lambda s: s.history)
list_messages = _builder(requests.list_messages, _messages, lambda s: s.list_messages)
receipts = _builder(requests.receipts, _deliveries, lambda s: s.receipts)
