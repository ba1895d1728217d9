"""The HTTP client behind ``consensus-engine submit|runs|revise|diff``.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

USER_AGENT = "consensus-engine-cli/1"
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
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


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: Any
    """The ``data`` field parsed as JSON, or the raw text when it is not JSON."""


@dataclass(frozen=True)
class StepUpdate:
    """A step changed: its new status and how many attempts it took so far."""

    step_name: str
    status: str
    attempts: int
    error: str | None = None
    reused: bool = False


@dataclass(frozen=True)
class StatusUpdate:
    """The run's status changed; ``final`` once it has ended."""

    status: str
    final: bool
    error_code: str | None = None


Progress = StepUpdate | StatusUpdate


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
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"idea": idea}
        if extra_context is not None:
            body["extra_context"] = extra_context
        if priority is not None:
            body["priority"] = priority
        result: dict[str, Any] = self.request("POST", "/v1/runs", body)
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
            yield from _parse_sse(response)

    # -- following a run ------------------------------------------------------------------

    def follow(
        self, run_id: str, *, poll_interval: float = POLL_INTERVAL_SECONDS
    ) -> Iterator[Progress]:
        """Each change of the run's steps and status, until it has ended.

        Follows the event stream; where the API has none (404) or the stream breaks off,
        polls ``GET /v1/runs/{id}`` instead. Repeats are dropped either way.
        """
        seen: dict[str, tuple[str, int]] = {}
        status: list[str] = []

        def changes(updates: Sequence[Progress]) -> Iterator[Progress]:
            for update in updates:
                if isinstance(update, StepUpdate):
                    state = (update.status, update.attempts)
                    if seen.get(update.step_name) != state:
                        seen[update.step_name] = state
                        yield update
                elif not status or status[-1] != update.status:
                    status.append(update.status)
                    yield update

        try:
            for event in self.events(run_id):
                updates = _event_updates(event)
                yield from changes(updates)
                if any(isinstance(u, StatusUpdate) and u.final for u in updates):
                    return
        except ApiRequestError as error:
            if error.status != 404:
                raise
        except ApiUnreachable:
            pass  # the stream broke off; the state is still one GET away
        while True:
            detail = self.get_run(run_id)
            updates = _detail_updates(detail)
            yield from changes(updates)
            if detail.get("status") in TERMINAL_STATUSES:
                return
            time.sleep(poll_interval)


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _parse_sse(response: http.client.HTTPResponse) -> Iterator[ServerSentEvent]:
    event: str = "message"
    data: list[str] = []
    while True:
        try:
            raw = response.readline()
        except (OSError, http.client.HTTPException) as error:
            raise ApiUnreachable(
                f"the event stream broke off: "
                f"{_describe_network_error(error, STREAM_READ_TIMEOUT_SECONDS)}"
            ) from None
        if not raw:
            return
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    value: Any = json.loads(text)
                except ValueError:
                    value = text
                yield ServerSentEvent(event, value)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value_text = line.partition(":")
        value_text = value_text.removeprefix(" ")
        if name == "event":
            event = value_text
        elif name == "data":
            data.append(value_text)


def _step_update(step: Mapping[str, Any]) -> StepUpdate:
    return StepUpdate(
        step_name=str(step.get("step_name", "?")),
        status=str(step.get("status", "?")),
        attempts=int(step.get("attempts") or 0),
        error=step.get("error"),
        reused=bool(step.get("reused", False)),
    )


def _event_updates(event: ServerSentEvent) -> list[Progress]:
    data = event.data if isinstance(event.data, dict) else {}
    updates: list[Progress] = []
    if event.event == "snapshot":
        updates.extend(_step_update(step) for step in data.get("steps", []))
    if event.event == "step":
        updates.append(_step_update(data))
    if event.event in ("snapshot", "status", "end") and "status" in data:
        status = str(data["status"])
        final = event.event == "end" or status in TERMINAL_STATUSES
        updates.append(StatusUpdate(status, final, data.get("error_code")))
    return updates


def _detail_updates(detail: Mapping[str, Any]) -> list[Progress]:
    updates: list[Progress] = [_step_update(step) for step in detail.get("steps", [])]
    status = str(detail.get("status", "?"))
    error = detail.get("error") or {}
    updates.append(StatusUpdate(status, status in TERMINAL_STATUSES, error.get("code")))
    return updates


def read_text_file(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read {what} {path}: {error.strerror or error}") from None


def read_context_file(path: str) -> str | dict[str, Any]:
    """A ``.json`` file must hold a JSON object (sent as one); anything else is sent as text."""
    text = read_text_file(path, "context file")
    if not path.endswith(".json"):
        return text
    try:
        value = json.loads(text)
    except ValueError as error:
        raise UsageError(f"context file {path} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise UsageError(f"context file {path} must hold a JSON object")
    return value
