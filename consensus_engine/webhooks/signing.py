"""Standard Webhooks signatures: HMAC-SHA256 over ``{id}.{timestamp}.{body}``.

A secret is ``whsec_`` and base64 of 24 random bytes; a signature header is a space-separated
list of ``v1,<base64>`` (several during a secret's rotation), so receivers written against
the Standard Webhooks libraries verify ours as they are.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
TOLERANCE_SECONDS = 300
"""How far a receiver should let the timestamp drift from its clock (replay protection)."""


class InvalidSignature(ValueError):
    """The signature does not match, or the timestamp is outside the tolerance."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value for one delivery."""
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secret: str, message_id: str, timestamp: int, body: bytes, header: str, *, now: float
) -> None:
    """What a receiver does: raise :class:`InvalidSignature` unless one of the header's
    signatures is ours and the timestamp is recent."""
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise InvalidSignature("the timestamp is too far from now")
    expected = sign(secret, message_id, timestamp, body)
    if not any(hmac.compare_digest(expected, given) for given in header.split()):
        raise InvalidSignature("no signature matches")
