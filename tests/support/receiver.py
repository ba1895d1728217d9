"""A webhook receiver on this machine, for the tests of webhooks: it verifies each
request's Standard Webhooks signature and answers with the statuses it is told to."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from consensus_engine.devtools.loopback import BackgroundServer
from consensus_engine.webhooks.signing import InvalidSignature, verify


@dataclass
class Receiver:
    """An endpoint that verifies each request's signature with the secret it is given,
    and answers with the statuses queued (then 200)."""

    answers: list[int] = field(default_factory=list)
    secret: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = request.headers
        try:
            verify(
                self.secret,
                headers["webhook-id"],
                int(headers["webhook-timestamp"]),
                body,
                headers["webhook-signature"],
                now=time.time(),
            )
            valid = True
        except (InvalidSignature, KeyError):
            valid = False
        status = self.answers.pop(0) if self.answers else 200
        with self.arrived:
            self.seen.append(
                {"id": headers.get("webhook-id"), "valid": valid, "body": json.loads(body)}
            )
            self.arrived.notify_all()
        return Response(status_code=status)

    def wait_for(self, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.seen) >= count, timeout), self.seen
            return list(self.seen)


@contextmanager
def serving() -> Iterator[tuple[Receiver, str]]:
    """A receiver and its URL."""
    hook = Receiver()
    app = Starlette(routes=[Route("/hook", hook.handle, methods=["POST"])])
    with BackgroundServer(app) as server:
        yield hook, f"{server.url}/hook"
