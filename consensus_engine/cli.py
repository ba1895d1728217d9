"""The ``consensus-engine`` command: its arguments, and the one place failures become exits.

The commands themselves live in ``service_commands.py`` (this machine's services) and
``run_commands.py`` (a running API's client); each imports what it needs when it runs, so
``--help`` stays fast and a missing optional service never breaks an unrelated command.

Exit statuses are :class:`consensus_engine.client.ExitCode`. With ``--json`` every failure,
a bad argument included, is one JSON object on stderr (``ClientError.as_json``), never a
traceback; stdout carries only the command's result.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from consensus_engine import run_commands, service_commands, webhook_commands
from consensus_engine.client import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    ClientError,
    ExitCode,
    UsageError,
)

Handler = Callable[[argparse.Namespace], int]

PACKAGE = "consensus-engine"
DECISIONS = ("approve", "revise", "reject")
RUN_STATUSES = ("queued", "running", "completed", "failed", "cancelled")
RUN_TYPES = ("initial", "revision")
RUN_SORTS = ("created", "score", "decision")
SORT_DIRECTIONS = ("desc", "asc")


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser that can add its arguments only when that subcommand is used.

    The offline LLM's and the embedded Pub/Sub server's options come from modules that
    import the OpenAI SDK or gRPC (most of a second); the API client commands should not
    pay for that on every call.
    """

    json_errors = False
    """Report a bad argument as ``--json`` reports every failure (see :class:`_JsonParser`)."""

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

    def error(self, message: str) -> NoReturn:
        if not self.json_errors:
            super().error(message)
        self.exit(_report(UsageError(f"{self.prog}: {message}"), as_json=True))


class _JsonParser(_CommandParser):
    """The parsers of a command line that asks for ``--json``: its usage errors are JSON."""

    json_errors = True


