"""One plain HTTP request over urllib: readiness probes, set-up and tests, not measured load."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    url: str,
    *,
    method: str | None = None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10,
) -> Response:
    """The answer, error statuses included; a server that does not answer raises OSError."""
    # Our own URLs (loopback servers we started), never user input.
    request = urllib.request.Request(url, body, dict(headers or {}), method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310
            return Response(reply.status, dict(reply.headers), reply.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, dict(error.headers), error.read())


def answers_200(url: str, *, timeout: float = 5) -> bool:
    """A readiness probe: True once ``url`` answers 200, False while nothing listens."""
    with contextlib.suppress(OSError):
        return http_request(url, timeout=timeout).status == 200
    return False
