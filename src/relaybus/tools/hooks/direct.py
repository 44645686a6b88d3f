"""The session agent's unread mail, read by the hook command itself when the
session's ``relaybus mcp`` does not answer yet (it takes seconds to start, and
Claude Code does not wait for it), so that mail waiting at the start of a
session reaches the model in SessionStart's output.

Standard library only, like :mod:`.command`: it runs inside a hook's budget.

- Embedded store: one read-only query (``sqlite3``, ``mode=ro``) over
  ``deliveries`` ⨝ ``messages`` for the agent's unread deliveries, oldest
  first, as the service's inbox read does (:meth:`relaybus.service.inbox.InboxOps.inbox`).
  The store is located as the library does (``RELAYBUS_DATABASE``, then
  ``RELAYBUS_DIR``, then ``.relay/`` found like git, see :func:`find_relay_dir`);
  where there is none, nothing is read and nothing is created.
- Server (``RELAYBUS_URL``): ``GET /v1/agents/{id}/inbox?unread_only=true&mark_read=false``
  with ``RELAYBUS_TOKEN``.
- The warm local relay of the embedded store (:mod:`relaybus.client.warm`, as lean
  as this module), when one answers on the relay folder's socket (unless
  ``RELAYBUS_DAEMON=0``): the same requests over the Unix socket. A hook never
  starts the warm relay; where none answers it reads SQLite itself.

It never marks anything read. The hook prints what it read, records the ids it
printed in a per-session *printed* file (:func:`.ledger.record_printed`, mode
0600, in the session's private runtime folder) and hands them to its background process,
which marks exactly those read with ``via=hook`` and removes the file. Until
then every later hook skips those ids (:func:`.ledger.printed`), and hands them again
to whatever marks mail read (the session's ``relaybus mcp``, or its own
background process), so each message reaches the model once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from ...records import FrozenRecord

# Not ``from typing import ...``: importing typing costs every hook about 5 ms, and
# the annotations are never evaluated; type checkers treat ``TYPE_CHECKING`` as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from typing import Any, TypeVar

    T = TypeVar("T")
    #: ``get(target)``: the JSON answer of ``GET target`` (a path with its query).
    Getter = Callable[[str], Any]

#: At most this many messages per hook output; the rest wait for the next one.
MAX_MESSAGES = 10
#: A body longer than this many characters is cut (the inbox tool has it whole).
MAX_BODY = 2000
#: Mirrors :mod:`relaybus.store.locate` (kept apart: importing ``relaybus.store``
#: loads SQLAlchemy, far too slow for a hook).
RELAY_DIRNAME = ".relay"
DB_FILENAME = "relay.db"

#: One unread read: the SQL of :func:`sqlite_mail`. The window count is taken
#: before the LIMIT: every unread delivery that is not skipped.
UNREAD_SQL = """
SELECT m.id, m.sender, m.thread_id, m.channel, m.subject, m.body, m.priority,
       m.task_id, t.status, COUNT(*) OVER () AS unread, json_extract(m.meta, '$.pair')
FROM deliveries AS d
JOIN messages AS m ON m.id = d.message_id
LEFT JOIN tasks AS t ON t.id = m.task_id AND t.workspace = m.workspace
WHERE d.workspace = ? AND d.agent_id = ? AND d.read_at IS NULL
  AND d.message_id NOT IN (SELECT value FROM json_each(?))
