"""An ASGI app served by uvicorn on a thread of this process (the tests' API, the offline LLM)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
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

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
