"""Integrations: external systems (monitoring, CI, ticket desks) that raise work as tasks.

An integration has its own bearer token (``rbi_…``, kept as its SHA-256 like an agent's),
scopes saying what the token may do, the target expressions and channels it may address,
a rate limit (events per minute, counted in the store so that replicas share it), and an
optional callback URL that hears every change of the tasks it raised, signed with its
secret (:mod:`relaybus.service.outbox`, :mod:`relaybus.service.callbacks`).

What an integration's events do is :mod:`relaybus.service.ingress`. The model is
agent-relay-server's "Integrations And Tasks" (the seed ``001`` in ``shared/seeds``).

A message an integration causes is sent by ``integration:NAME``, one the operator causes
by ``relaybus``: neither can be an agent's id (ids hold no ``:``; ``relaybus`` is kept
apart by the prefix-free rule below), so no agent can act as them.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..bounds import MAX_URL
from ..errors import Conflict, InvalidInput, NotFound
from ..models import (
    Integration,
    IntegrationCreated,
    IntegrationStatus,
)
from ..store.schema import integrations, rate_counts, tokens
from .common import (
    ServiceBase,
    append_event,
    check_name,
    check_text,
)
from .drafts import OPERATOR_SENDER
from .tokens import INTEGRATION as KIND
from .tokens import hash_token

#: What an integration token may do.
SCOPES = ("tasks:create", "tasks:read", "messages:send", "events:read")
#: The scopes of an integration created without any named.
DEFAULT_SCOPES = ("tasks:create", "tasks:read")
#: In ``targets`` or ``channels``: any.
ANY = "*"
TOKEN_PREFIX = "rbi_"
SECRET_PREFIX = "whsec_"
#: The sender of what the operator (an admin, no agent) causes (a reserved agent id).
OPERATOR = OPERATOR_SENDER
#: Longest dedupe key.
MAX_DEDUPE_KEY = 255
#: Host names of cloud metadata services, refused as callback hosts (with every
#: link-local address, which covers 169.254.169.254 on every cloud).
METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.azure.com", "instance-data"}
)
#: Metadata addresses outside the link-local ranges (AWS's IPv6 one, Alibaba's).
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
)


def integration_sender(name: str) -> str:
    """The sender (and task creator) of what integration ``name`` causes."""
    return f"{KIND}:{name}"


def refused_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a callback may not go to ``address``: link-local (cloud metadata
    services live there: 169.254.169.254) or a known metadata address. Loopback and
    private networks are allowed: receivers often run beside the relay."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_link_local or address in METADATA_ADDRESSES


def check_callback_url(url: str) -> str:
    """A callback URL: ``http(s)://host[:port]/path``, not to a link-local or cloud
    metadata host (the sender checks the addresses the name resolves to again, at
    each attempt).

    Raises:
        InvalidInput: another scheme, no host, credentials in the URL, or a refused host.
    """
    check_text("the callback URL", url)
    if len(url) > MAX_URL:
        raise InvalidInput(f"a callback URL has at most {MAX_URL} characters", field="callback_url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as exc:
        raise InvalidInput(f"invalid callback URL {url!r}: {exc}", field="callback_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"a callback URL is http:// or https:// with a host, not {url!r}", field="callback_url"
        )
    if parts.username or parts.password:
        raise InvalidInput("a callback URL carries no credentials", field="callback_url")
    host = parts.hostname.rstrip(".").lower()
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if host in METADATA_HOSTS or (literal is not None and refused_address(literal)):
        raise InvalidInput(
            f"callbacks may not go to {host}: link-local and cloud metadata addresses are refused",
            field="callback_url",
        )
    return url


def check_external_url(url: str) -> str:
    """A link to the thing an event is about: ``http(s)://…``, at most :data:`MAX_URL`
    characters.

    Raises:
        InvalidInput: anything else.
    """
    check_text("the external URL", url)
    if len(url) > MAX_URL or not url.lower().startswith(("http://", "https://")):
        raise InvalidInput(
            f"an external URL is an http(s) URL of at most {MAX_URL} characters",
            field="external_url",
        )
    return url


def check_key(key: str) -> str:
    """A dedupe key: 1-:data:`MAX_DEDUPE_KEY` characters, no control character.

    Raises:
        InvalidInput: anything else.
    """
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= MAX_DEDUPE_KEY
        or any(ord(c) < 0x20 or c == "\x7f" for c in key)
    ):
        raise InvalidInput(
            f"a dedupe key is 1-{MAX_DEDUPE_KEY} characters without control characters",
            field="dedupe_key",
        )
    return key


def _check_allowed(values: Iterable[str] | None, check: Any) -> list[str]:
    found = []
    for value in values or ():
        if value != ANY:
            check(value)
        if value not in found:
            found.append(value)
    return found


def _check_scopes(scopes: Iterable[str] | None) -> list[str]:
    chosen = list(DEFAULT_SCOPES) if scopes is None else list(dict.fromkeys(scopes))
    for scope in chosen:
        if scope not in SCOPES:
            raise InvalidInput(
                f"unknown scope {scope!r}: the scopes are {', '.join(SCOPES)}", field="scopes"
            )
    return chosen


def _check_target(expression: str) -> None:
    from .targets import parse_target

    parse_target(expression)


def _integration(row: Mapping[str, Any] | sa.RowMapping) -> Integration:
    return Integration.model_validate(dict(row))


def find_integration(conn: Connection, workspace: str, name: str) -> sa.RowMapping | None:
    """Integration ``name``'s row, or None."""
    row = conn.execute(_INTEGRATION, {"ws": workspace, "name": name}).first()
    return None if row is None else row._mapping


