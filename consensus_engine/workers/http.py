"""The worker's HTTP endpoint: liveness, readiness and Pub/Sub push delivery.

Every worker process serves it from a daemon thread. The socket is bound with
SO_REUSEPORT, so the processes of ``dramatiq -p N`` share one port and the
kernel spreads connections over them. Answers say as little as they can: a
status and a fixed text, never an exception, a hostname or a connection string.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from brokers.pubsub import PushInbox, PushOutcome
from consensus_engine.readiness import Check, report
from consensus_engine.workers.push_auth import PushAuthError, PushTokenVerifier

logger = logging.getLogger(__name__)

#: Pub/Sub messages carry up to 10 MB of data, which base64 makes 13.4 MB,
#: plus attributes; a smaller cap would refuse messages our broker sends.
MAX_BODY_BYTES = 14_000_000
PUSH_PATHS = ("/pubsub/push", "/")
"""Where Pub/Sub may push: ours, and the root the deployment guide's subscription names."""
_READ_TIMEOUT_SECONDS = 30.0  # a client that stops sending its body loses its thread after this
_LINGER_SECONDS = 2.0

_PUSH_STATUS = {
    PushOutcome.ACKED: (HTTPStatus.NO_CONTENT, None),
    PushOutcome.DEAD_LETTERED: (HTTPStatus.NO_CONTENT, None),
    PushOutcome.RETRY: (HTTPStatus.SERVICE_UNAVAILABLE, "retry later"),
    PushOutcome.REJECTED: (HTTPStatus.BAD_REQUEST, "rejected"),
}
_AUTH_ERRORS = {401: "unauthorized", 403: "forbidden"}

Answer = tuple[int, dict[str, Any] | None]


class _Refused(Exception):
    """Ends a request early with a status and a fixed text."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.answer: Answer = (status, {"error": error})


class WorkerHTTPServer:
    """Health probes and the Pub/Sub push endpoint of one worker process.

    ``checks`` are run by ``/readyz``, each raising when its dependency is
    unusable; ``inbox`` is the push broker's (None: no push endpoint);
    ``verifier`` checks Pub/Sub's token (None: no check, for a private network
    or the emulator); ``push_timeout`` is the longest a push request waits for
    its message to be settled, to be kept below the ack deadline.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        checks: Mapping[str, Check],
        inbox: PushInbox | None,
        verifier: PushTokenVerifier | None,
        push_timeout: float,
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self._address = (host, port)
        self.checks = dict(checks)
        self.inbox = inbox
        self.verifier = verifier
        self.push_timeout = push_timeout
        self.alive = alive
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind (port 0 picks a free one) and serve from a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the worker HTTP server is already running")
        self._server = _Server(self._address, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="worker-http", daemon=True
        )
        self._thread.start()
        logger.info("Worker HTTP server listening on %s:%d.", self._address[0], self.port)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the worker HTTP server is not running")
        return int(self._server.server_address[1])

    def stop(self) -> None:
        """Stop accepting requests; requests under way finish in their own threads."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()

    def liveness(self) -> Answer:
        try:
            alive = self.alive()
        except Exception:
            logger.warning("The liveness check raised.", exc_info=True)
            alive = False
        if alive:
            return HTTPStatus.OK, {"status": "ok"}
        return HTTPStatus.SERVICE_UNAVAILABLE, {"status": "unavailable"}

    def readiness(self) -> Answer:
        return report(self.checks)

    def push(self, authorization: str | None, read_body: Callable[[], bytes]) -> Answer:
        if self.inbox is None:
            raise _Refused(HTTPStatus.NOT_FOUND, "not found")
        if self.verifier is not None:
            try:
                self.verifier.verify(authorization)
            except PushAuthError as refused:
                logger.warning("Refused a push request: %s", refused.reason)
                public = _AUTH_ERRORS.get(refused.status, "unavailable")
                raise _Refused(refused.status, public) from None
        try:
            envelope = json.loads(read_body())
        except ValueError:
            raise _Refused(HTTPStatus.BAD_REQUEST, "invalid json") from None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("message"), dict):
            raise _Refused(HTTPStatus.BAD_REQUEST, "not a pub/sub push envelope")
        status, error = _PUSH_STATUS[self.inbox.deliver(envelope, timeout=self.push_timeout)]
        return status, None if error is None else {"error": error}


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    allow_reuse_port = True
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: WorkerHTTPServer) -> None:
        self.app = app
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = _READ_TIMEOUT_SECONDS
    _body_read = False

    def do_GET(self) -> None:
        routes = {"/healthz": self.server.app.liveness, "/readyz": self.server.app.readiness}
        self._answer(routes.get(urlsplit(self.path).path, _not_found))

    def do_POST(self) -> None:
        # The deployment guide points the push subscription at the service root.
        if urlsplit(self.path).path not in PUSH_PATHS:
            self._answer(_not_found)
            return
        app = self.server.app
        self._answer(lambda: app.push(self.headers.get("Authorization"), self._read_body))

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise _Refused(HTTPStatus.LENGTH_REQUIRED, "length required") from None
        if length < 0:
            raise _Refused(HTTPStatus.BAD_REQUEST, "bad request")
        if length > MAX_BODY_BYTES:
            raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload too large")
        body = self.rfile.read(length)
        self._body_read = True
        if len(body) != length:
            raise _Refused(HTTPStatus.BAD_REQUEST, "incomplete body")
        return body

    def _answer(self, route: Callable[[], Answer]) -> None:
        try:
            status, body = route()
        except _Refused as refused:
            status, body = refused.answer
        except Exception:
            logger.exception("Worker HTTP request %s %s failed.", self.command, self.path)
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"}
        self._send(status, body)
        if self.command == "POST" and not self._body_read:
            self._linger()

    def _linger(self) -> None:
        """Discard what the client still sends, for a moment, before closing.

        Closing a socket with unread data resets the connection, and the reset
        can destroy the answer before the client has read it.
        """
        self.wfile.flush()
        deadline = time.monotonic() + _LINGER_SECONDS
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(_LINGER_SECONDS)
            while time.monotonic() < deadline and self.connection.recv(65536):
                pass

    def _send(self, status: int, body: dict[str, Any] | None) -> None:
        payload = b""
        if status != HTTPStatus.NO_CONTENT:
            payload = json.dumps(body or {}, separators=(",", ":")).encode()
        self.send_response(status)
        if payload:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    def version_string(self) -> str:
        return "worker"  # not the Python version

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests and unknown methods: small JSON, not the stdlib's HTML page."""
        self._send(code, {"error": HTTPStatus(code).phrase.lower()})

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


def _not_found() -> Answer:
    return HTTPStatus.NOT_FOUND, {"error": "not found"}
