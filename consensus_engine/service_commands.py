"""The commands that run or prepare the service on this machine.

The API server and its keys, the database schema, the Pub/Sub resources, the sweeper, and
the development tools (the offline LLM, the embedded Pub/Sub server, the demo). Each
imports what it needs when it runs, so ``--help`` stays fast and a missing optional
service never breaks an unrelated command.
"""

from __future__ import annotations

import argparse
import sys


def fake_llm(args: argparse.Namespace) -> int:
    from consensus_engine.devtools.offline_llm import serve_from_args

    serve_from_args(args)
    return 0


def demo(args: argparse.Namespace) -> int:
    from consensus_engine.demo import DemoError, run_demo
    from consensus_engine.devtools.process import ProcessError

    try:
        return run_demo(idea=args.idea, serve=args.serve)
    except (DemoError, ProcessError) as error:
        print(f"consensus-engine demo: {error}", file=sys.stderr)
        return 1


def migrate(args: argparse.Namespace) -> int:
    from consensus_engine.db.migrations import upgrade_head

    upgrade_head()
    print("database schema is at head")
    return 0


def pubsub_setup(args: argparse.Namespace) -> int:
    from google.api_core.exceptions import GoogleAPIError

    from consensus_engine.messaging import build_broker
    from consensus_engine.settings import get_settings

    broker = build_broker(get_settings(), "plain")
    try:
        for line in broker.provision():
            print(line)
    except GoogleAPIError as error:
        print(f"consensus-engine: Pub/Sub refused or did not answer: {error}", file=sys.stderr)
        return 1
    finally:
        broker.close()
    return 0


def pubsub_serve(args: argparse.Namespace) -> int:
    from consensus_engine.devtools.pubsub_server import serve_from_args

    def announce(address: str) -> None:
        print(
            f"Pub/Sub: the embedded server on {address} (in memory; Ctrl-C stops it). "
            f"In another shell:\n  export PUBSUB_EMULATOR_HOST={address}",
            flush=True,
        )

    try:
        serve_from_args(args, announce)
    except OSError as error:
        print(f"consensus-engine: {error}", file=sys.stderr)
        return 1
    return 0


def sweep(args: argparse.Namespace) -> int:
    from consensus_engine.db.engine import create_engine_from_settings, session_factory
    from consensus_engine.messaging import build_broker
    from consensus_engine.settings import get_settings
    from consensus_engine.workers.broker import worker_middleware
    from consensus_engine.workers.dispatch import sweep_once

    settings = get_settings()
    broker = build_broker(settings, "worker", middleware=worker_middleware(settings))
    engine = create_engine_from_settings(settings)
    try:
        report = sweep_once(settings, broker, session_factory(engine))
    finally:
        broker.close()
        engine.dispose()
    print(
        f"re-sent {len(report.jobs)} message(s); failed {len(report.timed_out)} run(s) past "
        f"their time limit and {len(report.given_up)} that kept stalling"
    )
    for status, count in sorted(report.counts.items()):
        print(f"  {status}: {count}")
    return 0


def api(args: argparse.Namespace) -> int:
    import uvicorn

    from consensus_engine.api.auth import KeyConfigError, KeyRing
    from consensus_engine.llm.catalogue import ModelCatalogue
    from consensus_engine.observability.logs import configure_logging
    from consensus_engine.settings import get_settings

    settings = get_settings()
    try:
        KeyRing.from_settings(settings)  # a bad key entry fails here, in one line
    except KeyConfigError as error:
        print(f"consensus-engine: {error}", file=sys.stderr)
        return 2
    ModelCatalogue.from_settings(settings)  # likewise a bad catalogue (a SettingsError)
    configure_logging(
        json_lines=settings.json_logs,
        level=settings.effective_log_level,
        trace_project=settings.log_trace_project,
    )
    uvicorn.run(
        "consensus_engine.api.app:create_app",
        factory=True,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_config=None,
    )
    return 0


def new_api_key(args: argparse.Namespace) -> int:
    from pydantic import SecretStr

    from consensus_engine.api.auth import KeyConfigError, KeyRing, digest, new_key
    from consensus_engine.settings import Settings

    key = new_key()
    line = f"{args.tenant}:{digest(key)}"
    try:  # the very check the API applies to API_KEYS when it starts
        KeyRing.from_settings(Settings.model_construct(api_keys=SecretStr(line)))
    except KeyConfigError:
        print(
            f"consensus-engine: invalid tenant {args.tenant!r}: use letters, digits, '.', '_' "
            "or '-', starting with a letter or digit (200 characters at most)",
            file=sys.stderr,
        )
        return 2
    print(f"New API key for tenant {args.tenant} (shown only this once; store it now):")
    print(f"  {key}")
    print("Add this entry to API_KEYS (comma-separated) or as a line of API_KEYS_FILE:")
    print(f"  {line}")
    return 0
