"""Bearer tokens: issued at registration, stored only as SHA-256 digests.

A token is 256 random bits (``secrets.token_urlsafe(32)``) behind an ``rb_``
prefix, so it is recognisable in logs and secret scanners (the prefix habit of
GitHub's ``ghp_`` tokens). The relay keeps only ``sha256(token)``: a token is
high-entropy, so an unsalted fast hash is enough (no password-style KDF), and a
leaked database does not leak usable tokens.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..models import Credential
from ..store.schema import integrations, tokens
from .common import ServiceBase

PREFIX = "rb_"
AGENT = "agent"
#: The kind of an integration's token (see :mod:`relaybus.service.integrations`).
INTEGRATION = "integration"


def new_token() -> str:
    """A fresh bearer token: ``rb_`` + 43 URL-safe characters (256 bits)."""
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of ``token``: its SHA-256 as 64 hex digits."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def replace_agent_token(
    conn: Connection, workspace: str, agent_id: str, token_hash: str, now: float
) -> None:
    """Make ``token_hash`` the agent's one token, revoking any earlier one (in the
    caller's transaction)."""
    revoke_agent_tokens(conn, workspace, [agent_id])
    conn.execute(
        tokens.insert().values(
            token_hash=token_hash, workspace=workspace, kind=AGENT, subject=agent_id, created_at=now
        )
    )


def revoke_agent_tokens(conn: Connection, workspace: str, agent_ids: Sequence[str]) -> int:
    """Delete the tokens of these agents; returns how many were deleted."""
    if not agent_ids:
        return 0
    return int(
        conn.execute(
            tokens.delete().where(
                tokens.c.workspace == workspace,
                tokens.c.kind == AGENT,
                tokens.c.subject.in_(list(agent_ids)),
            )
        ).rowcount
    )


class TokenOps(ServiceBase):
    """Looking up who a bearer token belongs to."""

    def authenticate(self, token_hash: str) -> Credential | None:
        """The agent or integration a token acts as, by the token's digest
        (:func:`hash_token`).

        Returns:
            the credential (an integration's with its scopes, targets and channels),
            or ``None`` for an unknown or revoked token.
        """
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(tokens.c.workspace, tokens.c.kind, tokens.c.subject).where(
                    tokens.c.token_hash == token_hash
                )
            ).first()
            if row is None:
                return None
            if row.kind == INTEGRATION:
                return integration_credential(conn, row.workspace, row.subject)
        if row.kind != AGENT:
            return None
        return Credential(workspace=row.workspace, agent_id=row.subject)


def integration_credential(conn: Connection, workspace: str, name: str) -> Credential | None:
    """The credential of integration ``name``'s token, or ``None`` once it is revoked."""
    hook = conn.execute(
        sa.select(integrations).where(
            integrations.c.workspace == workspace,
            integrations.c.name == name,
            integrations.c.status == "active",
        )
    ).first()
    if hook is None:
        return None
    return Credential(
        workspace=workspace,
        integration=name,
        scopes=tuple(hook.scopes),
    )
