"""The HTTP client behind ``consensus-engine submit|runs|revise|retry|cancel|diff``.

Standard library only (urllib), so the command needs nothing beyond the package. Every
failure becomes a :class:`ClientError` whose text is one line for a terminal (the API's
own message, code and request id, or which URL could not be reached) and whose
:meth:`ClientError.as_json` is the same for a machine. The API key goes into the
``Authorization`` header and nowhere else: not into messages, and not to another host,
because redirects are refused rather than followed.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
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


class ExitCode(IntEnum):
    """What ``consensus-engine`` returns; the README's "CI gate" section has the table."""

    OK = 0
    ERROR = 1
    """The API refused the request (401, 403, 404, 409, 429, 5xx) or could not be reached."""
    USAGE = 2
    """A bad argument or setting, or input the API found invalid (400, 413, 422)."""
    BLOCKED = 3
    """The run's decision is one that ``--fail-on`` lists."""
    UNFINISHED = 4
    """The run failed or was cancelled, or did not end within ``--timeout``."""
    INTERRUPTED = 130


class ClientError(Exception):
    """A failure to show the user as one line; ``exit_code`` is what the command returns
    and ``code`` names the failure for a machine (the API's own code where it gave one)."""

    exit_code: int = ExitCode.ERROR
    code = "CLIENT_ERROR"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code

    def as_json(self) -> dict[str, Any]:
        """The failure as ``--json`` prints it on stderr: the same keys for every failure."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "http_status": None,
                "request_id": None,
                "details": self.details,
            },
            "exit_code": int(self.exit_code),
        }


class ApiRequestError(ClientError):
    """The API answered with an error envelope (or at least an error status)."""

    def __init__(
        self, status: int, code: str, message: str, request_id: str, details: Any = None
    ) -> None:
        super().__init__(f"{message} ({code}, request {request_id})", code=code, details=details)
        self.status = status
        self.message = message
        self.request_id = request_id
        # Invalid input is a usage error (2), like a bad command-line argument.
        self.exit_code = ExitCode.USAGE if status in (400, 413, 422) else ExitCode.ERROR

    def as_json(self) -> dict[str, Any]:
        value = super().as_json()
        value["error"] |= {"http_status": self.status, "request_id": self.request_id}
        return value


class ApiUnreachable(ClientError):
    """No HTTP answer at all: refused, unknown host, timed out, connection dropped."""

    code = "API_UNREACHABLE"


class UsageError(ClientError):
    exit_code = ExitCode.USAGE
    code = "USAGE_ERROR"


class WaitTimedOut(ClientError):
    """The run had not ended when ``--timeout`` ran out; it goes on without us."""

    exit_code = ExitCode.UNFINISHED
    code = "WAIT_TIMEOUT"


@dataclass(frozen=True)
class Submitted:
    """The answer to a submit: the API's JSON, and whether it replays an earlier request
    with the same ``Idempotency-Key`` (HTTP 200, ``Idempotent-Replayed``) instead of a new run."""

    body: dict[str, Any]
    replayed: bool


IDEMPOTENCY_KEY_MAX_LENGTH = 200
"""The API's limit on an ``Idempotency-Key``."""


def default_idempotency_key(body: Mapping[str, Any]) -> str:
    """The key ``submit`` sends unless told otherwise: a digest of the body it sends.

    The same request (idea, context, options) always gets the same key, so a step that is
    run again after it lost its answer finds the run it made instead of making a second.
    The API keys runs per tenant, so two tenants never share one.
    """
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "cli-" + hashlib.sha256(canonical.encode()).hexdigest()