ORDER BY d.message_id
LIMIT ?
"""


class Mail(FrozenRecord):
    """One unread message as the hook shows it.

    ``task_status`` is the status value of the message's task (``"open"``,
    ``"done"``…), None when it has none or the task is gone.
    """

    __slots__ = (
        "id",
        "sender",
        "thread_id",
        "channel",
        "subject",
        "body",
        "priority",
        "task_id",
        "task_status",
        "pair",
    )
    id: int
    sender: str
    thread_id: int
    channel: str | None
    subject: str | None
    body: str
    priority: str
    task_id: int | None
    task_status: str | None
    pair: int | None

    def __init__(
        self,
        id: int,
        sender: str,
        thread_id: int,
        channel: str | None,
        subject: str | None,
        body: str,
        priority: str,
        task_id: int | None,
        task_status: str | None,
        pair: object = None,
    ) -> None:
        self._set(
            id=id,
            sender=sender,
            thread_id=thread_id,
            channel=channel,
            subject=subject,
            body=body,
            priority=priority,
            task_id=task_id,
            task_status=task_status,
            pair=pair if isinstance(pair, int) and not isinstance(pair, bool) else None,
        )


class UnreadPage(FrozenRecord):
    """A page of unread mail, oldest first, and how many more are unread after it
    (``at_least``: that many or more, from a count that stopped at its limit)."""

    __slots__ = ("mail", "more", "at_least")
    mail: list[Mail]
    more: int
    at_least: bool

    def __init__(self, mail: list[Mail], more: int = 0, at_least: bool = False) -> None:
        self._set(mail=mail, more=more, at_least=at_least)


def task_text(task_id: int, status: str | None) -> str:
    """How a message's task reads in the context: offered for claiming only
    while it is open, otherwise its status (nobody should take up done work)."""
    if status is None:
        return f"task {task_id} (gone)"
    if status == "open":
        return f"task {task_id} (open: claim it with the task tool)"
    return f"task {task_id} ({status.replace('_', ' ')}: nothing to claim)"


def render_mail(mail: Sequence[Mail], *, more: int = 0, at_least: bool = False) -> str:
    """Unread messages as text for the model's context, oldest first; ``more``
    unread after them (``at_least``: that many or more, said ``N+``)."""
    head = f"relaybus: {len(mail)} new message{'s' if len(mail) != 1 else ''}"
    count = f"{more}+" if at_least else str(more)
    parts = [head + (f" ({count} more unread: call the inbox tool)" if more else "") + "."]
    for msg in mail:
        tags = [f"#{msg.id} from {msg.sender}"]
        if msg.pair is not None:
            tags.append(f"pair {msg.pair}")
        if msg.thread_id != msg.id:
            tags.append(f"in thread #{msg.thread_id}")
        if msg.channel:
            tags.append(f"channel {msg.channel}")
        if msg.task_id:
            tags.append(task_text(msg.task_id, msg.task_status))
        if msg.priority != "normal":
            tags.append(f"priority {msg.priority}")
        body = msg.body if len(msg.body) <= MAX_BODY else msg.body[:MAX_BODY] + " […]"
        subject = f"Subject: {msg.subject}\n" if msg.subject else ""
        parts.append(f"[{', '.join(tags)}]\n{subject}{body}")
    parts.append("Answer with send(to=..., reply_to=ID) if a reply is needed.")
    paired = sorted({msg.pair for msg in mail if msg.pair is not None})
    if paired:
        parts[-1] += (
            f" In pair {', '.join(map(str, paired))}: task(action=pair_send, pair_id=N, "
            "body=...); answer an invite with pair_accept or pair_reject."
        )
    return "\n\n".join(parts)


# -- where the store is -------------------------------------------------------------


def find_relay_dir(start: Path) -> Path:
    """The relay directory for ``start``, found like git and never above the
    repository: the nearest ``.relay/`` between ``start`` and the repository
    root (the nearest ``.git``, folder or file), else the root's ``.relay``;
    outside any repository ``start/.relay`` only. The same rule as
    :func:`relaybus.store.find_relay_dir` (a test holds them together).

    Returns:
        the ``.relay`` path (it may not exist).
    """
    here = start.resolve()
    chain = (here, *here.parents)
    root = next((folder for folder in chain if (folder / ".git").exists()), None)
    if root is None:
        return here / RELAY_DIRNAME
    for folder in chain:
        if (folder / RELAY_DIRNAME).is_dir():
            return folder / RELAY_DIRNAME
        if folder == root:
            break
    return root / RELAY_DIRNAME


def database_file(env: Mapping[str, str], cwd: Path) -> Path | None:
    """The SQLite file of the embedded store ``env`` points at from ``cwd``;
    None for a database this module cannot read (PostgreSQL)."""
    url = env.get("RELAYBUS_DATABASE", "").strip()
    if url:
        scheme, sep, rest = url.partition(":///")
        if not sep or scheme not in ("sqlite", "sqlite+pysqlite"):
            return None
        return cwd / rest.partition("?")[0]
    folder = env.get("RELAYBUS_DIR", "").strip()
    relay_dir = cwd / folder if folder else find_relay_dir(cwd)
    return relay_dir / DB_FILENAME


# -- reading ------------------------------------------------------------------------


def sqlite_mail(
    db: Path,
    workspace: str,
    agent_id: str,
    *,
    skip: Iterable[int] = (),
    limit: int = MAX_MESSAGES,
    timeout: float = 0.5,
) -> UnreadPage:
    """The first ``limit`` unread messages of ``agent_id`` in the SQLite
    store ``db``, oldest first, leaving out the ids in ``skip``. Reads only:
    no file exists → nothing (and nothing is created). ``timeout``: seconds
    to wait for a lock (a read waits only while a checkpoint resets the log).

    Raises:
        sqlite3.Error: not a relay database, or it could not be read.
    """
    if not db.is_file():
        return UnreadPage([])
    conn = read_only(db, timeout)
    try:
        rows = conn.execute(
            UNREAD_SQL, (workspace, agent_id, json.dumps(sorted(set(skip))), limit)
        ).fetchall()
    finally:
        conn.close()
    mail = [
        Mail(
            id=int(r[0]),
            sender=r[1],
            thread_id=int(r[2] if r[2] is not None else r[0]),
            channel=r[3],
            subject=r[4],
            body=r[5],
            priority=r[6],
            task_id=r[7],
            task_status=r[8] if r[7] else None,
            pair=r[10],
        )
        for r in rows
    ]
    return UnreadPage(mail, int(rows[0][9]) - len(mail) if rows else 0)


def read_only(db: Path, timeout: float) -> sqlite3.Connection:
    """A read-only connection (``mode=ro``: it never creates nor writes) to the
    SQLite file ``db``, waiting up to ``timeout`` seconds for a lock.

    Raises:
        sqlite3.Error: it cannot be opened.
    """
    import sqlite3  # here: a hook that reads through the warm relay never needs it
    from urllib.parse import quote

    uri = "file:" + quote(str(db.absolute()), safe="/") + "?mode=ro"
    return sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)


def http_mail(
    url: str,
    token: str | None,
    workspace: str,
    agent_id: str,
    *,
    skip: Iterable[int] = (),
    limit: int = MAX_MESSAGES,
    timeout: float = 0.5,
) -> UnreadPage:
    """The same as :func:`sqlite_mail` from the relay server at ``url``: one
    ``GET /v1/agents/{id}/inbox`` (unread, not marked), plus the unread count
    when there is more than a page and each task's status.

    Raises:
        OSError: the server did not answer in ``timeout`` seconds or refused
            (``urllib.error.HTTPError`` is one).
        ValueError: the answer is not an inbox.
    """
    base = url.rstrip("/")
    return api_mail(
        lambda target: _get(base + target, token, workspace, timeout),
        agent_id,
        skip=skip,
        limit=limit,
    )


def warm_mail(
    path: Path, workspace: str, agent_id: str, *, timeout: float = 0.5, **page: Any
) -> UnreadPage:
    """The same as :func:`http_mail` from the warm local relay listening on the
    Unix socket ``path`` (open mode: no token), on one connection; ``page`` holds
    ``skip`` and ``limit`` (see :func:`api_mail`).

    Raises:
        OSError: nobody listens on ``path`` (:class:`ConnectionRefusedError`,
            :class:`FileNotFoundError`), or the relay did not answer in ``timeout``
            seconds, or refused (:class:`HTTPStatusError`).
        ValueError: the answer is not an inbox, or ``workspace`` cannot go in a header.
    """
    return warm_read(path, workspace, lambda get: api_mail(get, agent_id, **page), timeout)


def warm_read(path: Path, workspace: str, api: Callable[[Getter], T], timeout: float) -> T:
    """``api(get)``, ``get(target)`` being the JSON answer of ``GET target`` from the
    warm local relay on the Unix socket ``path`` (one connection).

    Raises:
        OSError: as :func:`warm_mail`; HTTPStatusError for an error status.
        ValueError: an answer is not JSON, or ``workspace`` cannot go in a header.
    """
    from ...client.warm import Connection

    connection = Connection(path, timeout)
    headers = {"X-Relaybus-Workspace": workspace, "Accept": "application/json"}

    def get(target: str) -> Any:
        answer = connection.request("GET", target, headers=headers)
        if answer.status >= 400:
            raise HTTPStatusError(answer.status, answer.body[:200].decode("utf-8", "replace"))
        return json.loads(answer.body)

    try:
        return api(get)
    finally:
        connection.close()


def api_mail(
    get: Callable[[str], Any],
    agent_id: str,
    *,
    skip: Iterable[int] = (),
    limit: int = MAX_MESSAGES,
) -> UnreadPage:
    """The first ``limit`` unread messages of ``agent_id`` through the HTTP API,
    ``get(target)`` being the JSON answer of ``GET target`` (a path with its query).

    Raises:
        OSError: from ``get`` (one with ``code`` 404 for a gone task is no error).
        ValueError: the answer is not an inbox.
    """
    from urllib.parse import quote, urlencode

    skipped = set(skip)
    agent = f"/v1/agents/{quote(agent_id, safe='')}"
    query = {
        "unread_only": "true",
        "mark_read": "false",
        "newest_first": "false",
        "limit": str(min(limit + 1 + len(skipped), 1000)),
    }
    found = get(f"{agent}/inbox?{urlencode(query)}")
    if not isinstance(found, list):
        raise ValueError("the server's inbox is not a list")
    rows = [m for m in found if isinstance(m, dict) and m.get("id") not in skipped]
    more = 0
    at_least = False
    if len(rows) > limit:
        count = get(f"{agent}/inbox/count")
        unread = int(count["unread"]) if isinstance(count, dict) else 0
        # The count stops at its "limit" (1,000): there may be more.
        at_least = isinstance(count, dict) and unread >= int(count.get("limit") or unread + 1)
        more = max(unread - len(skipped) - limit, 0)
    mail = []
    for m in rows[:limit]:
        task_id = m.get("task_id")
        status = _task_status(get, int(task_id)) if task_id else None
        mail.append(
            Mail(
                id=int(m["id"]),
                sender=str(m["sender"]),
                thread_id=int(m.get("thread_id") or m["id"]),
                channel=m.get("channel"),
                subject=m.get("subject"),
                body=str(m["body"]),
                priority=str(m.get("priority") or "normal"),
                task_id=task_id,
                task_status=status,
                pair=(m.get("meta") or {}).get("pair"),
            )
        )
    return UnreadPage(mail, more, at_least)


def _get(url: str, token: str | None, workspace: str, timeout: float) -> Any:
    from urllib.request import Request, urlopen

    headers = {"X-Relaybus-Workspace": workspace, "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with urlopen(Request(url, headers=headers), timeout=timeout) as response:
        return json.loads(response.read())


class HTTPStatusError(OSError):
    """The warm relay answered with an error status (``code``), as
    ``urllib.error.HTTPError`` says it for a server (:func:`_task_status` reads it)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"HTTP {code}: {message}")
        self.code = code


