"""API keys: only their SHA-256 hashes are configured, each naming the tenant it acts for.

A key is ``ce_`` plus 32 random bytes (URL-safe base64), so a hash lookup is enough:
such keys cannot be guessed, and comparing digests leaks nothing useful.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from consensus_engine.settings import Settings

KEY_PREFIX = "ce_"
DEV_TENANT = "default"
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class KeyConfigError(ValueError):
    """A configured key entry is malformed; the message names which (never the hash)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant whose runs they may see, and which key (its hash prefix)."""

    tenant: str
    key_id: str


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _parse(entries: list[str], source: str, into: dict[str, str]) -> None:
    """Add ``tenant:sha256hex`` entries to ``into``; blank lines and ``#`` comments are skipped.

    One key (hash) listed for two tenants is refused: which tenant it acted for would
    depend on the order of the configuration.
    """
    for number, raw in enumerate(entries, start=1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        tenant, _, hashed = entry.partition(":")
        hashed = hashed.strip().lower()
        if not _TENANT.match(tenant) or not _DIGEST.match(hashed):
            raise KeyConfigError(
                f"{source} entry {number} is not 'tenant:sha256hex' (64 hex digits)"
            )
        if into.get(hashed, tenant) != tenant:
            raise KeyConfigError(
                f"{source} entry {number} gives tenant {tenant!r} a key already "
                f"configured for tenant {into[hashed]!r}"
            )
        into[hashed] = tenant


class KeyRing:
    """The configured keys, from ``API_KEYS`` and ``API_KEYS_FILE``."""

    def __init__(self, hashes: dict[str, str], *, open_access: bool = False) -> None:
        self._tenants = hashes
        self.open_access = open_access

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        hashes: dict[str, str] = {}
        if settings.api_keys is not None:
            _parse(settings.api_keys.get_secret_value().split(","), "API_KEYS", hashes)
        if settings.api_keys_file is not None:
            path = Path(settings.api_keys_file)
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as error:
                raise KeyConfigError(f"API_KEYS_FILE {path} cannot be read: {error}") from None
            _parse(lines, "API_KEYS_FILE", hashes)
        return cls(hashes, open_access=settings.api_auth_disabled)

    def __len__(self) -> int:
        return len(self._tenants)

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The caller for an ``Authorization: Bearer <key>`` header, or ``None``."""
        if authorization:
            scheme, _, key = authorization.partition(" ")
            if scheme.lower() == "bearer" and key.strip():
                hashed = digest(key.strip())
                tenant = self._tenants.get(hashed)
                if tenant is not None:
                    return Principal(tenant=tenant, key_id=hashed[:12])
        if self.open_access and not authorization:
            return Principal(tenant=DEV_TENANT, key_id="open")
        return None
