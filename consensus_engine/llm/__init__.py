"""The only place that talks to an LLM.

``LLMClient.generate`` returns a validated pydantic value plus a record of
every HTTP attempt (tokens, cost, latency, outcome); failures raise
:class:`LLMError` subclasses that say whether a retry can help. The offline
stand-in server for the demo, tests and benchmarks is dev tooling, not a client:
it lives in :mod:`consensus_engine.devtools.offline_llm`.
"""

from consensus_engine.llm.client import LLMClient
from consensus_engine.llm.errors import (
    LLMAuthError,
    LLMBadRequestError,
    LLMCapacityWait,
    LLMConfigurationError,
    LLMConnectionError,
    LLMError,
    LLMInvalidOutputError,
    LLMPermanentError,
    LLMQuotaError,
    LLMRateLimitedError,
    LLMServerError,
    LLMTimeoutError,
    LLMTransientError,
)
from consensus_engine.llm.pricing import PriceTable, PricingError, cost_usd
from consensus_engine.llm.records import ApiMode, CallRecord, Generation, LlmCallOutcome, WireMode

__all__ = [
    "ApiMode",
    "CallRecord",
    "Generation",
    "LLMAuthError",
    "LLMBadRequestError",
    "LLMCapacityWait",
    "LLMClient",
    "LLMConfigurationError",
    "LLMConnectionError",
    "LLMError",
    "LLMInvalidOutputError",
    "LLMPermanentError",
    "LLMQuotaError",
    "LLMRateLimitedError",
    "LLMServerError",
    "LLMTimeoutError",
    "LLMTransientError",
    "LlmCallOutcome",
    "PriceTable",
    "PricingError",
    "WireMode",
    "cost_usd",
]
