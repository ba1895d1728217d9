"""The HTTP client behind ``consensus-engine submit|runs|revise|retry|diff``.

Standard library only (urllib), so the command needs nothing beyond the package. Every
failure becomes a :class:`ClientError` whose text is one line for a terminal: the API's
own message, code and request id, or which URL could not be reached. The API key goes
into the ``Authorization`` header and nowhere else: not into messages, and not to another
host, because redirects are refused rather than followed.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from consensus_engine.run_progress import (
    TERMINAL_STATUSES,
    ChangeFilter,
    Progress,
    ServerSentEvent,
    StatusUpdate,
    detail_updates,
    event_updates,
    parse_sse,
)

USER_AGENT = "consensus-engine-cli/1"
POLL_INTERVAL_SECONDS = 0.5
STREAM_READ_TIMEOUT_SECONDS = 60.0
"""A silent event stream is dropped after this long (the API sends keep-alives more often)."""


class ClientError(Exception):
    """A failure to show the user as one line; ``exit_code`` is what the command returns."""

    exit_code = 1


class ApiRequestError(ClientError):
    """The API answered with an error envelope (or at least an error status)."""

    def __init__(
        self, status: int, code: str, message: str, request_id: str, details: Any = None
    ) -> None:
        super().__init__(f"{message} ({code}, request {request_id})")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.details = details
        # Invalid input is a usage error (2), like a bad command-line argument.
        self.exit_code = 2 if status in (400, 413, 422) else 1


class ApiUnreachable(ClientError):
    """No HTTP answer at all: refused, unknown host, timed out, connection dropped."""


class UsageError(ClientError):
    exit_code = 2


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: following one would send the key to wherever it points."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def _describe_network_error(reason: object, timeout: float) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return str(reason.strerror).lower()
    return str(reason) or type(reason).__name__


class ConsensusClient:
    """The API's endpoints as methods returning the decoded JSON bodies."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UsageError(f"API_URL must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects())

    def __repr__(self) -> str:  # never show the key
        return f"ConsensusClient({self.base_url!r})"

    # -- transport ------------------------------------------------------------------------

    def _open(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        params: Mapping[str, object] | None = None,
        accept: str = "application/json",
        timeout: float | None = None,
    ) -> http.client.HTTPResponse:
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        url = self.base_url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        # The scheme was checked in __init__: only http(s) URLs are ever opened.
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        wait = timeout if timeout is not None else self.timeout
        try:
            response: http.client.HTTPResponse = self._opener.open(request, timeout=wait)
        except urllib.error.HTTPError as error:
            raise self._api_error(error) from None
        except urllib.error.URLError as error:
            reason = _describe_network_error(error.reason, wait)
            raise ApiUnreachable(f"cannot reach the API at {self.base_url}: {reason}") from None
        except (OSError, http.client.HTTPException) as error:
            reason = _describe_network_error(error, wait)
            raise ApiUnreachable(f"cannot reach the API at {self.base_url}: {reason}") from None
        return response

    def _api_error(self, error: urllib.error.HTTPError) -> ApiRequestError:
        request_id = error.headers.get("X-Request-ID") or "-"
        try:
            body = json.loads(error.read())
        except (ValueError, OSError):
            body = None
        if isinstance(body, dict) and isinstance(body.get("code"), str):
            return ApiRequestError(
                error.code,
                body["code"],
                str(body.get("message") or body["code"]),
                str(body.get("request_id") or request_id),
                body.get("details"),
            )
        if 300 <= error.code < 400:
            message = f"the API at {self.base_url} redirects (HTTP {error.code}); check API_URL"
            return ApiRequestError(error.code, "REDIRECT", message, request_id)
        message = f"the API answered HTTP {error.code} {error.reason}"
        return ApiRequestError(error.code, f"HTTP_{error.code}", message, request_id)

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        params: Mapping[str, object] | None = None,
    ) -> Any:
        """The decoded JSON body of a successful answer."""
        try:
            with self._open(method, path, body, params=params) as response:
                raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            reason = _describe_network_error(error, self.timeout)
            raise ApiUnreachable(f"lost the connection to {self.base_url}: {reason}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise ClientError(
                f"the API at {self.base_url} answered with something not JSON"
            ) from None

    # -- endpoints ------------------------------------------------------------------------

    def submit(
        self,
        idea: str,
        *,
        extra_context: str | Mapping[str, Any] | None = None,
        priority: str | None = None,
        persona_models: Mapping[str, str] | None = None,
        review_rounds: int | None = None,
        chair: bool | None = None,
        chair_model: str | None = None,
    ) -> dict[str, Any]:
        """Only the options given go into the body, so the API's defaults decide the rest."""
        given: dict[str, Any] = {
            "extra_context": extra_context,
            "priority": priority,
            "persona_models": None if persona_models is None else dict(persona_models),
            "review_rounds": review_rounds,
            "chair": chair,
            "chair_model": chair_model,
        }
        body: dict[str, Any] = {"idea": idea}
        body.update((key, value) for key, value in given.items() if value is not None)
        result: dict[str, Any] = self.request("POST", "/v1/runs", body)
        return result

    def retry(self, run_id: str) -> dict[str, Any]:
        """Re-run a failed run's unfinished steps, or a completed run's failed chair."""
        path = f"/v1/runs/{_segment(run_id)}/retry"
        result: dict[str, Any] = self.request("POST", path)
        return result

    def list_runs(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        params = {"status": status, "limit": limit, "cursor": cursor}
        result: dict[str, Any] = self.request("GET", "/v1/runs", params=params)
        return result

    def get_run(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/v1/runs/{_segment(run_id)}")
        return result

    def revise(
        self,
        run_id: str,
        *,
        edit_notes: str | None = None,
        edited_proposal: str | None = None,
        rerun_personas: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if edit_notes is not None:
            body["edit_notes"] = edit_notes
        if edited_proposal is not None:
            body["edited_proposal"] = edited_proposal
        if rerun_personas is not None:
            body["rerun_personas"] = list(rerun_personas)
        path = f"/v1/runs/{_segment(run_id)}/revisions"
        result: dict[str, Any] = self.request("POST", path, body)
        return result

    def usage(self, *, days: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/v1/usage", params={"days": days})
        return result

    def diff(self, run_id: str, other_id: str) -> dict[str, Any]:
        path = f"/v1/runs/{_segment(run_id)}/diff/{_segment(other_id)}"
        result: dict[str, Any] = self.request("GET", path)
        return result

    def events(self, run_id: str) -> Iterator[ServerSentEvent]:
        """The run's Server-Sent Events until the server closes the stream."""
        response = self._open(
            "GET",
            f"/v1/runs/{_segment(run_id)}/events",
            accept="text/event-stream",
            timeout=STREAM_READ_TIMEOUT_SECONDS,
        )
        with response:
            try:
                yield from parse_sse(response)
            except (OSError, http.client.HTTPException) as error:
                reason = _describe_network_error(error, STREAM_READ_TIMEOUT_SECONDS)
                raise ApiUnreachable(f"the event stream broke off: {reason}") from None

    # -- following a run ------------------------------------------------------------------

    def follow(
        self, run_id: str, *, poll_interval: float = POLL_INTERVAL_SECONDS
    ) -> Iterator[Progress]:
        """Each change of the run's steps and status, until it has ended.

        Follows the event stream; where the API has none (404) or the stream breaks off,
        polls ``GET /v1/runs/{id}`` instead. Repeats are dropped either way.
        """
        fresh = ChangeFilter()
        try:
            for event in self.events(run_id):
                updates = event_updates(event)
                yield from fresh.changes(updates)
                if any(isinstance(u, StatusUpdate) and u.final for u in updates):
                    return
        except ApiRequestError as error:
            if error.status != 404:
                raise
        except ApiUnreachable:
            pass  # the stream broke off; the state is still one GET away
        while True:
            detail = self.get_run(run_id)
            yield from fresh.changes(detail_updates(detail))
            if detail.get("status") in TERMINAL_STATUSES:
                return
            time.sleep(poll_interval)


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")