def _task_status(get: Callable[[str], Any], task_id: int) -> Any:
    try:
        task = get(f"/v1/tasks/{task_id}")
    except OSError as exc:
        if getattr(exc, "code", None) == 404:
            return None  # gone
        raise
    return task.get("status") if isinstance(task, dict) else None


def unread_mail(
    agent_id: str,
    env: Mapping[str, str],
    cwd: Path,
    *,
    skip: Iterable[int] = (),
    timeout: float = 0.5,
) -> UnreadPage:
    """The session agent's first page of unread mail from the relay ``env``
    points at (see the module docstring: a server, else the warm local relay when
    one answers, else the SQLite file), ``skip`` left out; empty when a
    terminal runtime delivers the session's mail (``RELAYBUS_RUNTIME``) or the
    store cannot be read without the relay stack (PostgreSQL).

    Raises:
        OSError, ValueError, sqlite3.Error: the relay could not be read.
    """
    if env.get("RELAYBUS_RUNTIME"):
        return UnreadPage([])
    return read_relay(
        env,
        cwd,
        api=lambda get: api_mail(get, agent_id, skip=skip),
        sqlite=lambda db, workspace: sqlite_mail(
            db, workspace, agent_id, skip=skip, timeout=timeout
        ),
        missing=UnreadPage([]),
        timeout=timeout,
    )


