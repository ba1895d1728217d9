"""The commands that use a running API as its client: submit, revise, retry, cancel, runs,
diff, usage, and the MCP server in front of it.

Each prints text for a terminal (``terminal.py``) or, with ``--json``, the API's own JSON on
stdout; ``--wait`` follows the run until it ends and ``--fail-on`` turns its decision into
the exit status (a CI gate). Failures are raised as :class:`ClientError`, which ``cli.main``
prints as one line, or as one JSON object with ``--json``, on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, cast

from consensus_engine.client import (
    ClientError,
    ConsensusClient,
    ExitCode,
    UsageError,
    default_idempotency_key,
    submit_body,
)
from consensus_engine.terminal import (
    render_accepted,
    render_cancelled,
    render_diff,
    render_gate,
    render_progress,
    render_run,
    render_run_list,
    render_usage,
)


class RunUnfinished(ClientError):
    """The run followed ended without what was asked of it: failed or cancelled (or, for a
    retry, its chair failed again)."""

    exit_code = ExitCode.UNFINISHED
    code = "RUN_FAILED"


class DecisionBlocked(ClientError):
    """The gate is closed: the run's decision is one that ``--fail-on`` lists."""

    exit_code = ExitCode.BLOCKED
    code = "DECISION_BLOCKED"


def _connection(args: argparse.Namespace) -> tuple[str, str | None]:
    """``--api-url`` / ``--api-key``, or else ``API_URL`` / ``API_KEY`` from the settings."""
    url: str | None = args.api_url
    key: str | None = args.api_key
    if url is None or key is None:
        from consensus_engine.settings import get_settings

        settings = get_settings()
        url = url or settings.api_url
        if key is None and settings.api_key is not None:
            key = settings.api_key.get_secret_value()
    return url, key or None


def client_for(args: argparse.Namespace) -> ConsensusClient:
    url, key = _connection(args)
    return ConsensusClient(url, key)


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


def show(args: argparse.Namespace, answer: object, text: str) -> int:
    """The API's ``answer`` as JSON with ``--json``, else ``text``; the exit status."""
    if args.json:
        print_json(answer)
    else:
        print(text)
    return ExitCode.OK


def _warn(args: argparse.Namespace, code: str, message: str, **details: Any) -> None:
    """A note on stderr that does not change the exit status (as JSON with ``--json``)."""
    if getattr(args, "json", False):
        note = {"warning": {"code": code, "message": message, "details": details or None}}
        print(json.dumps(note), file=sys.stderr)
    else:
        print(f"consensus-engine: {message}", file=sys.stderr)


def _waits(args: argparse.Namespace) -> bool:
    """``--fail-on`` needs the decision, so it waits for it even without ``--wait``."""
    return bool(args.wait or args.fail_on)


def _follow_and_report(
    client: ConsensusClient,
    accepted: Mapping[str, Any],
    args: argparse.Namespace,
    *,
    chair_counts: bool,
) -> int:
    """Print each change of the run (not with ``--json``), then its outcome: the run in
    full, or with ``--fail-on`` the gate's summary. 0 if it completed with a decision the
    gate lets through; otherwise raises the failure, which ``cli.main`` reports.

    A failed chair leaves the decision standing, so it is only a note, unless
    ``chair_counts`` (a retry, whose point may have been the chair): then it is a failure.
    """
    run_id = str(accepted["run_id"])
    started = time.monotonic()
    try:
        for update in client.follow(run_id, timeout=args.timeout):
            if not args.json:
                print(render_progress(update, time.monotonic() - started), flush=True)
    except KeyboardInterrupt:
        _warn(
            args,
            "INTERRUPTED",
            f"stopped following; the run goes on: consensus-engine runs show {run_id}",
            run_id=run_id,
        )
        return ExitCode.INTERRUPTED
    detail = client.get_run(run_id)
    if args.json:
        print_json(detail)
    elif args.fail_on:
        print()
        print(render_gate(detail, args.fail_on, f"{client.base_url}/runs/{run_id}"))
    else:
        print()
        print(render_run(detail))
    _check_outcome(detail, args, chair_counts=chair_counts)
    return ExitCode.OK


def _check_outcome(
    detail: Mapping[str, Any], args: argparse.Namespace, *, chair_counts: bool
) -> None:
    run_id, status = str(detail.get("run_id")), str(detail.get("status"))
    if status != "completed":
        error = detail.get("error") or {}
        reason = str(error.get("message") or status).rstrip(". ")
        hint = f"; try again: consensus-engine retry {run_id}" if status == "failed" else ""
        raise RunUnfinished(
            f"run {run_id} did not complete ({status}): {reason}{hint}",
            code="RUN_CANCELLED" if status == "cancelled" else "RUN_FAILED",
            details={"run_id": run_id, "status": status, "run_error": error or None},
        )
    chair = detail.get("chair") or {}
    if chair.get("status") == "failed":
        reason = str(chair.get("error") or "no reason given").rstrip(". ")
        message = (
            f"run {run_id} completed, but its chair failed: {reason}; "
            f"try again: consensus-engine retry {run_id}"
        )
        if chair_counts:
            raise RunUnfinished(message, code="CHAIR_FAILED", details={"run_id": run_id})
        _warn(args, "CHAIR_FAILED", message, run_id=run_id)
    if args.fail_on:
        _gate(detail, tuple(args.fail_on))


