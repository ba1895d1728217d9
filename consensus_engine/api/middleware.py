"""Request ids (answered, and bound to the request's log lines), the body cap, the
pinned versions of ``/v1`` requests (``api/versions.py``), the last-resort 500 and request
metrics, as one ASGI middleware.

Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, so streamed responses
(Server-Sent Events) pass through untouched. It sits outside the routing and the
exception handlers but inside Starlette's ``ServerErrorMiddleware``, so it answers
unexpected errors itself: that way the 500 carries ``X-Request-ID`` like every answer.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

from opentelemetry import trace
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consensus_engine.api import versions
from consensus_engine.api.errors import (
    BodyTooLarge,
    error_response,
    internal_error_response,
    too_large_response,
)
from consensus_engine.api.metrics import ApiMetrics
from consensus_engine.observability.logs import bound

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
_DRAIN_FACTOR = 10
_DRAIN_SECONDS = 2.0


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _declared_length(scope: Scope) -> int:
    try:
        return int(_header(scope, b"content-length") or 0)
    except ValueError:
        return 0


def _request_id(scope: Scope) -> str:
    """The client's ``X-Request-ID`` when it is safe to echo, else a fresh one."""
    given = _header(scope, b"x-request-id") or ""
    return given if _CLIENT_ID.match(given) else uuid.uuid4().hex


class ApiMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: ApiMetrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        response_started = False
        observed = False

        body_done = False

        def observe() -> None:
            """Count the request once, before its answer's last byte leaves: a client that
            has the answer finds it counted."""
            nonlocal observed
            if observed:
                return
            observed = True
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = scope.get("method", "")
            self.metrics.observe(
                template,
                method if method in _METHODS else "other",
                status,
                time.perf_counter() - started,
            )

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                observe()
            if message["type"] == "http.response.start":
                if message["status"] == 413 and not body_done:
                    await self._drain(receive)
                status = message["status"]
                response_started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        received = 0

        async def counting_receive() -> Message:
            """Count the body as the app reads it: a chunked body declares no length."""
            nonlocal received, body_done
            message = await receive()
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        trace.get_current_span().set_attribute("consensus.request_id", request_id)
        with bound(request_id=request_id):  # on every log line of this request
            try:
                if _declared_length(scope) > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
                refused = versions.unsupported(scope) if versions.checked(scope["path"]) else None
                if refused is not None:
                    response = error_response(
                        Request(scope),
                        400,
                        "UNSUPPORTED_VERSION",
                        refused.message,
                        refused.details,
                    )
                    await response(scope, receive, send_with_id)
                    return
                await self.app(scope, counting_receive, send_with_id)
            except Exception as error:
                if response_started:
                    raise  # too late for an answer of our own; the server closes the stream
                request = Request(scope)
                if isinstance(error, BodyTooLarge):
                    response = too_large_response(request, error)
                else:
                    response = internal_error_response(request, error)
                await response(scope, receive, send_with_id)
            finally:
                observe()

    async def _drain(self, receive: Receive) -> None:
        """Read (and drop) what the client is still sending before answering 413.

        Closing a connection with unread data makes the kernel send a reset, which can
        destroy the 413 before the client reads it. Bounded: past ``_DRAIN_FACTOR`` times
        the cap, or ``_DRAIN_SECONDS``, the connection is closed regardless.
        """
        budget = self.max_body_bytes * _DRAIN_FACTOR
        deadline = time.monotonic() + _DRAIN_SECONDS
        while budget > 0 and time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except TimeoutError:
                return
            if message["type"] != "http.request":
                return
            budget -= len(message.get("body", b""))
            if not message.get("more_body", False):
                return