def read_relay(
    env: Mapping[str, str],
    cwd: Path,
    *,
    api: Callable[[Getter], T],
    sqlite: Callable[[Path, str], T],
    missing: T,
    timeout: float,
) -> T:
    """One read of the relay ``env`` points at from ``cwd``, without the relay stack:
    ``api(get)`` against the server (``RELAYBUS_URL``, with ``RELAYBUS_TOKEN``), else
    against the warm local relay when one answers (``missing`` when it answers 404:
    no such agent yet), else ``sqlite(db, workspace)`` on the store's file; ``missing``
    when the store cannot be read without the stack (PostgreSQL). ``get(target)`` is
    the JSON answer of ``GET target`` (a path with its query) within ``timeout`` seconds.

    Raises:
        OSError, ValueError, sqlite3.Error: the relay could not be read.
    """
    workspace = env.get("RELAYBUS_WORKSPACE", "").strip() or "default"
    url = env.get("RELAYBUS_URL", "").strip()
    if url:  # as ``Relay.open()``: a server, when one is set, wins over a store
        token = env.get("RELAYBUS_TOKEN", "").strip() or None
        base = url.rstrip("/")
        return api(lambda target: _get(base + target, token, workspace, timeout))
    db = database_file(env, cwd)
    if db is None:
        return missing
    path = warm_socket(db, env)
    if path is not None:
        try:
            return warm_read(path, workspace, api, timeout)
        except HTTPStatusError as exc:
            if exc.code == 404:
                return missing  # no such agent (yet), as in the file
            raise
        except TimeoutError:
            raise  # the budget is spent
        except (OSError, ValueError):
            pass  # no warm relay there (or it failed): read the file
    return sqlite(db, workspace)


def warm_socket(db: Path, env: Mapping[str, str]) -> Path | None:
    """Where the warm local relay of the relay folder holding ``db`` would listen;
    ``None`` when ``db`` is no relay folder's existing ``relay.db`` or
    ``RELAYBUS_DAEMON`` turns the warm relay off."""
    if db.name != DB_FILENAME or not db.is_file():
        return None
    from ...client import warm  # as lean as this module: only when there is a store

    return None if warm.disabled(env) else warm.socket_path(db.parent)
