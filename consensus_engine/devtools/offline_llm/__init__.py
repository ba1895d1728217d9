"""The offline, OpenAI-compatible LLM server: synthetic answers for the demo, tests and benchmarks.

It lives apart from :mod:`consensus_engine.llm` (the only code that talks to a real LLM),
so the worker never loads it or the web stack it needs.
"""

from consensus_engine.devtools.offline_llm.app import FAULTS, Fault, OfflineOptions, OptionFields
from consensus_engine.devtools.offline_llm.server import (
    OfflineLLMServer,
    add_cli_arguments,
    main,
    serve,
    serve_from_args,
)

__all__ = [
    "FAULTS",
    "Fault",
    "OfflineLLMServer",
    "OfflineOptions",
    "OptionFields",
    "add_cli_arguments",
    "main",
    "serve",
    "serve_from_args",
]