def _gate(detail: Mapping[str, Any], fail_on: tuple[str, ...]) -> None:
    run_id = str(detail.get("run_id"))
    decision = detail.get("decision")
    if not isinstance(decision, dict):  # a completed run always has one; be sure anyway
        raise RunUnfinished(f"run {run_id} completed without a decision", code="NO_DECISION")
    label = str(decision.get("decision"))
    if label in fail_on:
        raise DecisionBlocked(
            f"gate failed: run {run_id} decided {label}, which --fail-on lists "
            f"({', '.join(fail_on)})",
            details={
                "run_id": run_id,
                "decision": label,
                "score": decision.get("overall_weighted_confidence"),
                "fail_on": list(fail_on),
            },
        )


def _accepted(
    client: ConsensusClient,
    accepted: Mapping[str, Any],
    args: argparse.Namespace,
    *,
    chair_counts: bool = False,
    replayed: bool = False,
) -> int:
    if not _waits(args):
        if args.json:
            print_json(accepted)
        else:
            print(render_accepted(accepted, replayed=replayed))
        return ExitCode.OK
    if not args.json:
        print(render_accepted(accepted, replayed=replayed), flush=True)
    return _follow_and_report(client, accepted, args, chair_counts=chair_counts)


def submit(args: argparse.Namespace) -> int:
    """Submit an idea; the same request sends the same ``Idempotency-Key`` unless told
    otherwise, so running the command again finds the run instead of making another."""
    client = client_for(args)
    context = _read_context_file(args.context_file) if args.context_file else None
    body = submit_body(
        args.idea,
        extra_context=context,
        priority=args.priority,
        persona_models=args.persona_models,
        review_rounds=args.review_rounds,
        chair=args.chair,
        chair_model=args.chair_model,
    )
    key = _idempotency_key(args, body)
    submitted = client.post_run(body, idempotency_key=key)
    return _accepted(client, submitted.body, args, replayed=submitted.replayed)


def _idempotency_key(args: argparse.Namespace, body: Mapping[str, Any]) -> str | None:
    if not args.idempotency:
        return None
    key: str | None = args.idempotency_key
    return key if key is not None else default_idempotency_key(body)


def retry(args: argparse.Namespace) -> int:
    client = client_for(args)
    return _accepted(client, client.retry(args.run_id), args, chair_counts=True)


def revise(args: argparse.Namespace) -> int:
    client = client_for(args)
    edited = _read_text_file(args.edit_file, "edit file") if args.edit_file else None
    rerun = None
    if args.rerun is not None:
        rerun = [name.strip() for name in args.rerun.split(",") if name.strip()]
    accepted = client.revise(
        args.run_id, edit_notes=args.notes, edited_proposal=edited, rerun_personas=rerun
    )
    return _accepted(client, accepted, args)


def cancel(args: argparse.Namespace) -> int:
    answer = client_for(args).cancel(args.run_id)
    return show(args, answer, render_cancelled(answer))


LIST_FILTERS = (
    "status",
    "run_type",
    "parent_run_id",
    "decision",
    "min_confidence",
    "created_after",
    "created_before",
    "q",
    "sort",
    "direction",
    "limit",
    "cursor",
)
"""The query parameters of ``GET /v1/runs`` that ``runs list`` passes on, by their names."""


def list_runs(args: argparse.Namespace) -> int:
    filters = {name: getattr(args, name) for name in LIST_FILTERS}
    listing = client_for(args).list_runs(**filters)
    return show(args, listing, render_run_list(listing))


def show_run(args: argparse.Namespace) -> int:
    detail = client_for(args).get_run(args.run_id)
    return show(args, detail, render_run(detail))


def usage(args: argparse.Namespace) -> int:
    report = client_for(args).usage(days=args.days)
    return show(args, report, render_usage(report))


def diff_runs(args: argparse.Namespace) -> int:
    diff = client_for(args).diff(args.run_id, args.other_id)
    return show(args, diff, render_diff(diff))


class _McpServe(Protocol):
    def __call__(
        self, transport: str, host: str, port: int, api_url: str, api_key: str | None
    ) -> None: ...


def mcp(args: argparse.Namespace) -> int:
    """Serve the MCP server (``consensus_engine.mcp.server``) in front of the API; imported
    only here, so the other commands never load the MCP SDK."""
    try:
        module = importlib.import_module("consensus_engine.mcp.server")
    except ImportError as error:
        raise ClientError(
            f"the MCP server is not available: {error}", code="MCP_UNAVAILABLE"
        ) from None
    serve = cast(_McpServe, module.run)
    url, key = _connection(args)
    serve(transport=args.transport, host=args.host, port=args.port, api_url=url, api_key=key)
    return ExitCode.OK


def _read_text_file(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read {what} {path}: {error.strerror or error}") from None


def _read_context_file(path: str) -> str | dict[str, Any]:
    """A ``.json`` file must hold a JSON object (sent as one); anything else is sent as text."""
    text = _read_text_file(path, "context file")
    if not path.endswith(".json"):
        return text
    try:
        value = json.loads(text)
    except ValueError as error:
        raise UsageError(f"context file {path} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise UsageError(f"context file {path} must hold a JSON object")
    return value
