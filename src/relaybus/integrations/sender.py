"""The callback sender: posts the outbox's due callbacks to integrations, signed.

Runs on every replica (from the server's sweeper, :mod:`relaybus.server.sweeper`): each
round claims up to ``concurrency`` due callbacks (:meth:`Service.claim_callbacks`, one
sender per attempt across replicas), posts them at once with httpx, and records each
outcome (:meth:`Service.finish_callbacks`, one transaction a round: delivered, retried
later with backoff, or dead-lettered). Between rounds it sleeps until the next callback
is due, a task changes (the hub's wake-up), or ``poll`` seconds pass.

Outbound requests are JSON over http(s) with a timeout, never follow redirects, and go
only to hosts whose addresses are neither link-local nor a cloud metadata service (the
name is resolved and checked at each attempt; a name that re-resolves between the check
and httpx's own connect could still slip through, which only an egress proxy closes).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from .. import __version__
from ..service import Service
from ..service.callbacks import ClaimedCallback, Outcome
from ..service.integrations import refused_address
from . import signing

logger = logging.getLogger(__name__)

#: Seconds beyond the request timeout that a claimed attempt stays held.
HOLD_MARGIN = 5.0
#: Longest error text kept with an attempt (characters).
MAX_ERROR = 500


class Wakeup(Protocol):
    """What wakes the sender (the server's :class:`~relaybus.server.hub.Hub`):
    ``task_generation`` grows at each task change (or a replay);
    ``task_changed(seconds, since)`` returns once it is past ``since``, or after
    ``seconds``."""

    @property
    def task_generation(self) -> int: ...

    async def task_changed(self, timeout: float, since: int) -> None: ...


class RefusedHost(Exception):
    """A callback URL whose host resolves to a refused address."""


async def check_host(url: str) -> None:
    """Resolve ``url``'s host and refuse link-local and cloud metadata addresses.

    Raises:
        RefusedHost: a refused address, or a name that does not resolve.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, port)
        except OSError as exc:
            raise RefusedHost(f"cannot resolve {host}: {exc}") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
    for address in addresses:
        if refused_address(address):
            raise RefusedHost(f"{host} resolves to {address}, a refused (link-local) address")


class CallbackSender:
    """Posts due callbacks until stopped.

    Args:
        service: the relay.
        runner: this replica (``host:pid``), recorded with each attempt.
        timeout: seconds a receiver has to answer.
        concurrency: callbacks posted at once (and claimed per round).
        poll: the longest sleep between two looks at the outbox (seconds).
        transport: an httpx transport (tests; default: the network).
        observe: called with each attempt's outcome (``delivered``, ``failed``), e.g.
            to count it in the server's metrics.
    """

    def __init__(
        self,
        service: Service,
        *,
        runner: str,
        timeout: float,
        concurrency: int = 8,
        poll: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        observe: Callable[[str], None] | None = None,
    ) -> None:
        self.service = service
        self.runner = runner
        self.timeout = timeout
        self.concurrency = concurrency
        self.poll = poll
        self.transport = transport
        self.observe = observe

    async def run(self, stop: asyncio.Event, wakeup: Wakeup | None = None) -> None:
        """Send until ``stop`` is set, woken early by ``wakeup`` (the server's hub)
        when a task changes; without it the sender looks every ``poll`` seconds."""
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
            transport=self.transport,
            headers={"User-Agent": f"relaybus/{__version__}"},
        ) as client:
            while not stop.is_set():
                seen = 0 if wakeup is None else wakeup.task_generation
                try:
                    pause = await self.round(client)
                except Exception:  # the loop's top level: log, look again later
                    logger.exception("sending callbacks failed; trying again in %g s", self.poll)
                    pause = self.poll
                if pause > 0:
                    wake = wakeup.task_changed(pause, seen) if wakeup else asyncio.sleep(pause)
                    await _first(stop, wake, pause)

    async def round(self, client: httpx.AsyncClient) -> float:
        """Post every callback due now (``concurrency`` at a time).

        Returns:
            seconds until the next one is due (at most ``poll``), 0 to go on at once.
        """
        due = await asyncio.to_thread(self.service.next_callback_due)
        if due is None:
            return self.poll
        wait = due - self.service.now()
        if wait > 0:
            return min(wait, self.poll)
        claimed = await asyncio.to_thread(
            self.service.claim_callbacks,
            runner=self.runner,
            hold=self.timeout + HOLD_MARGIN,
            limit=self.concurrency,
        )
        outcomes = await asyncio.gather(*(self.post(client, one) for one in claimed))
        if outcomes:  # the round's outcomes in one transaction
            await asyncio.to_thread(self.service.finish_callbacks, outcomes)
        return 0.0 if claimed else self.poll

    async def post(self, client: httpx.AsyncClient, claimed: ClaimedCallback) -> Outcome:
        """Post one claimed callback; returns its outcome (recorded by the caller)."""
        body = json.dumps(claimed.payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Relaybus-Event": claimed.event,
            "X-Relaybus-Delivery": str(claimed.id),
            signing.HEADER: signing.sign(claimed.secret, body),
        }
        status: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            # One deadline for the whole attempt (httpx's timeout is per read: a
            # receiver trickling its answer could outlast the hold, and another
            # replica would post the same callback meanwhile).
            async with asyncio.timeout(self.timeout):
                await check_host(claimed.url)
                response = await client.post(claimed.url, content=body, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}: {response.text[:200]}".strip()
        except RefusedHost as exc:
            error = str(exc)
        except TimeoutError:
            error = f"no answer within {self.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        latency = time.monotonic() - started
        if self.observe is not None:
            self.observe("failed" if error else "delivered")
        if error:
            logger.info(
                "callback %d (%s) attempt %d: %s", claimed.id, claimed.url, claimed.attempt, error
            )
        return Outcome(claimed, status, latency, None if error is None else error[:MAX_ERROR])


async def _first(stop: asyncio.Event, wake: Awaitable[object], timeout: float) -> None:
    """Wait for ``stop``, ``wake`` or ``timeout`` seconds, whichever comes first."""
    stopping = asyncio.ensure_future(stop.wait())
    waking = asyncio.ensure_future(wake)
    try:
        await asyncio.wait({stopping, waking}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (stopping, waking):
            task.cancel()
