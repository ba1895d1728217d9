"""The commands that use a running API as its client: submit, revise, retry, runs, diff.

Each prints text for a terminal (``terminal.py``) or, with ``--json``, the API's own JSON;
``--wait`` follows the run until it ends. Failures are the client's one-line errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from consensus_engine.client import ConsensusClient, UsageError
from consensus_engine.terminal import (
    render_accepted,
    render_diff,
    render_progress,
    render_run,
    render_run_list,
    render_usage,
)


def _client(args: argparse.Namespace) -> ConsensusClient:
    """The client for ``--api-url`` / ``--api-key``, or ``API_URL`` / ``API_KEY``."""
    url: str | None = args.api_url
    key: str | None = args.api_key
    if url is None or key is None:
        from consensus_engine.settings import get_settings

        settings = get_settings()
        url = url or settings.api_url
        if key is None and settings.api_key is not None:
            key = settings.api_key.get_secret_value()
    return ConsensusClient(url, key or None)


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


def _follow_and_report(
    client: ConsensusClient, accepted: Mapping[str, Any], as_json: bool, *, chair_counts: bool
) -> int:
    """Print each change of the run (not with ``--json``), then its outcome; 0 if completed.

    A failed chair leaves the decision standing, so it is only a note, unless
    ``chair_counts`` (a retry, whose point may have been the chair): then it is a failure.
    """
    run_id = str(accepted["run_id"])
    started = time.monotonic()
    try:
        for update in client.follow(run_id):
            if not as_json:
                print(render_progress(update, time.monotonic() - started), flush=True)
    except KeyboardInterrupt:
        print(
            f"consensus-engine: stopped following; the run goes on: "
            f"consensus-engine runs show {run_id}",
            file=sys.stderr,
        )
        return 130
    detail = client.get_run(run_id)
    if as_json:
        _print_json(detail)
    else:
        print()
        print(render_run(detail))
    if detail.get("status") != "completed":
        error = detail.get("error") or {}
        reason = error.get("message") or detail.get("status")
        print(f"consensus-engine: run {run_id} did not complete: {reason}", file=sys.stderr)
        return 1
    chair = detail.get("chair") or {}
    if chair.get("status") == "failed":
        reason = str(chair.get("error") or "no reason given").rstrip(". ")
        print(
            f"consensus-engine: run {run_id} completed, but its chair failed: {reason}; "
            f"try again: consensus-engine retry {run_id}",
            file=sys.stderr,
        )
        return 1 if chair_counts else 0
    return 0


def _accepted(
    client: ConsensusClient,
    accepted: Mapping[str, Any],
    args: argparse.Namespace,
    *,
    chair_counts: bool = False,
) -> int:
    if not args.wait:
        if args.json:
            _print_json(accepted)
        else:
            print(render_accepted(accepted))
        return 0
    if not args.json:
        print(render_accepted(accepted), flush=True)
    return _follow_and_report(client, accepted, args.json, chair_counts=chair_counts)


def submit(args: argparse.Namespace) -> int:
    client = _client(args)
    context = _read_context_file(args.context_file) if args.context_file else None
    accepted = client.submit(
        args.idea,
        extra_context=context,
        priority=args.priority,
        persona_models=args.persona_models,
        review_rounds=args.review_rounds,
        chair=args.chair,
        chair_model=args.chair_model,
    )
    return _accepted(client, accepted, args)


def retry(args: argparse.Namespace) -> int:
    client = _client(args)
    return _accepted(client, client.retry(args.run_id), args, chair_counts=True)


def revise(args: argparse.Namespace) -> int:
    client = _client(args)
    edited = _read_text_file(args.edit_file, "edit file") if args.edit_file else None
    rerun = None
    if args.rerun is not None:
        rerun = [name.strip() for name in args.rerun.split(",") if name.strip()]
    accepted = client.revise(
        args.run_id, edit_notes=args.notes, edited_proposal=edited, rerun_personas=rerun
    )
    return _accepted(client, accepted, args)


def list_runs(args: argparse.Namespace) -> int:
    listing = _client(args).list_runs(status=args.status, limit=args.limit, cursor=args.cursor)
    if args.json:
        _print_json(listing)
    else:
        print(render_run_list(listing))
    return 0


def show_run(args: argparse.Namespace) -> int:
    detail = _client(args).get_run(args.run_id)
    if args.json:
        _print_json(detail)
    else:
        print(render_run(detail))
    return 0


def usage(args: argparse.Namespace) -> int:
    report = _client(args).usage(days=args.days)
    if args.json:
        _print_json(report)
    else:
        print(render_usage(report))
    return 0


def diff_runs(args: argparse.Namespace) -> int:
    diff = _client(args).diff(args.run_id, args.other_id)
    if args.json:
        _print_json(diff)
    else:
        print(render_diff(diff))
    return 0


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