def _asks_for_json(argv: Sequence[str]) -> bool:
    """Whether ``--json`` is among the options, read before parsing so that a parse error
    can already answer in JSON (an idea after ``--`` that reads ``--json`` does not count)."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in options


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "unknown (not installed)"


class _Version(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "print the version and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        print(f"{PACKAGE} {package_version()}")
        parser.exit()


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


def _decision_list(text: str) -> tuple[str, ...]:
    """``--fail-on reject,revise``: decisions, comma-separated, each one known."""
    chosen = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [name for name in chosen if name not in DECISIONS]
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(
            f"expected decisions out of {', '.join(DECISIONS)}, comma-separated; got {text!r}"
        )
    return chosen


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return seconds


_HEADER_TEXT = re.compile(
    rf"[\x21-\x7e](?:[\x20-\x7e]{{0,{IDEMPOTENCY_KEY_MAX_LENGTH - 2}}}[\x21-\x7e])?"
)


def _idempotency_key(text: str) -> str:
    """What an HTTP header can carry and the API keeps: printable ASCII, 1-200 characters."""
    if not _HEADER_TEXT.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected 1-{IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters, "
            "without leading or trailing spaces"
        )
    return text


def _add_gate_arguments(waiting: argparse.ArgumentParser) -> None:
    """``--wait``, and what turns waiting into a CI gate: ``--fail-on`` and ``--timeout``."""
    waiting.add_argument(
        "--wait", action="store_true", help="show progress until the decision, then a summary"
    )
    waiting.add_argument(
        "--fail-on",
        type=_decision_list,
        metavar="DECISIONS",
        default=None,
        help="exit 3 when the decision is one of these (e.g. reject,revise); implies --wait "
        "and prints a short summary for a CI log",
    )
    waiting.add_argument(
        "--timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        default=None,
        help="stop waiting after this long and exit 4 (the run goes on); default: no limit",
    )


def _add_idempotency_arguments(submit: argparse.ArgumentParser) -> None:
    keys = submit.add_mutually_exclusive_group()
    keys.add_argument(
        "--idempotency-key",
        type=_idempotency_key,
        metavar="KEY",
        default=None,
        help="send this Idempotency-Key (default: a digest of the request, so the same "
        "submit finds the same run); in CI, e.g. the CI run's id",
    )
    keys.add_argument(
        "--no-idempotency-key",
        dest="idempotency",
        action="store_false",
        help="send none: every submit makes a new run",
    )


def _add_list_arguments(listing: argparse.ArgumentParser) -> None:
    """Every filter of ``GET /v1/runs``, named as the API names them."""
    listing.add_argument("--status", choices=RUN_STATUSES)
    listing.add_argument("--run-type", choices=RUN_TYPES, default=None)
    listing.add_argument(
        "--parent",
        "--parent-run-id",
        dest="parent_run_id",
        metavar="ID",
        default=None,
        help="revisions of this run",
    )
    listing.add_argument("--decision", choices=DECISIONS, default=None)
    listing.add_argument(
        "--min-confidence",
        type=float,
        metavar="SCORE",
        default=None,
        help="weighted score at least this (0-1); runs without a score are left out",
    )
    listing.add_argument(
        "--created-after",
        metavar="WHEN",
        default=None,
        help="inclusive; ISO 8601 with a time zone, e.g. 2025-06-01T00:00:00Z",
    )
    listing.add_argument(
        "--created-before", metavar="WHEN", default=None, help="inclusive; like --created-after"
    )
    listing.add_argument(
        "--q",
        "--search",
        dest="q",
        metavar="TEXT",
        default=None,
        help="text to find in the idea or the proposal",
    )
    listing.add_argument(
        "--sort", choices=RUN_SORTS, default=None, help="what orders the runs (default: created)"
    )
    listing.add_argument(
        "--direction",
        choices=SORT_DIRECTIONS,
        default=None,
        help="desc: newest, highest, approve first (default); asc: the reverse",
    )
    listing.add_argument("--limit", type=int, default=None, help="at most this many runs (1-100)")
    listing.add_argument(
        "--cursor", default=None, help="the next page, from a previous list with the same sort"
    )


def _add_client_commands(
    commands: argparse._SubParsersAction[_CommandParser],
) -> None:
    shared = _client_options(suppress=True)
    output = _CommandParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print JSON instead of text")
    waiting = _CommandParser(add_help=False)
    _add_gate_arguments(waiting)

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
    _add_idempotency_arguments(submit)
    submit.set_defaults(handler=run_commands.submit)

    runs = commands.add_parser("runs", help="list runs or show one")
    runs_commands = runs.add_subparsers(dest="runs_command", required=True, metavar="COMMAND")
    listing = runs_commands.add_parser(
        "list", parents=[shared, output], help="runs, newest first, filtered"
    )
    _add_list_arguments(listing)
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

    cancel = commands.add_parser(
        "cancel", parents=[shared, output], help="cancel a queued or running run"
    )
    cancel.add_argument("run_id", metavar="ID")
    cancel.set_defaults(handler=run_commands.cancel)

    diff = commands.add_parser("diff", parents=[shared, output], help="compare two runs")
    diff.add_argument("run_id", metavar="A")
    diff.add_argument("other_id", metavar="B")
    diff.set_defaults(handler=run_commands.diff_runs)

    usage = commands.add_parser(
        "usage", parents=[shared, output], help="your LLM spend by day and model, and budget left"
    )
    usage.add_argument("--days", type=int, default=30, help="UTC days back (1-366, default 30)")
    usage.set_defaults(handler=run_commands.usage)

    mcp = commands.add_parser(
        "mcp", parents=[shared], help="serve an MCP server (tools for coding agents) over the API"
    )
    mcp.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    mcp.add_argument(
        "--host", default="127.0.0.1", help="with --transport http (default: %(default)s)"
    )
    mcp.add_argument(
        "--port", type=int, default=8765, help="with --transport http (default: %(default)s)"
    )
    mcp.set_defaults(handler=run_commands.mcp)
    _add_webhook_commands(commands, shared, output)

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


def _add_webhook_commands(
    commands: Any, shared: argparse.ArgumentParser, output: argparse.ArgumentParser
) -> None:
    """``webhooks create|list|update|delete|rotate-secret|deliveries|redeliver``."""
    webhooks = commands.add_parser("webhooks", help="your webhook endpoints and deliveries")
    verbs = webhooks.add_subparsers(dest="webhooks_command", required=True, metavar="COMMAND")
    events_help = "comma-separated: run.completed, run.failed, run.cancelled"

    create = verbs.add_parser("create", parents=[shared, output], help="register an endpoint")
    create.add_argument("url")
    create.add_argument("--events", default="run.completed,run.failed", help=events_help)
    create.add_argument("--description", default=None)
    create.set_defaults(handler=webhook_commands.create)

    listing = verbs.add_parser("list", parents=[shared, output], help="your endpoints")
    listing.set_defaults(handler=webhook_commands.list_endpoints)

    update = verbs.add_parser("update", parents=[shared, output], help="change an endpoint")
    update.add_argument("endpoint_id", metavar="ID")
    update.add_argument("--url", default=None)
    update.add_argument("--events", default=None, help=events_help)
    update.add_argument("--enable", dest="enabled", action="store_const", const=True)
    update.add_argument("--disable", dest="enabled", action="store_const", const=False)
    update.set_defaults(handler=webhook_commands.update)

    for name, handler, what in (
        ("delete", webhook_commands.delete, "delete an endpoint and its deliveries"),
        ("rotate-secret", webhook_commands.rotate, "replace the signing secret (shown once)"),
        ("deliveries", webhook_commands.deliveries, "recent deliveries and their attempts"),
    ):
        verb = verbs.add_parser(name, parents=[shared, output], help=what)
        verb.add_argument("endpoint_id", metavar="ID")
        verb.set_defaults(handler=handler)

    again = verbs.add_parser("redeliver", parents=[shared, output], help="deliver one again")
    again.add_argument("endpoint_id", metavar="ID")
    again.add_argument("delivery_id", metavar="DELIVERY")
    again.set_defaults(handler=webhook_commands.redeliver)


def build_parser(*, json_errors: bool = False) -> argparse.ArgumentParser:
    """The whole command line; with ``json_errors`` a bad argument is reported as JSON."""
    parser_class = _JsonParser if json_errors else _CommandParser
    parser = parser_class(
        prog="consensus-engine",
        description="Turn a rough idea into a reviewed decision.",
        parents=[_client_options(suppress=False)],
    )
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=parser_class
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
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(json_errors=_asks_for_json(arguments)).parse_args(arguments)
    handler: Handler = args.handler
    as_json = bool(getattr(args, "json", False))
    try:
        return int(handler(args))
    except ClientError as error:
        return _report(error, as_json)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except Exception as error:
        known = _user_error(error)
        if known is None:
            if not as_json:
                raise  # a bug: its traceback helps more than a line
            known = ClientError(
                f"unexpected {type(error).__name__}: {error}", code="INTERNAL_ERROR"
            )
        return _report(known, as_json)


def _report(error: ClientError, as_json: bool) -> int:
    """One line on stderr, or with ``--json`` one JSON object; the exit status."""
    if as_json:
        print(json.dumps(error.as_json()), file=sys.stderr)
    else:
        print(f"consensus-engine: {error}", file=sys.stderr)
    return int(error.exit_code)


def _user_error(error: Exception) -> ClientError | None:
    """A failure the user can act on, as the client's errors are; ``None`` for anything
    else (a bug). Imported here, when something failed, so that commands which never touch
    these modules do not load them."""
    from consensus_engine.domain.inputs import InputError
    from consensus_engine.domain.personas import PersonaConfigError
    from consensus_engine.llm.errors import LLMError
    from consensus_engine.settings import SettingsError

    if isinstance(error, SettingsError):
        return UsageError(str(error), code="INVALID_CONFIGURATION")
    if isinstance(error, InputError):
        return UsageError(str(error), code="INVALID_INPUT")
    if isinstance(error, PersonaConfigError):
        return UsageError(str(error), code="INVALID_PERSONAS")
    if isinstance(error, LLMError):
        return ClientError(f"LLM call failed: {error}", code="LLM_ERROR")
    return None


if __name__ == "__main__":
    sys.exit(main())
