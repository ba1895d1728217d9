"""``consensus-engine webhooks …``: a tenant's webhook endpoints from the command line."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from consensus_engine.run_commands import client_for, show


def _events(text: str) -> list[str]:
    return [event.strip() for event in text.split(",") if event.strip()]


def _line(endpoint: Mapping[str, Any]) -> str:
    state = "enabled" if endpoint.get("enabled") else "disabled"
    events = ",".join(endpoint.get("events") or [])
    return f"{endpoint.get('id')}  {state:<8}  {events:<40}  {endpoint.get('url')}"


def create(args: argparse.Namespace) -> int:
    fields = {} if args.description is None else {"description": args.description}
    made = client_for(args).create_webhook(args.url, _events(args.events), **fields)
    secret = f"  secret: {made.get('secret')}  (shown once: keep it to verify signatures)"
    return show(args, made, f"{_line(made)}\n{secret}")


def list_endpoints(args: argparse.Namespace) -> int:
    found = client_for(args).webhooks()
    return show(args, found, "\n".join(_line(e) for e in found) or "No webhook endpoints.")


def update(args: argparse.Namespace) -> int:
    changes: dict[str, object] = {}
    if args.url is not None:
        changes["url"] = args.url
    if args.events is not None:
        changes["events"] = _events(args.events)
    if args.enabled is not None:
        changes["enabled"] = args.enabled
    changed = client_for(args).update_webhook(args.endpoint_id, **changes)
    return show(args, changed, _line(changed))


def delete(args: argparse.Namespace) -> int:
    client_for(args).delete_webhook(args.endpoint_id)
    return show(args, {"deleted": args.endpoint_id}, f"Deleted {args.endpoint_id}.")


def rotate(args: argparse.Namespace) -> int:
    rotated = client_for(args).rotate_webhook_secret(args.endpoint_id)
    return show(args, rotated, f"  secret: {rotated.get('secret')}  (shown once)")


def deliveries(args: argparse.Namespace) -> int:
    found = client_for(args).webhook_deliveries(args.endpoint_id)
    lines = []
    for delivery in found.get("deliveries", []):
        codes = ",".join(str(a.get("status_code") or "-") for a in delivery.get("attempts", []))
        lines.append(
            f"{delivery.get('id')}  {delivery.get('event'):<14}  {delivery.get('status'):<9}"
            f"  run {delivery.get('run_id')}  attempts: {codes or 'none yet'}"
        )
    return show(args, found, "\n".join(lines) or "No deliveries yet.")


def redeliver(args: argparse.Namespace) -> int:
    client_for(args).redeliver_webhook(args.endpoint_id, args.delivery_id)
    answer = {"redelivering": args.delivery_id}
    return show(args, answer, f"Delivering {args.delivery_id} again.")
