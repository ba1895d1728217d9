"""Structured output from an OpenAI-compatible API: one call in, one validated value out.

Policy that lives here: every call has a timeout, short enough that all the calls
of one ``generate`` and its waits for capacity fit in the time its caller has (a worker's
step limit), the SDK
does not retry on its own (the pipeline owns retries), the output is always re-validated with
pydantic, invalid output gets a bounded number of repair calls, and SDK
exceptions become :mod:`consensus_engine.llm.errors` with every attempt recorded.
Every request passes the client's gate first (:mod:`consensus_engine.llm.gate`: the
shared rate limits, the tenant's budget) and is settled with it when it ends; one
``generate`` waits at most ``capacity_wait_seconds`` in all at its gate.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

import httpx2
import openai
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ValidationError

from consensus_engine.llm import wire
from consensus_engine.llm.catalogue import ModelCatalogue
from consensus_engine.llm.errors import (
    LLMAuthError,
    LLMBadRequestError,
    LLMConfigurationError,
    LLMConnectionError,
    LLMError,
    LLMInvalidOutputError,
    LLMPermanentError,
    LLMQuotaError,
    LLMRateLimitedError,
    LLMServerError,
    LLMTimeoutError,
)
from consensus_engine.llm.gate import Admission, CallGate, CallIntent, OpenGate, estimate_tokens
from consensus_engine.llm.pricing import Prices, PriceTable
from consensus_engine.llm.provider_limits import read_limits, retry_after
from consensus_engine.llm.providers import DEFAULT_PROVIDER, Provider, providers, routes
from consensus_engine.llm.records import ApiMode, CallRecord, Generation, LlmCallOutcome, WireMode
from consensus_engine.observability.tracing import tracer

if TYPE_CHECKING:
    from consensus_engine.settings import Settings

T = TypeVar("T", bound=BaseModel)

OFFICIAL_BASE_URL = "https://api.openai.com/v1"
_KEYLESS_PLACEHOLDER = "unused-by-local-server"
_SCHEMA_REJECTION_HINTS = ("response_format", "json_schema", "json_object")
_KEY_PATTERN = re.compile(r"sk-[A-Za-z0-9_\-*.]{4,}")
_BAD_OUTPUT_ECHO_CHARS = 4000

logger = logging.getLogger(__name__)


class LLMClient:
    """Thread-safe: one instance (one connection pool) serves every worker thread.

    One instance talks to one provider; ``routes`` hands the models other providers serve
    to their own instances, so callers hold one client whatever the model.
    """

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None = None,
        mode: ApiMode = "auto",
        timeout_seconds: float = 120.0,
        sdk_max_retries: int = 0,
        repair_attempts: int = 1,
        max_output_tokens: int = 4096,
        prices: Prices | None = None,
        http_client: httpx2.Client | None = None,
        gate: CallGate | None = None,
        capacity_wait_seconds: float = 0.0,
        provider: str = DEFAULT_PROVIDER,
        routes: Mapping[str, LLMClient] | None = None,
    ) -> None:
        if not api_key and base_url is None:
            raise LLMConfigurationError(
                "OPENAI_API_KEY is required unless OPENAI_BASE_URL names a compatible server"
            )
        self.provider = provider
        self._routes = dict(routes or {})
        self._mode: ApiMode = mode
        self._official = base_url is None
        self._api_key = api_key or _KEYLESS_PLACEHOLDER
        self._timeout_seconds = timeout_seconds
        self._repair_attempts = repair_attempts
        self._max_output_tokens = max_output_tokens
        self._prices = prices or PriceTable()
        self._gate: CallGate = gate or OpenGate()
        self._capacity_wait_seconds = capacity_wait_seconds
        self._fallback_lock = threading.Lock()
        self._json_object_fallback = False
        # base_url is always explicit so the SDK never picks one up from the environment.
        self._openai = openai.OpenAI(
            api_key=self._api_key,
            base_url=base_url or OFFICIAL_BASE_URL,
            timeout=timeout_seconds,
            max_retries=sdk_max_retries,
            http_client=http_client,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        within_seconds: float | None = None,
        http_client: httpx2.Client | None = None,
        gate: CallGate | None = None,
    ) -> LLMClient:
        """Raises :class:`LLMConfigurationError` or ``CatalogueError`` for unusable settings.
        Calls are priced with the model catalogue.

        ``within_seconds``: the time one ``generate`` may take in all. Its waits at the gate
        take up to ``LLM_CAPACITY_WAIT_SECONDS`` of it (half of it at most), and each
        call's timeout is ``LLM_TIMEOUT_SECONDS`` or shorter, so that every call it may
        make fits in the rest.
        """
        catalogue = ModelCatalogue.from_settings(settings)
        configured = providers(settings)
        capacity_wait = settings.llm_capacity_wait_seconds
        if within_seconds is not None:
            capacity_wait = min(capacity_wait, within_seconds / 2)

        def client(provider: Provider, served: Mapping[str, LLMClient] | None) -> LLMClient:
            timeout = provider.timeout_seconds
            if within_seconds is not None:
                calls = calls_per_generation(settings, provider)
                timeout = min(timeout, (within_seconds - capacity_wait) / calls)
            return cls(
                api_key=provider.api_key,
                base_url=provider.base_url,
                mode=provider.api_mode,
                timeout_seconds=timeout,
                sdk_max_retries=settings.llm_sdk_max_retries,
                repair_attempts=settings.llm_repair_attempts,
                max_output_tokens=settings.llm_max_output_tokens,
                prices=catalogue,
                http_client=http_client,
                gate=gate,
                capacity_wait_seconds=capacity_wait,
                provider=provider.name,
                routes=served,
            )

        served_by = routes(catalogue, configured)
        others = {
            name: client(provider, None)
            for name, provider in configured.items()
            if name != DEFAULT_PROVIDER and name in served_by.values()
        }
        served = {model: others[name] for model, name in served_by.items() if name in others}
        return client(configured[DEFAULT_PROVIDER], served)

    @property
    def timeout_seconds(self) -> float:
        """Each call's timeout."""
        return self._timeout_seconds

    @property
    def capacity_wait_seconds(self) -> float:
        """The longest one ``generate`` waits at its gate for room, in all."""
        return self._capacity_wait_seconds

    @property
    def mode(self) -> ApiMode:
        """The configured mode."""
        return self._mode

    @property
    def wire_mode(self) -> WireMode:
        """The mode the next call will use (``auto`` resolved, fallback included)."""
        if self._mode != "auto":
            return self._mode
        if self._official:
            return "responses"
        with self._fallback_lock:
            return "chat_json_object" if self._json_object_fallback else "chat"

    def provider_of(self, model: str) -> str:
        """The provider ``model``'s calls go to."""
        routed = self._routes.get(model)
        return self.provider if routed is None else routed.provider

    def generate(
        self,
        schema: type[T],
        *,
        system: str,
        user: str,
        model: str,
        temperature: float | None,
        step: str,
        tenant: str | None = None,
    ) -> Generation[T]:
        """Ask for one ``schema`` instance; raise :class:`LLMError` with the calls made.

        Every request first passes the client's gate (an ``LLMError`` when it refuses:
        ``LLMCapacityWait`` when it has no room in the time left to wait; that request was
        not sent) and is settled with it afterwards.
        """
        routed = self._routes.get(model)
        if routed is not None:
            return routed.generate(
                schema,
                system=system,
                user=user,
                model=model,
                temperature=temperature,
                step=step,
                tenant=tenant,
            )
        log = _CallLog(step, model, self.provider, self._prices)
        turns: list[wire.Turn] = [("user", user)]
        repairs_left = self._repair_attempts
        patience = self._capacity_wait_seconds
        while True:
            mode = self.wire_mode
            request = wire.Request(model, system, turns, temperature, self._max_output_tokens)
            call_id = uuid.uuid4()
            waiting = time.monotonic()
            admission = self._admit(schema, request, tenant, log, call_id, patience)
            patience = max(0.0, patience - (time.monotonic() - waiting))
            log.call_id = call_id
            started = time.perf_counter()
            try:
                reply = self._send(mode, schema, request, admission)
            except openai.OpenAIError as exc:
                latency = _elapsed_ms(started)
                if self._falls_back(mode, exc):
                    log.add(
                        mode,
                        LlmCallOutcome.BAD_REQUEST,
                        latency,
                        error_code="llm_bad_request",
                        exc=exc,
                    )
                    continue
                error = self._to_error(exc, mode)
                log.add(mode, error.outcome, latency, error_code=error.code, exc=exc)
                error.calls = log.calls
                raise error from exc
            latency = _elapsed_ms(started)
            value, problem = _validate(schema, reply)
            if value is not None:
                outcome = LlmCallOutcome.REPAIRED if len(turns) > 1 else LlmCallOutcome.SUCCESS
                log.add(mode, outcome, latency, reply)
                return Generation(value=value, calls=log.calls, mode=mode)
            log.add(
                mode,
                LlmCallOutcome.INVALID_OUTPUT,
                latency,
                reply,
                error_code=LLMInvalidOutputError.code,
            )
            if repairs_left == 0:
                raise LLMInvalidOutputError(
                    f"The model's answer did not match {schema.__name__} after "
                    f"{len(turns) // 2 + 1} attempt(s): {problem}",
                    calls=log.calls,
                )
            repairs_left -= 1
            turns = [("user", user), *_repair_turns(reply, problem)]

    def close(self) -> None:
        for routed in set(self._routes.values()):
            routed.close()
        self._openai.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _admit(
        self,
        schema: type[BaseModel],
        request: wire.Request,
        tenant: str | None,
        log: _CallLog,
        call_id: uuid.UUID,
        patience: float,
    ) -> Admission:
        """Pass the gate with an estimate of the request's tokens: the prompt and schema's
        size, and the output cap."""
        prompt = request.system + "".join(text for _, text in request.turns)
        schema_text = json.dumps(wire.strict_schema(schema))
        intent = CallIntent(
            model=request.model,
            tenant=tenant,
            input_tokens=estimate_tokens(prompt + schema_text),
            max_output_tokens=request.max_output_tokens,
            patience=patience,
            call_id=call_id,
        )
        try:
            return self._gate.admit(intent)
        except LLMError as refused:
            refused.calls = log.calls
            raise

    def _send(
        self, mode: WireMode, schema: type[BaseModel], request: wire.Request, admission: Admission
    ) -> wire.Reply:
        """One request, in a span of its own, settled with the gate however it ends."""
        with tracer().start_as_current_span(
            f"chat {request.model}",
            kind=SpanKind.CLIENT,
            attributes=_span_attributes(mode, request),
        ) as span:
            try:
                reply = wire.send(self._openai, mode, schema, request, official=self._official)
            except openai.APIStatusError as exc:
                span.set_attribute("http.response.status_code", exc.status_code)
                admission.settle(0, 0, read_limits(exc.response.headers))
                raise
            except BaseException:
                admission.settle(0, 0)
                raise
            span.set_attributes(
                {
                    "gen_ai.usage.input_tokens": reply.input_tokens,
                    "gen_ai.usage.output_tokens": reply.output_tokens,
                }
            )
            admission.settle(reply.input_tokens, reply.output_tokens, reply.limits)
            return reply

    def _falls_back(self, mode: WireMode, exc: openai.OpenAIError) -> bool:
        """In auto mode, remember that this server cannot do ``json_schema`` and switch."""
        if self._mode != "auto" or mode != "chat" or not _rejects_json_schema(exc):
            return False
        with self._fallback_lock:
            if not self._json_object_fallback:
                logger.warning("LLM server rejects json_schema output; using json_object mode")
            self._json_object_fallback = True
        return True

    def _to_error(self, exc: openai.OpenAIError, mode: WireMode) -> LLMError:
        """Map an SDK exception to our taxonomy with a message safe to show users, naming
        the provider: with several, the message says which one failed."""
        who = f"LLM provider {self.provider}"
        if isinstance(exc, openai.APITimeoutError):
            return LLMTimeoutError(f"The call to {who} timed out after {self._timeout_seconds:g}s.")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__
            why = f" ({self._redact(str(cause))})" if cause is not None and str(cause) else ""
            return LLMConnectionError(f"Could not connect to {who}{why}.")
        if not isinstance(exc, openai.APIStatusError):
            return LLMPermanentError(f"The answer of {who} could not be read.")
        status = exc.status_code
        if isinstance(exc, openai.RateLimitError):
            if exc.code == "insufficient_quota":
                return LLMQuotaError(f"The account at {who} has run out of quota (HTTP 429).")
            return LLMRateLimitedError(
                f"{who} is rate-limiting requests (HTTP 429).",
                retry_after=retry_after(exc.response.headers),
            )
        if status in (401, 403):
            return LLMAuthError(f"{who} rejected the credentials (HTTP {status}).")
        if status == 408:
            return LLMTimeoutError(f"{who} timed out the request (HTTP 408).")
        if status >= 500 and mode != "chat_json_object" and _rejects_json_schema(exc):
            return LLMBadRequestError(
                f"{who} does not support json_schema output (HTTP {status}); "
                "set LLM_API_MODE to chat_json_object or auto."
            )
        if status == 409 or status >= 500:
            return LLMServerError(f"{who} failed (HTTP {status}); try again later.")
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = body.get("message")
        reason = f": {self._redact(detail)}" if isinstance(detail, str) and detail else "."
        return LLMBadRequestError(f"{who} rejected the request (HTTP {status}){reason}")

    def _redact(self, text: str) -> str:
        if len(self._api_key) >= 8:  # shorter "keys" are test values; replacing them mangles text
            text = text.replace(self._api_key, "***")
        return _clip(_KEY_PATTERN.sub("sk-***", text), 300)


