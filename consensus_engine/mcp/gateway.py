"""The public HTTP API, called with the caller's key, its failures made tool failures.

Over streamable HTTP each MCP client may send its own ``Authorization: Bearer <key>``; that
key is the one the API sees, so one server can front several tenants and none borrows
another's rights. Without one (stdio, or an HTTP client that sends none) the key the server
was started with is used. The API client is blocking (urllib), so each request runs on a
worker thread and the server keeps serving other calls meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from consensus_engine.client import ApiRequestError, ApiUnreachable, ClientError, ConsensusClient

API_TIMEOUT_SECONDS = 30.0


class ToolFailure(Exception):
    """What the agent is told went wrong: the API's error code and message, never a trace."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id
        self.details = details

    @classmethod
    def from_client_error(cls, error: ClientError) -> ToolFailure:
        if isinstance(error, ApiRequestError):
            return cls(
                error.code,
                error.message,
                status=error.status,
                request_id=error.request_id,
                details=error.details,
            )
        code = "API_UNREACHABLE" if isinstance(error, ApiUnreachable) else "BAD_API_ANSWER"
        return cls(code, str(error))


def caller_key(headers: Mapping[str, str] | None) -> str | None:
    """The bearer key of the MCP request's own HTTP headers, if it came with one."""
    if not headers:
        return None
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


@dataclass(frozen=True)
class Gateway:
    """Where the API is and the key to fall back on; one API client per call."""

    api_url: str
    api_key: str | None
    timeout: float = API_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        ConsensusClient(self.api_url, None)  # a malformed API_URL fails at start-up

    def __repr__(self) -> str:  # never show the key
        return f"Gateway({self.api_url!r})"

    async def call(
        self,
        headers: Mapping[str, str] | None,
        method: str,
        path: str,
        body: object = None,
        *,
        params: Mapping[str, object] | None = None,
    ) -> dict[str, Any]:
        """The decoded JSON object the API answered; :class:`ToolFailure` otherwise."""
        client = ConsensusClient(
            self.api_url, caller_key(headers) or self.api_key, timeout=self.timeout
        )
        try:
            answer = await asyncio.to_thread(client.request, method, path, body, params=params)
        except ClientError as error:
            raise ToolFailure.from_client_error(error) from None
        if not isinstance(answer, dict):
            raise ToolFailure("BAD_API_ANSWER", f"{method} {path} answered something not an object")
        return answer
