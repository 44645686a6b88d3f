"""Calls to the warm local relay (:mod:`relaybus.client.warm`) over its Unix socket,
with the standard library: :class:`relaybus.client.warm.Connection` (HTTP/1.1 on
``socket``) and ``json``.

:class:`WarmBackend` runs each :class:`~relaybus.client.transport.Call` as the
HTTP request :class:`~relaybus.client.backends.RemoteBackend` would send, on one
keep-alive connection to the relay's socket, with the same error mapping
(:func:`~relaybus.client.transport.problem_error`: problem+json becomes the
:class:`~relaybus.errors.RelayError` subclass of its status), the same long-polls
and the same retry rules (:func:`~relaybus.client.transport.retries`). It imports
no httpx, no ``http.client``, no SQLAlchemy, no asyncio, no ssl, no pydantic: a CLI
command that talks to the warm relay through :mod:`.warm_json` pays for the
interpreter, click and this.

The warm relay serves in open mode: no token is sent, and who the caller is (the
agent a call acts as, its epoch, the workspace) travels in each request, as for
any client of a server. The relay's answers are those of ``relaybus serve``; a
token it issues at registration is not kept (an embedded relay issues none).

:func:`open_relay` is the entry point of the CLI and the hooks: the relay the
settings point at, through the warm relay when it serves it (:func:`warm_dir`),
started when asked (:func:`~relaybus.client.warm.ensure`) or only found
(:func:`~relaybus.client.warm.probe`, for hooks, which must stay cheap), else in
this process. :func:`warm_backend` and :func:`connect_warm` give the warm part alone
(:mod:`.warm_json` runs the CLI's hot commands on it without the SDK's models).

A hand-written module with no async twin: ``scripts/unasync.py`` does not touch it.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlencode

from .. import __version__
from ..errors import InvalidInput, NoRelay, StoreError
from ..settings import Settings, find_relay_dir
from . import warm
from .request import LONGPOLL_CHUNK, LONGPOLL_MARGIN, READ_TIMEOUT

if TYPE_CHECKING:
    from ..models import Event
    from ..service import Service
    from .calls import Registration
    from .relay import Relay
    from .request import Request
    from .transport import Call, StreamQuery


T = TypeVar("T")

#: The SQLite file of a relay folder (as :data:`relaybus.store.locate.DB_FILENAME`,
#: kept apart: importing the store loads SQLAlchemy).
DB_FILENAME = "relay.db"


def warm_dir(settings: Settings) -> Path | None:
    """The relay folder whose warm relay serves ``settings``, or ``None`` when the
    warm relay cannot: a relay server is given (``RELAYBUS_URL``), ``RELAYBUS_DAEMON``
    turns it off, or the database is not a relay folder's ``relay.db`` (PostgreSQL,
    another SQLite file name, a query string).

    Absolute; found like git when no folder is given (:func:`~relaybus.settings.find_relay_dir`).
    """
    if settings.url or warm.disabled():
        return None
    if settings.database:
        scheme, sep, rest = settings.database.partition(":///")
        if not sep or scheme not in ("sqlite", "sqlite+pysqlite") or "?" in rest:
            return None
        path = Path(rest)
        return Path(os.path.abspath(path.parent)) if path.name == DB_FILENAME else None
    return Path(os.path.abspath(settings.dir or find_relay_dir()))


def open_relay(
    settings: Settings, *, create: bool = True, in_process: bool = False, start: bool = True
) -> Relay:
    """The relay ``settings`` point at, as :meth:`Relay.open <relaybus.client.relay.Relay.open>`
    opens it, but with the embedded store served by its warm relay when :func:`warm_dir`
    allows: the CLI's commands and the hooks open their relay here.

    Args, Raises: as :func:`warm_backend`.
    """
    from .relay import Relay

    backend = warm_backend(settings, create=create, in_process=in_process, start=start)
    if backend is not None:
        return Relay(backend)
    return Relay.open(settings=settings, create=create)


def warm_backend(
    settings: Settings, *, create: bool = True, in_process: bool = False, start: bool = True
) -> WarmBackend | None:
    """The warm relay serving the embedded store ``settings`` point at, or ``None`` when
    the store is to be opened in this process (a relay server is given, the warm relay
    is off or cannot serve that database, or ``start`` is false and none runs).

    Args:
        create: create the embedded store when there is none (in this process, as
            :meth:`Relay.open` does, then through the warm relay); otherwise a missing
            store raises :class:`~relaybus.errors.NoRelay` and nothing is started.
        in_process: open the store in this process whatever the settings say.
        start: start the warm relay when none runs; ``False`` (hooks) uses it only
            when one of this version answers, else opens the store in this process.

    Raises:
        NoRelay: no embedded relay here and not ``create``.
        StoreError: the database cannot be created, or the warm relay did not start.
            InvalidInput: bad settings.
    """
    relay_dir = None if in_process else warm_dir(settings)
    if relay_dir is None:
        return None
    if create and not (relay_dir / DB_FILENAME).exists():
        from .relay import Relay

        Relay.open(settings=settings, create=True).close()
    return connect_warm(settings, relay_dir, start=start)


def connect_warm(settings: Settings, relay_dir: Path, *, start: bool = True) -> WarmBackend | None:
    """A :class:`WarmBackend` on the warm relay of ``relay_dir`` (its ``relay.db`` must
    exist: the relay would create it), or ``None``.

    Args:
        start: start the relay when none answers (:func:`~relaybus.client.warm.ensure`:
            a relay of another version is replaced). ``False`` only looks
            (:func:`~relaybus.client.warm.probe`) and returns ``None`` when no relay of
            this version answers: the caller opens the store itself.

    Raises:
        NoRelay: there is no ``relay.db`` in ``relay_dir`` (nothing is started).
        StoreError: ``start`` and the relay did not start.
    """
    if not (relay_dir / DB_FILENAME).exists():
        # The message of relaybus.store.files.no_relay (importing it loads SQLAlchemy).
        raise NoRelay("no relay here: run `relaybus init`", path=str(relay_dir / DB_FILENAME))
    if start:
        info = warm.ensure(relay_dir)
    else:
        found = warm.probe(relay_dir)
        if found is None or found.version != __version__:
            return None
        info = found
    return WarmBackend(settings, relay_dir, info.socket, start=start)


class _Answer:
    """A response, in the shape :func:`~relaybus.client.transport.problem_error` reads."""

    __slots__ = ("status_code", "content", "reason_phrase", "headers")

    def __init__(self, answer: warm.WarmResponse) -> None:
        self.status_code = answer.status
        self.content = answer.body
        self.reason_phrase = answer.reason
        retry_after = answer.headers.get("retry-after")
        self.headers: Mapping[str, str] = (
            {} if retry_after is None else {"Retry-After": retry_after}
        )


class WarmBackend:
    """Calls to the warm relay listening on ``socket`` (the relay of ``relay_dir``),
    over one keep-alive :class:`~relaybus.client.warm.Connection`.

    A call whose connection cannot be made (the relay exited: killed, or idle) is
    sent to a relay started again (when ``start``); a GET or a call with an
    idempotency key whose connection breaks before the answer is sent again, up to
    three times in all, a moment apart, as :class:`~relaybus.client.backends.RemoteBackend`
    does; other requests are not repeated (they must not happen twice).
    """

    wait_step = LONGPOLL_CHUNK

    def __init__(
        self, settings: Settings, relay_dir: Path, socket: Path, *, start: bool = True
    ) -> None:
        self._settings = settings
        self.relay_dir = relay_dir
        self.socket = socket
        self.start = start
        self._connection = warm.Connection(socket)

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def url(self) -> None:
        """No server of the caller's: the warm relay stands in for the embedded store."""
        return None

    @property
    def service(self) -> Service:
        """The database is in the warm relay's process, not here. Raises InvalidInput."""
        raise InvalidInput(
            "this needs the database itself, which the warm local relay holds: "
            "set RELAYBUS_DAEMON=0 to open it in this process"
        )

    def run(self, call: Call[T]) -> T:
        """Send one call and return its result.

        Raises: as :meth:`request`.
        """
        return call.parse(self.request(call.request))

    def request(self, call: Request) -> bytes:
        """Send one request and return the body of the relay's answer.

        Raises:
            RelayError: the relay refused (the subclass of the status).
            StoreError: no answer from the relay (it could not be started or reached,
                or it did not answer in time).
        """
        method, target, body, headers = self._request(call)
        timeout = call.wait + LONGPOLL_MARGIN if call.wait > 0 else READ_TIMEOUT
        limit = call.attempts()
        attempt, restarted = 1, False
        while True:
            connection = self._connection
            try:
                if not connection.connected:
                    connection.connect()
            except OSError as exc:  # nobody listens: nothing was sent
                if not self.start or restarted:
                    raise self._unreachable(exc, call) from None
                self.socket = connection.path = warm.ensure(self.relay_dir).socket
                restarted = True
                continue
            connection.settimeout(timeout)
            try:
                answer = connection.request(method, target, body=body, headers=headers)
            except ValueError as exc:
                raise InvalidInput(str(exc)) from None
            except TimeoutError as exc:
                raise self._unreachable(exc, call) from None
            except OSError as exc:  # the connection broke: it may have happened
                if attempt >= limit:
                    raise self._unreachable(exc, call) from None
                attempt += 1
                from .transport import RetryPause

                RetryPause.before(attempt)
                continue
            if answer.status >= 400:
                from .transport import problem_error

                raise problem_error(_Answer(answer), f"the warm relay {self.socket}")
            return answer.body

    def _request(self, call: Request) -> tuple[str, str, bytes | None, dict[str, str]]:
        """``(method, target, body, headers)`` of ``call``, as :class:`HTTPSession`
        sends them through httpx, without a token (the relay serves in open mode)."""
        headers, content = call.encode()
        target = call.path
        query = call.query()
        if query:
            target += "?" + urlencode(query, doseq=True)
        return call.method, target, content, {"User-Agent": f"relaybus/{__version__}", **headers}

    def _unreachable(self, exc: BaseException, call: Request) -> StoreError:
        reason = str(exc) or type(exc).__name__
        message = f"cannot reach the warm relay at {self.socket}: {reason}"
        key = call.idempotency_key
        if key is None:
            return StoreError(message, socket=str(self.socket))
        return StoreError(
            f"{message} (it may have been sent: retry with idempotency_key={key!r} "
            "to send it at most once)",
            socket=str(self.socket),
            idempotency_key=key,
        )

    def remember(self, registration: Registration) -> None:
        """Nothing to keep: the warm relay needs no token (open mode)."""
        return None

    def token_for(self, agent_id: str, *, workspace: str) -> str | None:
        return None

    def stream(self, query: StreamQuery) -> Generator[Event, None, None]:
        """Not through the warm relay: the commands that follow the log (``watch``,
        ``mcp``, ``run``, ``tmux``) open the store themselves.

        Raises:
            InvalidInput: always.
        """
        raise InvalidInput(
            "live events are not followed through the warm local relay: open the store "
            "in this process (RELAYBUS_DAEMON=0) or use a relay server (RELAYBUS_URL)"
        )

    def close(self) -> None:
        """Close the connection (the relay goes on)."""
        self._connection.close()
