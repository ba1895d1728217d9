"""The ``consensus-engine`` command: its arguments, and the one place failures become exits.

The commands themselves live in ``service_commands.py`` (this machine's services) and
``run_commands.py`` (a running API's client); each imports what it needs when it runs, so
``--help`` stays fast and a missing optional service never breaks an unrelated command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from consensus_engine import run_commands, service_commands
from consensus_engine.client import ClientError

Handler = Callable[[argparse.Namespace], int]


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser that can add its arguments only when that subcommand is used.

    The offline LLM's and the embedded Pub/Sub server's options come from modules that
    import the OpenAI SDK or gRPC (most of a second); the API client commands should not
    pay for that on every call.
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
    from consensus_engine.devtools.offline_llm import add_cli_arguments

    return add_cli_arguments


def _pubsub_server_arguments() -> Callable[[Any], None]:
    from consensus_engine.devtools.pubsub_server import add_cli_arguments

    return add_cli_arguments


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


class _PersonaModels(argparse.Action):
    """``--persona-model ID=MODEL``, repeatable, gathered into one ``{id: model}`` mapping.

    Naming one persona twice is refused rather than letting the last one win silently."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        persona_id, sep, model = str(values).partition("=")
        persona_id, model = persona_id.strip(), model.strip()
        if not sep or not persona_id or not model:
            parser.error(f"{option_string}: expected ID=MODEL, got {values!r}")
        chosen: dict[str, str] = dict(getattr(namespace, self.dest, None) or {})
        if persona_id in chosen:
            parser.error(f"{option_string}: persona {persona_id!r} is named twice")
        chosen[persona_id] = model
        setattr(namespace, self.dest, chosen)


def _add_council_arguments(submit: argparse.ArgumentParser) -> None:
    """How the run's panel deliberates; each is sent only when given, so the deployment's
    defaults (``REVIEW_ROUNDS``, ``CHAIR_MODEL``) apply otherwise."""
    submit.add_argument(
        "--persona-model",
        dest="persona_models",
        action=_PersonaModels,
        metavar="ID=MODEL",
        default=None,
        help="the model that writes one persona's review (repeatable; catalogued models only)",
    )
    submit.add_argument(
        "--rounds",
        dest="review_rounds",
        type=int,
        choices=[1, 2],
        default=None,
        help="2: each persona reads the others' first reviews, then writes its final one",
    )
    submit.add_argument(
        "--chair",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a chair model writes a synthesis under the decision (default: on with CHAIR_MODEL)",
    )
    submit.add_argument(
        "--chair-model",
        metavar="MODEL",
        default=None,
        help="the chair's model (turns the chair on)",
    )


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
    _add_council_arguments(submit)
    submit.set_defaults(handler=run_commands.submit)

    runs = commands.add_parser("runs", help="list runs or show one")
    runs_commands = runs.add_subparsers(dest="runs_command", required=True, metavar="COMMAND")
    listing = runs_commands.add_parser("list", parents=[shared, output], help="recent runs")
    listing.add_argument(
        "--status", choices=["queued", "running", "completed", "failed", "cancelled"]
    )
    listing.add_argument("--limit", type=int, default=None, help="at most this many runs")
    listing.add_argument("--cursor", default=None, help="the next page, from a previous list")
    listing.set_defaults(handler=run_commands.list_runs)
    show = runs_commands.add_parser("show", parents=[shared, output], help="one run in full")
    show.add_argument("run_id", metavar="ID")
    show.set_defaults(handler=run_commands.show_run)

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
    revise.set_defaults(handler=run_commands.revise)

    retry = commands.add_parser(
        "retry",
        parents=[shared, output, waiting],
        help="re-run what did not complete: a failed run's steps, or a completed run's chair",
    )
    retry.add_argument("run_id", metavar="ID")
    retry.set_defaults(handler=run_commands.retry)

    diff = commands.add_parser("diff", parents=[shared, output], help="compare two runs")
    diff.add_argument("run_id", metavar="A")
    diff.add_argument("other_id", metavar="B")
    diff.set_defaults(handler=run_commands.diff_runs)

    usage = commands.add_parser(
        "usage", parents=[shared, output], help="your LLM spend by day and model, and budget left"
    )
    usage.add_argument("--days", type=int, default=30, help="UTC days back (1-366, default 30)")
    usage.set_defaults(handler=run_commands.usage)

    api = commands.add_parser("api", help="serve the HTTP API (uvicorn)")
    api.add_argument("--host", default=None, help="default: API_HOST")
    api.add_argument("--port", type=int, default=None, help="default: API_PORT")
    api.set_defaults(handler=service_commands.api)

    api_key = commands.add_parser("api-key", help="manage API keys")
    api_key_commands = api_key.add_subparsers(
        dest="api_key_command", required=True, metavar="COMMAND"
    )
    new = api_key_commands.add_parser(
        "new", help="make a key for TENANT: prints it once, and the entry for API_KEYS"
    )
    new.add_argument("tenant", metavar="TENANT")
    new.set_defaults(handler=service_commands.new_api_key)


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
    fake.set_defaults(handler=service_commands.fake_llm)

    demo = commands.add_parser("demo", help="run one sample idea end to end")
    demo.add_argument("--idea", default=None, help="the idea to review (a sample by default)")
    demo.add_argument(
        "--serve",
        action="store_true",
        help="then keep it running with the API and the web app, and print the run's page",
    )
    demo.set_defaults(handler=service_commands.demo)

    pubsub = commands.add_parser("pubsub", help="manage the Pub/Sub resources, or serve Pub/Sub")
    pubsub_commands = pubsub.add_subparsers(dest="pubsub_command", required=True)
    setup = pubsub_commands.add_parser(
        "setup", help="create or update every topic and subscription (idempotent)"
    )
    setup.set_defaults(handler=service_commands.pubsub_setup)
    serve = pubsub_commands.add_parser(
        "serve",
        help="serve the embedded Pub/Sub-compatible server (in memory) for local development",
        lazy_arguments=_pubsub_server_arguments,
    )
    serve.set_defaults(handler=service_commands.pubsub_serve)

    sweep = commands.add_parser(
        "sweep", help="recover stuck runs once (the worker also does this periodically)"
    )
    sweep.set_defaults(handler=service_commands.sweep)

    migrate = commands.add_parser("migrate", help="upgrade the database schema to the latest")
    migrate.set_defaults(handler=service_commands.migrate)

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
