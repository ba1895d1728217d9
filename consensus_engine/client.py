"""The HTTP client behind ``consensus-engine submit|runs|revise|diff``, and how it shows results.

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


# -- rendering (plain text for a terminal) -------------------------------------------------


def _score(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _short_score(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"


def render_progress(update: Progress, elapsed: float) -> str:
    stamp = f"[{elapsed:6.1f}s]"
    if isinstance(update, StatusUpdate):
        suffix = f" ({update.error_code})" if update.error_code else ""
        return f"  {stamp} run {update.status}{suffix}"
    notes = []
    if update.attempts > 1:
        notes.append(f"attempt {update.attempts}")
    if update.reused:
        notes.append("reused")
    if update.error and update.status == "failed":
        notes.append(update.error)
    note = f"  ({'; '.join(notes)})" if notes else ""
    return f"  {stamp} {update.step_name:<28} {update.status}{note}"


def render_accepted(accepted: Mapping[str, Any]) -> str:
    run_id = accepted.get("run_id")
    lines = [f"Run {run_id} {accepted.get('status')} ({accepted.get('priority')} priority)."]
    plan = accepted.get("plan")
    if isinstance(plan, dict):
        lines[0] = f"Revision {run_id} of {accepted.get('parent_run_id')} {accepted.get('status')}."
        rerun = ", ".join(plan.get("rerun", [])) or "none"
        reused = ", ".join(plan.get("reused", [])) or "none"
        lines.append(f"  re-runs: {rerun}")
        lines.append(f"  reuses:  {reused}")
        if not plan.get("exact", True):
            lines.append("  (the edit notes may add re-runs once the proposal is rewritten)")
    if accepted.get("enqueued") is False:
        lines.append(f"  {accepted.get('message')}")
    return "\n".join(lines)


def render_run(detail: Mapping[str, Any]) -> str:
    """A run's outcome for people: decision, scores, blocking points, minority reports, cost."""
    lines = [
        f"Run {detail.get('run_id')}: {detail.get('status')} "
        f"({detail.get('run_type')}, {detail.get('priority')} priority)",
        f"Idea: {detail.get('idea')}",
    ]
    if detail.get("parent_run_id"):
        lines.append(f"Revision of: {detail['parent_run_id']}")
    proposal = detail.get("proposal") or {}
    title = (proposal.get("proposal") or {}).get("title")
    if title:
        lines.append(f"Proposal: {title}")
    error = detail.get("error") or {}
    if error.get("code") or error.get("message"):
        lines.append(f"Error: {error.get('message') or ''} ({error.get('code') or 'unknown'})")
    decision = detail.get("decision")
    if isinstance(decision, dict):
        lines.extend(_render_decision(decision, detail.get("reviews") or []))
    elif detail.get("status") not in TERMINAL_STATUSES:
        lines.append("Decision: not yet")
        lines.extend(
            f"  {step.get('step_name', '?'):<28} {step.get('status', '?')}"
            for step in detail.get("steps", [])
        )
    usage = detail.get("usage") or {}
    if usage:
        lines.append(
            f"Usage: {usage.get('input_tokens', 0):,} input + {usage.get('output_tokens', 0):,} "
            f"output tokens in {usage.get('llm_calls', 0)} LLM call(s), "
            f"about ${usage.get('cost_usd', 0):.4f}"
        )
    return "\n".join(lines)