def calls_per_generation(settings: Settings, provider: Provider) -> int:
    """The most calls one ``generate`` asking ``provider`` makes: the first and each repair,
    each tried again by the SDK, plus the one call that finds a server cannot do
    ``json_schema``."""
    fallback = 1 if provider.api_mode == "auto" and provider.base_url else 0
    return (1 + settings.llm_repair_attempts) * (1 + settings.llm_sdk_max_retries) + fallback


@dataclass(slots=True)
class _CallLog:
    """The attempts of one ``generate`` call, priced as they are recorded."""

    step: str
    model: str
    provider: str
    prices: Prices
    calls: list[CallRecord] = field(default_factory=list)
    call_id: uuid.UUID | None = None
    """The id of the request in flight, which its record takes."""

    def add(
        self,
        mode: WireMode,
        outcome: LlmCallOutcome,
        latency_ms: float,
        reply: wire.Reply | None = None,
        *,
        error_code: str | None = None,
        exc: openai.OpenAIError | None = None,
    ) -> None:
        input_tokens = reply.input_tokens if reply else 0
        output_tokens = reply.output_tokens if reply else 0
        cost = self.prices.cost(self.model, input_tokens, output_tokens)
        if reply is not None:
            request_id = reply.request_id
        elif isinstance(exc, openai.APIStatusError):
            request_id = exc.request_id
        else:
            request_id = None
        self.calls.append(
            CallRecord(
                step=self.step,
                model=self.model,
                provider=self.provider,
                mode=mode,
                attempt=len(self.calls) + 1,
                outcome=outcome,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=cost.usd,
                priced=cost.priced,
                latency_ms=latency_ms,
                request_id=request_id,
                error_code=error_code,
                call_id=self.call_id,
            )
        )


