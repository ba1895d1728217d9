"""The ``consensus-engine`` command: a thin layer that parses arguments and delegates.

Each subcommand imports what it needs when it runs, so ``--help`` stays fast and a
missing optional service never breaks an unrelated command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from consensus_engine.domain.inputs import InputError
from consensus_engine.domain.personas import PersonaConfigError
from consensus_engine.llm.errors import LLMError
from consensus_engine.settings import SettingsError

Handler = Callable[[argparse.Namespace], int]


def _fake_llm(args: argparse.Namespace) -> int:
    from consensus_engine.llm.offline import serve_from_args

    serve_from_args(args)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from consensus_engine.demo import run_demo

    return run_demo(idea=args.idea)


def _migrate(args: argparse.Namespace) -> int:
    from consensus_engine.db.migrations import upgrade_head

    upgrade_head()
    print("database schema is at head")
    return 0


def _pubsub_setup(args: argparse.Namespace) -> int:
    from google.api_core.exceptions import GoogleAPIError

    from consensus_engine.queues import build_pubsub_broker
    from consensus_engine.settings import get_settings

    broker = build_pubsub_broker(get_settings())
    try:
        for line in broker.provision():
            print(line)
    except GoogleAPIError as error:
        print(f"consensus-engine: Pub/Sub refused or did not answer: {error}", file=sys.stderr)
        return 1
    finally:
        broker.close()
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from consensus_engine.db.engine import create_engine_from_settings, session_factory
    from consensus_engine.settings import get_settings
    from consensus_engine.workers.broker import build_broker
    from consensus_engine.workers.dispatch import sweep_once

    settings = get_settings()
    broker = build_broker(settings)
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


def build_parser() -> argparse.ArgumentParser:
    from consensus_engine.llm.offline import add_cli_arguments as add_offline_arguments

    parser = argparse.ArgumentParser(
        prog="consensus-engine",
        description="Turn a rough idea into a reviewed decision.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fake = commands.add_parser(
        "fake-llm", help="serve the offline OpenAI-compatible LLM on 127.0.0.1"
    )
    add_offline_arguments(fake)
    fake.set_defaults(handler=_fake_llm)

    demo = commands.add_parser("demo", help="run one sample idea end to end")
    demo.add_argument("--idea", default=None, help="the idea to review (a sample by default)")
    demo.set_defaults(handler=_demo)

    pubsub = commands.add_parser("pubsub", help="manage the Pub/Sub resources")
    pubsub_commands = pubsub.add_subparsers(dest="pubsub_command", required=True)
    setup = pubsub_commands.add_parser(
        "setup", help="create or update every topic and subscription (idempotent)"
    )
    setup.set_defaults(handler=_pubsub_setup)

    sweep = commands.add_parser(
        "sweep", help="recover stuck runs once (the worker also does this periodically)"
    )
    sweep.set_defaults(handler=_sweep)

    migrate = commands.add_parser("migrate", help="upgrade the database schema to the latest")
    migrate.set_defaults(handler=_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (SettingsError, InputError, PersonaConfigError) as error:
        print(f"consensus-engine: {error}", file=sys.stderr)
        return 2
    except LLMError as error:
        print(f"consensus-engine: LLM call failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
