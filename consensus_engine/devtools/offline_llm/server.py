"""An offline, OpenAI-compatible LLM server for tests, benchmarks and the demo.

It answers ``/v1/chat/completions``, ``/v1/responses`` and ``/v1/models`` with
deterministic, schema-valid synthetic content, so code under test drives the
real openai SDK over real HTTP. Use :class:`OfflineLLMServer` in-process (a
background thread on a free port) or :func:`serve` from the command line. It
binds to loopback only: it has no authentication worth the name.

Admin endpoints (no API key needed): ``POST /_offline/faults`` with
``{"faults": [...]}`` queues faults for the next generation requests (FIFO),
``DELETE /_offline/faults`` drops them, ``GET /_offline/stats`` reports counts
by path and outcome, in-flight peaks, recent requests and (``rate``) the enforced
limits, the 429s they caused and the accepted requests per minute, and (``grammar``)
how many ``json_object`` schemas were honoured or refused, and ``POST
/_offline/reset`` clears faults and statistics.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any, Unpack

import uvicorn

from consensus_engine.devtools.loopback import LOOPBACK, BackgroundServer, http_request
from consensus_engine.devtools.offline_llm.app import (
    Fault,
    OfflineOptions,
    OptionFields,
    create_app,
)
from consensus_engine.devtools.offline_llm.grammar import LLAMA_CPP_MAX_REPETITION
from consensus_engine.hosts import is_loopback

DEFAULT_PORT = 8089
_GRACEFUL_SHUTDOWN_SECONDS = 1


class OfflineLLMServer(BackgroundServer):
    """The server on a background thread of this process; use it as a context manager."""

    def __init__(self, *, port: int = 0, **options: Unpack[OptionFields]) -> None:
        super().__init__(
            create_app(OfflineOptions(**options)),
            port=port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_SECONDS,
        )

    @property
    def base_url(self) -> str:
        """What to give the openai client (or ``OPENAI_BASE_URL``)."""
        return f"{self.url}/v1"

    def push_faults(self, *faults: Fault) -> None:
        """Make the next ``len(faults)`` generation requests fail in these ways, in order."""
        self._admin("POST", "faults", {"faults": list(faults)})

    def stats(self) -> dict[str, Any]:
        return self._admin("GET", "stats")

    def reset(self) -> None:
        """Drop queued faults and statistics (between tests)."""
        self._admin("POST", "reset", {})

    def _admin(self, method: str, name: str, body: object = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        reply = http_request(
            f"{self.url}/_offline/{name}", method=method, body=data, headers=headers
        )
        answer: dict[str, Any] = reply.json()
        return answer


def serve(host: str = LOOPBACK, port: int = DEFAULT_PORT, **options: Unpack[OptionFields]) -> None:
    """Run in the foreground until interrupted (the ``fake-llm`` command)."""
    if not is_loopback(host):
        raise ValueError(f"the offline LLM server only binds to loopback, not {host!r}")
    app = create_app(OfflineOptions(**options))
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_SECONDS,
    )


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options, for whichever CLI hosts the server."""
    parser.add_argument("--host", default=LOOPBACK, help="loopback address to bind")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay on every answer")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of 429/500")
    parser.add_argument(
        "--invalid-json-rate", type=float, default=0.0, help="share of malformed/truncated JSON"
    )
    parser.add_argument("--hang-rate", type=float, default=0.0, help="share that never answer")
    parser.add_argument("--hang-seconds", type=float, default=600.0)
    parser.add_argument(
        "--reject-json-schema",
        action="store_true",
        help="answer json_schema response formats with a 500, as llama.cpp does",
    )
    parser.add_argument("--no-responses", action="store_true", help="404 on /v1/responses")
    parser.add_argument("--api-key", default=None, help="require this bearer token")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rpm-limit", type=int, default=None, help="refuse (429) past this many requests a minute"
    )
    parser.add_argument(
        "--tpm-limit", type=int, default=None, help="refuse (429) past this many tokens a minute"
    )
    parser.add_argument(
        "--max-grammar-repetition",
        type=int,
        default=None,
        help="refuse (400) json_object schemas with a longer length/item bound or a pattern, "
        f"(llama.cpp: {LLAMA_CPP_MAX_REPETITION})",
    )


def serve_from_args(args: argparse.Namespace) -> None:
    serve(
        args.host,
        args.port,
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        invalid_json_rate=args.invalid_json_rate,
        hang_rate=args.hang_rate,
        hang_seconds=args.hang_seconds,
        reject_json_schema=args.reject_json_schema,
        no_responses=args.no_responses,
        api_key=args.api_key,
        seed=args.seed,
        rpm_limit=args.rpm_limit,
        tpm_limit=args.tpm_limit,
        max_grammar_repetition=args.max_grammar_repetition,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m consensus_engine.devtools.offline_llm",
        description="Offline OpenAI-compatible server with synthetic, schema-valid answers.",
    )
    add_cli_arguments(parser)
    serve_from_args(parser.parse_args(argv))