def _span_attributes(mode: WireMode, request: wire.Request) -> dict[str, str]:
    """OpenTelemetry's GenAI names; never the prompt, which holds the user's idea."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": request.model,
        "consensus.llm.wire_mode": mode,
    }


def _validate(schema: type[T], reply: wire.Reply) -> tuple[T | None, str]:
    """The value, or a one-line reason it cannot be used."""
    if reply.refusal:
        return None, f"the model refused: {_clip(reply.refusal, 200)}"
    try:
        return schema.model_validate_json(reply.text), ""
    except ValidationError as error:
        if reply.truncated:
            return None, "the answer was cut off at the output token limit"
        return None, _summarise(error)


def _summarise(error: ValidationError, limit: int = 3) -> str:
    problems = error.errors(include_url=False)
    parts = []
    for problem in problems[:limit]:
        where = ".".join(str(part) for part in problem["loc"])
        parts.append(f"{where}: {problem['msg']}" if where else problem["msg"])
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return "; ".join(parts) + more


def _repair_turns(reply: wire.Reply, problem: str) -> list[wire.Turn]:
    """Show the model its last answer and what was wrong with it, then ask again."""
    advice = " Keep every field shorter so the whole object fits." if reply.truncated else ""
    instruction = (
        f"Your previous answer could not be used: {problem}.{advice} "
        "Answer again with exactly one JSON object that satisfies the required schema, "
        "and nothing else."
    )
    return [
        ("assistant", _clip(reply.text, _BAD_OUTPUT_ECHO_CHARS) or "(empty)"),
        ("user", instruction),
    ]


def _rejects_json_schema(exc: openai.OpenAIError) -> bool:
    """A compatible server saying it does not understand ``response_format: json_schema``."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code not in (400, 422, 500):
        return False
    text = f"{exc.message} {exc.body}".lower()
    return any(hint in text for hint in _SCHEMA_REJECTION_HINTS)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