def _render_decision(
    decision: Mapping[str, Any], reviews: Sequence[Mapping[str, Any]]
) -> list[str]:
    lines = [
        f"Decision: {str(decision.get('decision', '?')).upper()}  "
        f"(weighted score {_score(decision.get('overall_weighted_confidence'))}; approve at "
        f"{_short_score(decision.get('approve_threshold'))}, revise at "
        f"{_short_score(decision.get('revise_threshold'))})"
    ]
    breakdown = decision.get("score_breakdown") or {}
    weights = breakdown.get("weights") or {}
    by_id = {review.get("persona_id"): review for review in reviews}
    if reviews:
        lines.append("Personas:")
    blocking: list[str] = []
    for pid, review in by_id.items():
        name = review.get("persona_name") or pid
        flags = []
        if review.get("reused"):
            flags.append("reused")
        texts = [i.get("text", "") for i in review.get("blocking_issues", [])] + [
            c.get("text", "") for c in review.get("concerns", []) if c.get("is_blocking")
        ]
        if texts:
            flags.append(f"{len(texts)} blocking")
        blocking.extend(f"  - {name}: {text}" for text in texts)
        flag = f"  [{', '.join(flags)}]" if flags else ""
        lines.append(
            f"  {name:<22} score {_short_score(review.get('confidence_score'))}"
            f"  weight {_short_score(weights.get(pid, review.get('weight')))}{flag}"
        )
    if blocking:
        lines.append("Blocking points:")
        lines.extend(blocking)
    reports = decision.get("minority_reports") or []
    if reports:
        lines.append("Minority reports:")
        for report in reports:
            lines.append(
                f"  - {report.get('persona_name')} ({_short_score(report.get('confidence_score'))},"
                f" {report.get('position')}): {report.get('blocking_summary')}"
            )
            lines.append(f"    mitigation: {report.get('mitigation_recommendation')}")
    rationale = decision.get("rationale")
    if rationale:
        lines.append(f"Why: {rationale}")
    return lines


def render_run_list(listing: Mapping[str, Any]) -> str:
    runs = listing.get("runs") or []
    if not runs:
        return "No runs."
    header = f"{'RUN ID':<36}  {'STATUS':<9}  {'TYPE':<8}  {'DECISION':<8}  SCORE  CREATED"
    lines = [header]
    for run in runs:
        created = str(run.get("created_at") or "")[:19].replace("T", " ")
        title = run.get("proposal_title") or ""
        lines.append(
            f"{run.get('run_id')!s:<36}  {run.get('status')!s:<9}  {run.get('run_type')!s:<8}  "
            f"{run.get('decision') or '-':<8}  {_short_score(run.get('overall_score')):>5}  "
            f"{created}  {title}".rstrip()
        )
    if listing.get("next_cursor"):
        lines.append(f"More: --cursor {listing['next_cursor']}")
    return "\n".join(lines)


def render_diff(diff: Mapping[str, Any]) -> str:
    meta = diff.get("metadata") or {}
    lines = [f"{meta.get('run1_id')} -> {meta.get('run2_id')} ({meta.get('relationship')})"]
    delta = diff.get("decision_delta") or {}
    changed = "  changed" if delta.get("decision_changed") else ""
    lines.append(
        f"Decision: {delta.get('old_decision') or '-'} ({_score(delta.get('old_confidence'))}) -> "
        f"{delta.get('new_decision') or '-'} ({_score(delta.get('new_confidence'))}){changed}"
    )
    personas = diff.get("persona_deltas") or []
    if personas:
        lines.append("Personas:")
    for item in personas:
        change = item.get("confidence_delta")
        shift = f" ({change:+.2f})" if isinstance(change, int | float) else ""
        blocking = (
            f"  blocking {_yes_no(item.get('old_blocking'))} -> {_yes_no(item.get('new_blocking'))}"
            if item.get("blocking_changed")
            else ""
        )
        status = "" if item.get("status") == "present_in_both" else f"  [{item.get('status')}]"
        lines.append(
            f"  {item.get('persona_id')!s:<22} {_short_score(item.get('old_confidence'))} -> "
            f"{_short_score(item.get('new_confidence'))}{shift}{blocking}{status}"
        )
    lines.append("Proposal:")
    for section, change in (diff.get("proposal_changes") or {}).items():
        lines.append(f"  {section}: {change.get('status')}")
        text = change.get("diff") or ""
        lines.extend(f"    {line}" for line in text.splitlines())
        if change.get("diff_truncated"):
            lines.append("    (diff truncated)")
    return "\n".join(lines)


def _yes_no(value: object) -> str:
    return "-" if value is None else ("yes" if value else "no")


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
