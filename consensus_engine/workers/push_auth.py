"""Checking that a push request comes from Pub/Sub: the OIDC token it carries.

A push subscription with an authentication service account signs each request
with a Google ID token for that account. Without checking it, anyone who can
reach the worker could run actors with arguments of their choosing.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import google.auth.exceptions
import google.auth.jwt
import google.auth.transport
import google.auth.transport.requests
import google.oauth2.id_token

from consensus_engine.settings import Settings

#: Google's signing certificates for ID tokens, as PEM certificates by key id.
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
_GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
_FETCH_TIMEOUT_SECONDS = 10.0
_DEFAULT_CERTS_TTL_SECONDS = 300.0
_MAX_AGE = re.compile(r"max-age=(\d+)")


class PushAuthError(Exception):
    """A push request that must not be processed.

    ``status`` is the HTTP answer; ``reason`` is for the worker's log only, since
    it tells a caller which check its token failed.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class _CachedGet(google.auth.transport.Request):
    """Keeps fetched certificates as long as their Cache-Control allows.

    google-auth fetches the certificates on every verification, and without a
    timeout of its own; a push request should cost neither a round trip to
    Google nor two minutes when Google is slow.
    """

    def __init__(self, inner: google.auth.transport.Request) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        timeout = _FETCH_TIMEOUT_SECONDS if timeout is None else timeout
        if method != "GET" or body is not None:
            return self._inner(url, method, body, headers, timeout, **kwargs)
        with self._lock:
            expires, response = self._cache.get(url, (0.0, None))
        if time.monotonic() < expires:
            return response
        response = self._inner(url, method, body, headers, timeout, **kwargs)
        if response.status == 200:
            with self._lock:
                self._cache[url] = (time.monotonic() + _max_age(response.headers), response)
        return response


def _max_age(headers: Any) -> float:
    found = _MAX_AGE.search(str(headers.get("Cache-Control", "")))
    return float(found.group(1)) if found else _DEFAULT_CERTS_TTL_SECONDS


def _bearer(authorization_header: str | None) -> str:
    scheme, _, token = (authorization_header or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise PushAuthError(401, "missing bearer token")
    try:
        google.auth.jwt.decode_header(token)  # type: ignore[no-untyped-call]
    except ValueError:
        raise PushAuthError(401, "malformed token") from None
    return token


class PushTokenVerifier:
    """Accepts a request only with a valid Google ID token for our push subscription.

    ``audience`` is the subscription's OIDC audience (Pub/Sub uses the push endpoint when
    none is set): always checked, or a token minted for any other service would pass.
    ``service_account``, when given, is the account the token must be signed for.
    """

    def __init__(
        self,
        audience: str,
        service_account: str | None,
        *,
        certs_url: str = GOOGLE_CERTS_URL,
        clock_skew_seconds: int = 10,
    ) -> None:
        if not audience:
            raise ValueError("an audience is required: the push endpoint or its OIDC audience")
        self._audience = audience
        self._service_account = service_account
        self._certs_url = certs_url
        self._clock_skew = clock_skew_seconds
        self._request = _CachedGet(google.auth.transport.requests.Request())

    @classmethod
    def from_settings(
        cls, settings: Settings, *, certs_url: str = GOOGLE_CERTS_URL
    ) -> PushTokenVerifier | None:
        """The worker's verifier; ``None`` where nothing is configured to check, which the
        settings allow only outside production without a push service account."""
        audience = settings.pubsub_push_token_audience
        if settings.pubsub_push_service_account is None or audience is None:
            return None
        return cls(audience, settings.pubsub_push_service_account, certs_url=certs_url)

    def verify(self, authorization_header: str | None) -> None:
        """Return if the header carries an acceptable token; raise PushAuthError if not."""
        token = _bearer(authorization_header)
        try:
            claims = google.oauth2.id_token.verify_token(
                token,
                self._request,
                audience=self._audience,
                certs_url=self._certs_url,
                clock_skew_in_seconds=self._clock_skew,
            )
        except google.auth.exceptions.TransportError as error:
            raise PushAuthError(503, f"cannot fetch signing certificates: {error}") from error
        except ValueError as error:  # bad signature, expired, wrong audience, ...
            raise PushAuthError(403, f"invalid token: {error}") from error
        if claims.get("iss") not in _GOOGLE_ISSUERS:
            raise PushAuthError(403, f"token issued by {claims.get('iss')!r}")
        if self._service_account is not None:
            if claims.get("email") != self._service_account:
                raise PushAuthError(403, f"token for {claims.get('email')!r}")
            if claims.get("email_verified") is not True:
                raise PushAuthError(403, "token email not verified")