_INTEGRATION = sa.select(integrations).where(
    integrations.c.workspace == sa.bindparam("ws"), integrations.c.name == sa.bindparam("name")
)


def existing(conn: Connection, workspace: str, name: str) -> sa.RowMapping:
    """Integration ``name``'s row.

    Raises:
        NotFound: no integration ``name`` in ``workspace``.
    """
    check_name("integration name", name)
    row = find_integration(conn, workspace, name)
    if row is None:
        raise NotFound(f"no integration {name!r} in workspace {workspace!r}")
    return row


class IntegrationOps(ServiceBase):
    """Integrations: add, list, rotate, revoke, declare."""

    # -- the integrations themselves ------------------------------------------------

    def add_integration(
        self,
        name: str,
        *,
        workspace: str = "default",
        scopes: Sequence[str] | None = None,
        targets: Sequence[str] | None = None,
        channels: Sequence[str] | None = None,
        callback_url: str | None = None,
        rate_limit: int | None = None,
        token: str | None = None,
        secret: str | None = None,
    ) -> IntegrationCreated:
        """Create integration ``name`` with a new token (and, with a callback URL, a
        signing secret), both returned once.

        Args:
            scopes: what its token may do (:data:`SCOPES`; default :data:`DEFAULT_SCOPES`).
            targets, channels: the target expressions and channels it may address
                (``*``: any); an event without a target goes to the first target.
            rate_limit: events per minute (default ``settings.integration_rate_limit``).
            token, secret: use these instead of new random ones (declared integrations:
                ``settings.integrations``).

        Raises:
            InvalidInput: a malformed name, scope, target, channel, URL or limit.
            Conflict: ``workspace`` has an integration of that name.
        """
        values = self._values(name, scopes, targets, channels, callback_url, rate_limit)
        token = token if token is not None else TOKEN_PREFIX + secrets.token_urlsafe(32)
        if secret is None and values["callback_url"] is not None:
            secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        with self.store.write() as conn:
            now = self.now()
            if find_integration(conn, workspace, name) is not None:
                raise Conflict(f"integration {name!r} exists: rotate its token or revoke it")
            conn.execute(
                integrations.insert().values(
                    workspace=workspace,
                    name=name,
                    secret=secret,
                    status=IntegrationStatus.ACTIVE.value,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
            )
            self._replace_token(conn, workspace, name, token, now)
            # Its rate counter exists from the start: counting is then one UPDATE, which
            # on PostgreSQL queues concurrent events of one integration on its row.
            conn.execute(
                rate_counts.insert().values(
                    workspace=workspace, subject=integration_sender(name), window_start=0.0, count=0
                )
            )
            append_event(conn, workspace, "integration.added", now, None, integration=name)
            row = find_integration(conn, workspace, name)
        assert row is not None
        return IntegrationCreated(integration=_integration(row), token=token, secret=secret)

    def list_integrations(self, *, workspace: str = "default") -> list[Integration]:
        """The workspace's integrations (revoked ones too), by name."""
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(integrations)
                .where(integrations.c.workspace == workspace)
                .order_by(integrations.c.name)
            ).all()
        return [_integration(r._mapping) for r in rows]

    def get_integration(self, name: str, *, workspace: str = "default") -> Integration:
        """One integration.

        Raises:
            NotFound: no integration ``name`` in ``workspace``.
        """
        with self.store.read() as conn:
            return _integration(existing(conn, workspace, name))

    def rotate_integration(
        self, name: str, *, workspace: str = "default", secret: bool = False
    ) -> IntegrationCreated:
        """A new token for integration ``name`` (the old one stops at once here, and on
        other servers within their ``token_cache_seconds``); ``secret``: a new callback
        signing secret too. A revoked integration comes back active.

        Raises:
            NotFound: no such integration.
        """
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        new_secret = SECRET_PREFIX + secrets.token_urlsafe(32) if secret else None
        with self.store.write() as conn:
            now = self.now()
            existing(conn, workspace, name)
            values: dict[str, Any] = {"status": IntegrationStatus.ACTIVE.value, "updated_at": now}
            if new_secret is not None:
                values["secret"] = new_secret
            conn.execute(self._update(workspace, name).values(**values))
            self._replace_token(conn, workspace, name, token, now)
            append_event(conn, workspace, "integration.rotated", now, None, integration=name)
            row = existing(conn, workspace, name)
        return IntegrationCreated(integration=_integration(row), token=token, secret=new_secret)

    def revoke_integration(self, name: str, *, workspace: str = "default") -> Integration:
        """Revoke integration ``name``: its token stops (as for rotation) and it gets no
        more callbacks; its tasks stay. :meth:`rotate_integration` brings it back.

        Raises:
            NotFound: no such integration.
        """
        with self.store.write() as conn:
            now = self.now()
            existing(conn, workspace, name)
            conn.execute(
                self._update(workspace, name).values(
                    status=IntegrationStatus.REVOKED.value, updated_at=now
                )
            )
            conn.execute(
                tokens.delete().where(
                    tokens.c.workspace == workspace, tokens.c.kind == KIND, tokens.c.subject == name
                )
            )
            append_event(conn, workspace, "integration.revoked", now, None, integration=name)
            row = existing(conn, workspace, name)
        return _integration(row)

    def declare_integrations(
        self, declared: Sequence[Mapping[str, Any]], *, workspace: str = "default"
    ) -> list[str]:
        """Make the store hold ``declared`` integrations (``settings.integrations``):
        each is created, or updated with its token, secret and settings. Keys are
        agent-relay-server's (``callbackUrl``, ``rateLimitPerMinute``) or relaybus's.

        Returns:
            the names declared.

        Raises:
            InvalidInput: an entry without a name or token, an unknown key, a bad value.
        """
        names = []
        for index, entry in enumerate(declared):
            spec = _declared(index, entry)
            name, token = spec.pop("name"), spec.pop("token")
            try:
                self.add_integration(name, workspace=workspace, token=token, **spec)
            except Conflict:
                self._redeclare(workspace, name, token, spec)
            names.append(name)
        return names

    def _redeclare(self, workspace: str, name: str, token: str, spec: dict[str, Any]) -> None:
        secret = spec.pop("secret", None)
        values = self._values(name, **spec)
        with self.store.write() as conn:
            now = self.now()
            extra = {} if secret is None else {"secret": secret}
            conn.execute(
                self._update(workspace, name).values(
                    status=IntegrationStatus.ACTIVE.value, updated_at=now, **values, **extra
                )
            )
            if values["callback_url"] is not None and secret is None:
                current = existing(conn, workspace, name)
                if current["secret"] is None:
                    conn.execute(
                        self._update(workspace, name).values(
                            secret=SECRET_PREFIX + secrets.token_urlsafe(32)
                        )
                    )
            self._replace_token(conn, workspace, name, token, now)

    def integration_secret(self, name: str, *, workspace: str = "default") -> str | None:
        """The callback signing secret of integration ``name`` (for the sender).

        Raises:
            NotFound: no such integration.
        """
        with self.store.read() as conn:
            return existing(conn, workspace, name)["secret"]  # type: ignore[no-any-return]

    # -- helpers --------------------------------------------------------------------

    def _values(
        self,
        name: str,
        scopes: Sequence[str] | None = None,
        targets: Sequence[str] | None = None,
        channels: Sequence[str] | None = None,
        callback_url: str | None = None,
        rate_limit: int | None = None,
    ) -> dict[str, Any]:
        check_name("integration name", name)
        if "/" in name or name == "events":
            raise InvalidInput(
                f"invalid integration name {name!r}: no '/', and 'events' is reserved",
                field="name",
            )
        limit = self.settings.integration_rate_limit if rate_limit is None else rate_limit
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1_000_000:
            raise InvalidInput("a rate limit is 1-1000000 events per minute", field="rate_limit")
        return {
            "scopes": _check_scopes(scopes),
            "targets": _check_allowed(targets, _check_target),
            "channels": _check_allowed(channels, lambda c: check_name("channel", c)),
            "callback_url": None if callback_url is None else check_callback_url(callback_url),
            "rate_limit": limit,
        }

    @staticmethod
    def _update(workspace: str, name: str) -> sa.Update:
        return integrations.update().where(
            integrations.c.workspace == workspace, integrations.c.name == name
        )

    @staticmethod
    def _replace_token(conn: Connection, workspace: str, name: str, token: str, now: float) -> None:
        conn.execute(
            tokens.delete().where(
                tokens.c.workspace == workspace, tokens.c.kind == KIND, tokens.c.subject == name
            )
        )
        conn.execute(
            tokens.insert().values(
                token_hash=hash_token(token),
                workspace=workspace,
                kind=KIND,
                subject=name,
                created_at=now,
            )
        )


#: The keys of a declared integration: agent-relay-server's names and relaybus's.
_DECLARED_KEYS = {
    "name": "name",
    "token": "token",
    "scopes": "scopes",
    "targets": "targets",
    "channels": "channels",
    "callbackUrl": "callback_url",
    "callback_url": "callback_url",
    "secret": "secret",
    "callbackSecret": "secret",
    "rateLimitPerMinute": "rate_limit",
    "rate_limit": "rate_limit",
}


def _declared(index: int, entry: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise InvalidInput(f"integration {index}: an object is expected")
    spec: dict[str, Any] = {}
    for key, value in entry.items():
        if key not in _DECLARED_KEYS:
            raise InvalidInput(f"integration {index}: unknown key {key!r}")
        spec[_DECLARED_KEYS[key]] = value
    for needed in ("name", "token"):
        if not isinstance(spec.get(needed), str) or not spec[needed]:
            raise InvalidInput(f"integration {index}: {needed!r} is required (a string)")
    return spec
