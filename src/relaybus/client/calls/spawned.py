"""Spawned agents' calls (issue 19): the warm local relay's supervisor over HTTP
(``/v1/spawned``), and the runners that send them where a supervisor is.

Spawning has no embedded form: the programs must outlive the process that asked, so
the warm local relay of the relay folder runs them. A relay server answers these
calls itself (``relaybus serve`` with 501: it supervises nothing); an embedded relay
sends them to its folder's warm relay (:func:`spawn_runner`), started on demand.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ...errors import RelayError
from ...models import SpawnedAgent, SpawnedScreen
from .. import spawn_requests as requests
from ..transport import Call
from .base import _builder

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from ...service import Service
    from ..aio_backends import AsyncBackend
    from ..backends import Backend

T = TypeVar("T")

#: The one line an embedded relay that cannot reach a warm relay says.
NEEDS_WARM = (
    "spawning needs the warm local relay (relaybus spawn starts it); RELAYBUS_DAEMON=0 turns it off"
)
#: The SQLite file of a relay folder (see :data:`relaybus.client.warm_backend.DB_FILENAME`).
DB_FILENAME = "relay.db"

_LIST: list[TypeAdapter[list[SpawnedAgent]]] = []


def _agents(content: bytes) -> list[SpawnedAgent]:
    if not _LIST:
        from pydantic import TypeAdapter

        _LIST.append(TypeAdapter(list[SpawnedAgent]))
    return _LIST[0].validate_json(content)


def _lines(content: bytes) -> list[str]:
    return [str(line) for line in json.loads(content)["lines"]]


def _nothing(_: bytes) -> None:
    return None


def _refused(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise RelayError(NEEDS_WARM)


def _not_embedded(_service: Service) -> Callable[..., NoReturn]:
    # An embedded relay sends these calls to its warm relay (aio_spawn): never here.
    return _refused


_one = SpawnedAgent.model_validate_json

spawn = _builder(requests.spawn, _one, _not_embedded)
list_spawned = _builder(requests.list_spawned, _agents, _not_embedded)
get_spawned = _builder(requests.get_spawned, _one, _not_embedded)
release_spawned = _builder(requests.release_spawned, _one, _not_embedded)
send_input = _builder(requests.send_input, _nothing, _not_embedded)
screen = _builder(requests.screen, SpawnedScreen.model_validate_json, _not_embedded)
logs = _builder(requests.logs, _lines, _not_embedded)


# -- where the calls go --------------------------------------------------------------


def warm_folder(backend: AsyncBackend | Backend) -> Path:
    """The relay folder of an embedded backend's store, whose warm relay spawns.

    Raises:
        RelayError: ``RELAYBUS_DAEMON`` turns the warm relay off, or the store is not
            a relay folder's ``relay.db`` (PostgreSQL, another file).
    """
    from .. import warm

    if warm.disabled():
        raise RelayError(NEEDS_WARM)
    path = backend.service.store.path
    if path is None or Path(path).name != DB_FILENAME:
        raise RelayError(
            "spawning needs the warm local relay, which serves a relay folder's relay.db, "
            "not this database"
        )
    return Path(os.path.abspath(Path(path).parent))


class WarmRunner:
    """Runs the spawn calls of an embedded relay on its folder's warm relay (started
    here when none runs: :func:`relaybus.client.warm.ensure`), one connection a call
    (nothing stays open for the relay to close)."""

    def __init__(self, backend: Backend) -> None:
        from .. import warm

        self._settings = backend.settings
        self._folder = warm_folder(backend)
        self._socket = warm.ensure(self._folder).socket

    def run(self, call: Call[T]) -> T:
        from ..warm_backend import WarmBackend

        backend = WarmBackend(self._settings, self._folder, self._socket)
        try:
            return backend.run(call)
        finally:
            self._socket = backend.socket  # a relay started again may listen elsewhere
            backend.close()


class AsyncWarmRunner:
    """:class:`WarmRunner` for an async relay: each call in a worker thread."""

    def __init__(self, backend: AsyncBackend) -> None:
        self._runner = WarmRunner(backend)  # type: ignore[arg-type]

    async def run(self, call: Call[T]) -> T:
        import asyncio  # here: the CLI's hot commands import this module, not asyncio

        return await asyncio.to_thread(self._runner.run, call)


class Offload:
    """Runs a blocking function (a preflight's ``--version`` runs): here, at once."""

    def __call__(self, function: Callable[..., T], *args: Any) -> T:
        return function(*args)


class AsyncOffload:
    """:class:`Offload` for an async relay: in a worker thread."""

    async def __call__(self, function: Callable[..., T], *args: Any) -> T:
        import asyncio

        return await asyncio.to_thread(function, *args)
