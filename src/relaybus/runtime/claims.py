"""``--claim-first``: a runtime claims a claimable message's task before typing it.

Every recipient of a claimable message (``cap:review``, ``tag:backend``…) would
otherwise be interrupted with the task's text, though exactly one of them may work on
it. With claim-first the runtime claims the task (:meth:`AgentHandle.claim`, the
default lease, renewed by the runtime's :class:`~relaybus.client.leases.LeaseKeeper`
while it runs) when the message arrives, before it is queued: the winner's program is
typed the message as sent; a loser's is typed a one-line notice in its place::

    [relaybus #12 from alice] task 7 was claimed by bob

(no subject, no body: the task's text reaches the winner only), or nothing with
``notices=False``, in which case the message is marked read at once. A notice goes
the message's way otherwise (delivered when typed, read at the next idle boundary),
so the message is read either way. The claim is decided once per message for the
runtime's life: a program restarted after a crash is typed the same thing again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..client import AgentHandle
from ..errors import Conflict, RelayError
from ..models import Message

logger = logging.getLogger("relaybus.runtime")

#: Messages whose outcome is remembered (by id); older ones are forgotten first.
REMEMBERED = 10_000


class ClaimFirst:
    """Claims the tasks of claimable messages for ``handle``'s agent (see the module
    docstring).

    Args:
        handle: the agent.
        notices: type a notice for a task another agent won; else ``discard`` it.
        discard: called with a message the program is not told of (to mark it read).

    Thread-safe (the mailbox's poll thread and a restart may call :meth:`decide`).
    """

    def __init__(
        self,
        handle: AgentHandle,
        *,
        notices: bool = True,
        discard: Callable[[Message], None],
    ) -> None:
        self.handle = handle
        self.notices = notices
        self._discard = discard
        self._lock = threading.Lock()
        self._decided: dict[int, Message | None] = {}  # message id → what is typed
        #: Tasks this runtime claimed, and the notices it gave, in order.
        self.won: list[int] = []
        self.lost: list[str] = []

    def decide(self, found: list[Message]) -> list[Message]:
        """``found`` (in order) as the program is to see it: a claimable message
        whose task this agent won stays; one it lost becomes its notice or is left
        out (and discarded)."""
        out: list[Message] = []
        for message in found:
            if message.task_id is None:
                out.append(message)
                continue
            with self._lock:
                known = message.id in self._decided
                typed = self._decided.get(message.id)
            if not known:
                typed = self._claim(message, message.task_id)
                with self._lock:
                    self._decided[message.id] = typed
                    while len(self._decided) > REMEMBERED:
                        del self._decided[next(iter(self._decided))]
                if typed is None:
                    self._discard(message)
            if typed is not None:
                out.append(typed)
        return out

    def _claim(self, message: Message, task_id: int) -> Message | None:
        """Claim ``task_id``: ``message`` if won, else its notice (None: quiet)."""
        try:
            self.handle.claim(task_id)
        except Conflict as exc:
            holder = exc.details.get("holder")
            why = f"was claimed by {holder}" if holder else f"was not claimed: {exc.message}"
            return self._lost(message, f"task {task_id} {why}")
        except RelayError as exc:
            logger.warning("could not claim task %s for %s: %s", task_id, self.handle.id, exc)
            return self._lost(message, f"task {task_id} was not claimed: {exc.message}")
        self.won.append(task_id)
        return message

    def _lost(self, message: Message, notice: str) -> Message | None:
        self.lost.append(notice)
        if not self.notices:
            return None
        return notice_of(message, notice)


def notice_of(message: Message, notice: str) -> Message:
    """``message`` with ``notice`` for its body and neither subject nor task: what a
    program that lost its task is typed (its header still names the message)."""
    return message.model_copy(update={"body": notice, "subject": None, "task_id": None})
