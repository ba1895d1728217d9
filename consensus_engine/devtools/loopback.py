"""HTTP on loopback: plain requests over urllib (readiness probes, set-up and tests, not
measured load), a client of our API, and ASGI apps served by uvicorn on a thread of this
process (the tests' API, the offline LLM)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import uvicorn
from starlette.types import ASGIApp

LOOPBACK = "127.0.0.1"
_STARTUP_TIMEOUT_S = 30.0


class BackgroundServer:
    """Serves ``app`` until :meth:`stop`; use it as a context manager.

    The listening socket is bound before the thread starts, so ``port`` is known (and
    connections queue in the backlog) the moment ``start`` returns, and no other process
    can take it in between. ``options`` go to ``uvicorn.Config``.
    """

    def __init__(self, app: ASGIApp, *, port: int = 0, **options: Any) -> None:
        self.app, self.port, self.options = app, port, options
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError(f"the server on {self.url} is already running")
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
        # without it every keep-alive answer stalls ~40 ms (Nagle against delayed ACKs).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, self.port))
        sock.listen(2048)
        self.port = sock.getsockname()[1]
        options = {"lifespan": "on", "log_level": "warning", **self.options}
        config = uvicorn.Config(self.app, **options)
        server = self._server = uvicorn.Server(config)
        thread = self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"asgi-{self.port}", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop accepting and let running requests end (as long as the options allow)."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


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


@dataclass
class ApiClient:
    """A tiny client of our API: JSON bodies and a bearer key, what a user's script would send."""

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