def submit_body(
    idea: str,
    *,
    extra_context: str | Mapping[str, Any] | None = None,
    priority: str | None = None,
    persona_models: Mapping[str, str] | None = None,
    review_rounds: int | None = None,
    chair: bool | None = None,
    chair_model: str | None = None,
) -> dict[str, Any]:
    """The body of ``POST /v1/runs``: only the options given, so the API's defaults decide
    the rest."""
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
    return body


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
        extra_headers: Mapping[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        url = self.base_url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"Accept": accept, "User-Agent": USER_AGENT, **(extra_headers or {})}
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
        return self._exchange(method, path, body, params=params)[0]

    def _exchange(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        params: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Any, http.client.HTTPMessage]:
        """The decoded JSON body of a successful answer, and the answer's headers."""
        try:
            with self._open(method, path, body, params=params, extra_headers=headers) as response:
                raw = response.read()
                answered = response.headers
        except (OSError, http.client.HTTPException) as error:
            reason = _describe_network_error(error, self.timeout)
            raise ApiUnreachable(f"lost the connection to {self.base_url}: {reason}") from None
        if not raw:  # 204 No Content
            return None, answered
        try:
            return json.loads(raw), answered
        except ValueError:
            raise ClientError(
                f"the API at {self.base_url} answered with something not JSON",
                code="BAD_RESPONSE",
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
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Only the options given go into the body, so the API's defaults decide the rest;
        an ``idempotency_key`` makes repeating the call safe (see :meth:`post_run`)."""
        body = submit_body(
            idea,
            extra_context=extra_context,
            priority=priority,
            persona_models=persona_models,
            review_rounds=review_rounds,
            chair=chair,
            chair_model=chair_model,
        )
        return self.post_run(body, idempotency_key=idempotency_key).body

    def post_run(self, body: Mapping[str, Any], *, idempotency_key: str | None) -> Submitted:
        """``POST /v1/runs`` with ``body`` (see :func:`submit_body`). With a key, the API
        answers a repeat of the same key and body with the run the first one made."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        result, answered = self._exchange("POST", "/v1/runs", dict(body), headers=headers)
        replayed = (answered.get("Idempotent-Replayed") or "").lower() == "true"
        return Submitted(body=result, replayed=replayed)

    def retry(self, run_id: str) -> dict[str, Any]:
        """Re-run a failed run's unfinished steps, or a completed run's failed chair."""
        path = f"/v1/runs/{_segment(run_id)}/retry"
        result: dict[str, Any] = self.request("POST", path)
        return result

    def cancel(self, run_id: str) -> dict[str, Any]:
        """Stop a queued or running run: no further step starts."""
        path = f"/v1/runs/{_segment(run_id)}/cancel"
        result: dict[str, Any] = self.request("POST", path)
        return result

    def list_runs(self, **filters: object) -> dict[str, Any]:
        """``GET /v1/runs`` with the filters given (``status``, ``run_type``,
        ``parent_run_id``, ``decision``, ``min_confidence``, ``created_after``,
        ``created_before``, ``q``, ``limit``, ``cursor``, ...); ``None`` leaves one out."""
        result: dict[str, Any] = self.request("GET", "/v1/runs", params=filters)
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

    def webhooks(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/v1/webhooks")
        return result

    def create_webhook(self, url: str, events: Sequence[str], **fields: object) -> dict[str, Any]:
        """Register an endpoint; the answer holds its secret, shown this once."""
        body = {"url": url, "events": list(events), **fields}
        result: dict[str, Any] = self.request("POST", "/v1/webhooks", body)
        return result

    def update_webhook(self, endpoint_id: str, **changes: object) -> dict[str, Any]:
        path = f"/v1/webhooks/{_segment(endpoint_id)}"
        result: dict[str, Any] = self.request("PATCH", path, changes)
        return result

    def delete_webhook(self, endpoint_id: str) -> None:
        self.request("DELETE", f"/v1/webhooks/{_segment(endpoint_id)}")

    def rotate_webhook_secret(self, endpoint_id: str) -> dict[str, Any]:
        path = f"/v1/webhooks/{_segment(endpoint_id)}/rotate-secret"
        result: dict[str, Any] = self.request("POST", path)
        return result

    def webhook_deliveries(self, endpoint_id: str) -> dict[str, Any]:
        path = f"/v1/webhooks/{_segment(endpoint_id)}/deliveries"
        result: dict[str, Any] = self.request("GET", path)
        return result

    def redeliver_webhook(self, endpoint_id: str, delivery_id: str) -> None:
        path = f"/v1/webhooks/{_segment(endpoint_id)}/deliveries/{_segment(delivery_id)}/redeliver"
        self.request("POST", path)

    def diff(self, run_id: str, other_id: str) -> dict[str, Any]:
        path = f"/v1/runs/{_segment(run_id)}/diff/{_segment(other_id)}"
        result: dict[str, Any] = self.request("GET", path)
        return result

    def events(
        self, run_id: str, *, deadline: _Deadline | None = None
    ) -> Iterator[ServerSentEvent]:
        """The run's Server-Sent Events until the server closes the stream (or, with a
        ``deadline``, until it has passed: then :class:`WaitTimedOut`)."""
        wait = STREAM_READ_TIMEOUT_SECONDS
        if deadline is not None:  # a silent stream must not outlast the deadline either
            wait = max(0.05, min(wait, deadline.left()))
        response = self._open(
            "GET", f"/v1/runs/{_segment(run_id)}/events", accept="text/event-stream", timeout=wait
        )
        lines: Iterable[bytes] = response if deadline is None else deadline.watch(response)
        with response:
            try:
                yield from parse_sse(lines)
            except (OSError, http.client.HTTPException) as error:
                reason = _describe_network_error(error, wait)
                raise ApiUnreachable(f"the event stream broke off: {reason}") from None

    # -- following a run ------------------------------------------------------------------

    def follow(
        self,
        run_id: str,
        *,
        poll_interval: float = POLL_INTERVAL_SECONDS,
        timeout: float | None = None,
    ) -> Iterator[Progress]:
        """Each change of the run's steps and status, until it has ended.

        Follows the event stream; where the API has none (404) or the stream breaks off,
        polls ``GET /v1/runs/{id}`` instead. Repeats are dropped either way. After
        ``timeout`` seconds without the end, raises :class:`WaitTimedOut`.
        """
        deadline = None if timeout is None else _Deadline(run_id, timeout)
        fresh = ChangeFilter()
        try:
            for event in self.events(run_id, deadline=deadline):
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
            if deadline is not None:
                deadline.check()
                time.sleep(min(poll_interval, deadline.left()))
            else:
                time.sleep(poll_interval)


class _Deadline:
    """When following a run gives up (``--timeout``)."""

    def __init__(self, run_id: str, seconds: float) -> None:
        self.run_id = run_id
        self.seconds = seconds
        self._at = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self._at - time.monotonic())

    def check(self) -> None:
        if self.left() <= 0:
            raise WaitTimedOut(
                f"run {self.run_id} did not end within {self.seconds:g} s; it goes on: "
                f"consensus-engine runs show {self.run_id} (or cancel {self.run_id})",
                details={"run_id": self.run_id, "timeout_seconds": self.seconds},
            )

    def watch(self, lines: Iterable[bytes]) -> Iterator[bytes]:
        """``lines`` until the deadline: keep-alives alone must not keep us waiting."""
        for line in lines:
            self.check()
            yield line


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")
