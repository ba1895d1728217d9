"""The ``consensus-engine`` command: a thin layer that parses arguments and delegates.

Each subcommand imports what it needs when it runs, so ``--help`` stays fast and a
missing optional service never breaks an unrelated command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from consensus_engine.client import ClientError

if TYPE_CHECKING:
    from consensus_engine.client import ConsensusClient

Handler = Callable[[argparse.Namespace], int]


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser that can add its arguments only when that subcommand is used.

    The offline LLM's options come from a module that imports the OpenAI SDK (most of a
    second); the API client commands should not pay for that on every call.
    """

    def __init__(
        self,
        *args: Any,
        lazy_arguments: Callable[[], Callable[[Any], None]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._lazy_arguments = lazy_arguments

    def _add_lazy_arguments(self) -> None:
        if self._lazy_arguments is not None:
            add_arguments, self._lazy_arguments = self._lazy_arguments(), None
            add_arguments(self)

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        self._add_lazy_arguments()
        return super().parse_known_args(*args, **kwargs)

    def format_help(self) -> str:
        self._add_lazy_arguments()
        return super().format_help()


def _offline_arguments() -> Callable[[Any], None]:
    from consensus_engine.llm.offline import add_cli_arguments

    return add_cli_arguments


def _fake_llm(args: argparse.Namespace) -> int:
    from consensus_engine.llm.offline import serve_from_args

    serve_from_args(args)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from consensus_engine.demo import DemoError, run_demo
    from consensus_engine.local.worker import WorkerStartError

    try:
        return run_demo(idea=args.idea)
    except (DemoError, WorkerStartError) as error:
        print(f"consensus-engine demo: {error}", file=sys.stderr)
        return 1


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


# -- the API and its client ----------------------------------------------------------------


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from consensus_engine.api.auth import KeyConfigError, KeyRing
    from consensus_engine.observability.logs import configure_logging
    from consensus_engine.settings import get_settings

    settings = get_settings()
    try:
        KeyRing.from_settings(settings)  # a bad key entry fails here, in one line
    except KeyConfigError as error:
        print(f"consensus-engine: {error}", file=sys.stderr)
        return 2
    configure_logging(json_lines=settings.is_production, level=settings.effective_log_level)
    uvicorn.run(
        "consensus_engine.api.app:create_app",
        factory=True,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_config=None,
    )
    return 0


def _api_key_new(args: argparse.Namespace) -> int:
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


def _client(args: argparse.Namespace) -> ConsensusClient:
    """The client for ``--api-url`` / ``--api-key``, or ``API_URL`` / ``API_KEY``."""
    from consensus_engine.client import ConsensusClient

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


def _follow_and_report(client: ConsensusClient, accepted: Mapping[str, Any], as_json: bool) -> int:
    """Print each change of the run (not with ``--json``), then its outcome; 0 if completed."""
    from consensus_engine.terminal import render_progress, render_run

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
    return 0


def _accepted(
    client: ConsensusClient, accepted: Mapping[str, Any], args: argparse.Namespace
) -> int:
    from consensus_engine.terminal import render_accepted

    if not args.wait:
        if args.json:
            _print_json(accepted)
        else:
            print(render_accepted(accepted))
        return 0
    if not args.json:
        print(render_accepted(accepted), flush=True)
    return _follow_and_report(client, accepted, args.json)


def _submit(args: argparse.Namespace) -> int:
    from consensus_engine.client import read_context_file

    client = _client(args)
    context = read_context_file(args.context_file) if args.context_file else None
    accepted = client.submit(args.idea, extra_context=context, priority=args.priority)
    return _accepted(client, accepted, args)


def _revise(args: argparse.Namespace) -> int:
    from consensus_engine.client import read_text_file

    client = _client(args)
    edited = read_text_file(args.edit_file, "edit file") if args.edit_file else None
    rerun = None
    if args.rerun is not None:
        rerun = [name.strip() for name in args.rerun.split(",") if name.strip()]
    accepted = client.revise(
        args.run_id, edit_notes=args.notes, edited_proposal=edited, rerun_personas=rerun
    )
    return _accepted(client, accepted, args)


def _runs_list(args: argparse.Namespace) -> int:
    from consensus_engine.terminal import render_run_list

    listing = _client(args).list_runs(status=args.status, limit=args.limit, cursor=args.cursor)
    if args.json:
        _print_json(listing)
    else:
        print(render_run_list(listing))
    return 0


def _runs_show(args: argparse.Namespace) -> int:
    from consensus_engine.terminal import render_run

    detail = _client(args).get_run(args.run_id)
    if args.json:
        _print_json(detail)
    else:
        print(render_run(detail))
    return 0


def _diff(args: argparse.Namespace) -> int:
    from consensus_engine.terminal import render_diff

    diff = _client(args).diff(args.run_id, args.other_id)
    if args.json:
        _print_json(diff)
    else:
        print(render_diff(diff))
    return 0


def _client_options(*, suppress: bool) -> _CommandParser:
    """``--api-url`` / ``--api-key``, accepted before or after the subcommand."""
    default: Any = argparse.SUPPRESS if suppress else None
    options = _CommandParser(add_help=False)
    options.add_argument("--api-url", default=default, help="the API's base URL (default: API_URL)")
    options.add_argument(
        "--api-key",
        default=default,
        help="the API key (default: API_KEY; prefer the variable, flags show in `ps`)",
    )
    return options


def _add_client_commands(
    commands: argparse._SubParsersAction[_CommandParser],
) -> None:
    shared = _client_options(suppress=True)
    output = _CommandParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print JSON instead of text")
    waiting = _CommandParser(add_help=False)
    waiting.add_argument(
        "--wait", action="store_true", help="show progress until the decision, then a summary"
    )

    submit = commands.add_parser(
        "submit", parents=[shared, output, waiting], help="submit an idea for a full review"
    )
    submit.add_argument("idea", help="the idea, in a few sentences")
    submit.add_argument(
        "--context-file",
        metavar="FILE",
        help="background for the idea: text, or a JSON object in a .json file",
    )
    submit.add_argument("--priority", choices=["normal", "high"], default=None)
    submit.set_defaults(handler=_submit)

    runs = commands.add_parser("runs", help="list runs or show one")
    runs_commands = runs.add_subparsers(dest="runs_command", required=True, metavar="COMMAND")
    listing = runs_commands.add_parser("list", parents=[shared, output], help="recent runs")
    listing.add_argument(
        "--status", choices=["queued", "running", "completed", "failed", "cancelled"]
    )
    listing.add_argument("--limit", type=int, default=None, help="at most this many runs")
    listing.add_argument("--cursor", default=None, help="the next page, from a previous list")
    listing.set_defaults(handler=_runs_list)
    show = runs_commands.add_parser("show", parents=[shared, output], help="one run in full")
    show.add_argument("run_id", metavar="ID")
    show.set_defaults(handler=_runs_show)

    revise = commands.add_parser(
        "revise", parents=[shared, output, waiting], help="revise a completed run"
    )
    revise.add_argument("run_id", metavar="ID")
    revise.add_argument("--notes", help="what to change, for the model to apply")
    revise.add_argument(
        "--edit-file",
        metavar="FILE",
        help="direct edits: a JSON object of sections, or text replacing proposed_solution",
    )
    revise.add_argument(
        "--rerun",
        metavar="PERSONAS",
        help="comma-separated persona ids that review again (e.g. critic,architect)",
    )
    revise.set_defaults(handler=_revise)

    diff = commands.add_parser("diff", parents=[shared, output], help="compare two runs")
    diff.add_argument("run_id", metavar="A")
    diff.add_argument("other_id", metavar="B")
    diff.set_defaults(handler=_diff)

    api = commands.add_parser("api", help="serve the HTTP API (uvicorn)")
    api.add_argument("--host", default=None, help="default: API_HOST")
    api.add_argument("--port", type=int, default=None, help="default: API_PORT")
    api.set_defaults(handler=_api)

    api_key = commands.add_parser("api-key", help="manage API keys")
    api_key_commands = api_key.add_subparsers(
        dest="api_key_command", required=True, metavar="COMMAND"
    )
    new = api_key_commands.add_parser(
        "new", help="make a key for TENANT: prints it once, and the entry for API_KEYS"
    )
    new.add_argument("tenant", metavar="TENANT")
    new.set_defaults(handler=_api_key_new)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="consensus-engine",
        description="Turn a rough idea into a reviewed decision.",
        parents=[_client_options(suppress=False)],
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser
    )

    fake = commands.add_parser(
        "fake-llm",
        help="serve the offline OpenAI-compatible LLM on 127.0.0.1",
        lazy_arguments=_offline_arguments,
    )
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

    _add_client_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ClientError as error:
        print(f"consensus-engine: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        known = _user_error(error)
        if known is None:
            raise
        message, status = known
        print(f"consensus-engine: {message}", file=sys.stderr)
        return status


def _user_error(error: Exception) -> tuple[str, int] | None:
    """The one-line message and exit status of a failure the user can act on; ``None`` for
    anything else (a bug, which keeps its traceback). Imported here, when something failed,
    so that commands which never touch these modules do not load them."""
    from consensus_engine.domain.inputs import InputError
    from consensus_engine.domain.personas import PersonaConfigError
    from consensus_engine.llm.errors import LLMError
    from consensus_engine.settings import SettingsError

    if isinstance(error, SettingsError | InputError | PersonaConfigError):
        return str(error), 2
    if isinstance(error, LLMError):
        return f"LLM call failed: {error}", 1
    return None


if __name__ == "__main__":
    sys.exit(main())
