"""The API served by uvicorn on a free port in this process, for tests that talk real HTTP."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp

from consensus_engine.api.app import create_app
from consensus_engine.devtools.app_thread import BackgroundServer
from consensus_engine.devtools.http_client import Response, http_request
from consensus_engine.settings import Settings

__all__ = ["ApiClient", "Response", "running_api", "running_app"]


@dataclass
class ApiClient:
    """A tiny HTTP client over urllib: what a user's script would do, nothing mocked."""

    base_url: str
    key: str | None = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
        timeout: float = 30,
    ) -> Response:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        sent = {"Content-Type": "application/json", **(headers or {})}
        token = key if key is not None else self.key
        if token:
            sent["Authorization"] = f"Bearer {token}"
        return http_request(
            self.base_url + path, method=method, body=data, headers=sent, timeout=timeout
        )

    def get(self, path: str, **options: Any) -> Response:
        return self.request("GET", path, **options)

    def post(self, path: str, body: Any = None, **options: Any) -> Response:
        return self.request("POST", path, body, **options)


@contextlib.contextmanager
def running_api(settings: Settings) -> Iterator[str]:
    """Serve ``create_app(settings)`` until the block ends; yields the base URL."""
    with running_app(create_app(settings)) as base_url:
        yield base_url


@contextlib.contextmanager
def running_app(app: ASGIApp) -> Iterator[str]:
    """Serve any ASGI app (e.g. ``create_app`` plus a test's own route) until the block ends."""
    with BackgroundServer(app) as server:
        yield server.url
