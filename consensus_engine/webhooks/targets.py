"""Which URLs a webhook may be sent to: never, unless an operator allows it, an address
inside the deployment's own network (server-side request forgery).

Checked when an endpoint is registered and again before every attempt, against the
addresses its host resolves to then (a name may be pointed elsewhere after registration).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2000


class RefusedTarget(ValueError):
    """The URL is malformed or leads somewhere a webhook must not go; the message says why."""


def check_url(url: str) -> str:
    """The URL, if it is an absolute http(s) URL without credentials; else
    :class:`RefusedTarget`. Resolves nothing."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedTarget(f"the URL is longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedTarget("the URL must be absolute, http or https, e.g. https://hooks.example")
    if parts.username or parts.password:
        raise RefusedTarget("the URL must not carry credentials; use the signature instead")
    return url


def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse a URL whose host resolves to a loopback, link-local, private or otherwise
    internal address (``allow_private``: the operator allows those)."""
    check_url(url)
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise RefusedTarget(f"the host {host} does not resolve") from None
    for *_, address in found:
        ip = ipaddress.ip_address(address[0])
        if not ip.is_global or ip.is_multicast:
            raise RefusedTarget(
                f"the host {host} resolves to an internal address ({ip}); an operator can "
                "allow those with WEBHOOK_ALLOW_PRIVATE_TARGETS"
            )
