"""Callback signatures: ``X-Relaybus-Signature: t=<unix seconds>,v1=<hex>``.

``v1`` is HMAC-SHA256 keyed with the integration's secret (the whole ``whsec_…`` string,
UTF-8) over ``f"{t}."`` followed by the raw request body: Stripe's webhook scheme
("Check the webhook signatures", stripe.com/docs/webhooks), also GitHub's in spirit
(``X-Hub-Signature-256``). Signing the timestamp with the body lets a receiver refuse
replays older than a tolerance; comparing in constant time keeps the check from leaking
the expected value. A header may carry several ``v1`` values (one per secret, while a
secret is being rotated); any one matching is enough.

Standard library only, so a receiver can copy this module (``examples/integrations``
has a standalone receiver).
"""

from __future__ import annotations

import hashlib
import hmac
import time

#: The request header that carries the signature.
HEADER = "X-Relaybus-Signature"
#: Seconds a signature's timestamp may differ from the receiver's clock.
TOLERANCE = 300


class InvalidSignature(ValueError):
    """A callback whose signature is missing, malformed, wrong, or too old."""


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}." + body`` keyed with ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Relaybus-Signature`` value for ``body`` sent at ``timestamp`` (Unix
    seconds; default now): ``t=<timestamp>,v1=<signature>``."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={signature(secret, body, t)}"


def verify(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    tolerance: float = TOLERANCE,
    now: float | None = None,
) -> int:
    """Check a callback's ``X-Relaybus-Signature`` against its raw ``body``.

    Returns:
        the signed timestamp (Unix seconds).

    Raises:
        InvalidSignature: no header, no ``t`` or ``v1``, a timestamp more than
            ``tolerance`` seconds from ``now``, or no ``v1`` that matches.
    """
    if not header:
        raise InvalidSignature(f"no {HEADER} header")
    timestamp: int | None = None
    given: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise InvalidSignature(f"the timestamp {value!r} is not a number") from None
        elif key == "v1":
            given.append(value)
    if timestamp is None or not given:
        raise InvalidSignature(f"{HEADER} needs t=<timestamp> and v1=<signature>")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature(f"the timestamp is more than {tolerance:g} s from now")
    expected = signature(secret, body, timestamp)
    if not any(hmac.compare_digest(expected, value) for value in given):
        raise InvalidSignature("no signature matches the body")
    return timestamp
