"""The offline server's ASGI app: OpenAI-shaped endpoints, fault injection and statistics.

Faults come from a FIFO queue scripted through ``POST /_offline/faults`` first,
then from the random rates in :class:`OfflineOptions`. With ``rpm_limit`` or
``tpm_limit`` the server enforces them like a provider (``limits.py``); with
``max_grammar_repetition`` it refuses the ``json_object`` schemas llama.cpp cannot compile
(``grammar.py``) and answers the others from that schema. Every handler runs on
the server's event loop, so the counters need no lock, and every wait is an
``asyncio`` sleep, so slow answers overlap instead of queueing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, get_args

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from consensus_engine.devtools.offline_llm import synthetic
from consensus_engine.devtools.offline_llm.grammar import GRAMMAR_ERROR, grammar_problem
from consensus_engine.devtools.offline_llm.limits import SlidingWindowLimits
from consensus_engine.devtools.offline_llm.wire import (
    Ask,
    chat_payload,
    estimate_tokens,
    parse_ask,
    responses_payload,
)

Fault = Literal["429", "500", "invalid_json", "truncated", "hang", "401"]
FAULTS: tuple[str, ...] = get_args(Fault)
_RECENT = 100


@dataclass(frozen=True, slots=True)
class OfflineOptions:
    """How the server misbehaves; rates are per request and must add up to at most 1."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    invalid_json_rate: float = 0.0
    hang_rate: float = 0.0
    hang_seconds: float = 600.0
    reject_json_schema: bool = False
    no_responses: bool = False
    api_key: str | None = None
    seed: int = 0
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_grammar_repetition: int | None = None
    """Refuse, as llama.cpp does, a ``json_object`` schema with a longer length or item
    bound or with a ``pattern`` (``grammar.LLAMA_CPP_MAX_REPETITION`` is llama.cpp's);
    ``None`` compiles anything."""

    def __post_init__(self) -> None:
        rates = (self.error_rate, self.invalid_json_rate, self.hang_rate)
        if any(not 0.0 <= rate <= 1.0 for rate in rates) or sum(rates) > 1.0:
            raise ValueError("fault rates must be between 0 and 1 and add up to at most 1")
        if self.latency_ms < 0 or self.hang_seconds <= 0:
            raise ValueError("latency_ms must be >= 0 and hang_seconds > 0")
        if any(limit is not None and limit < 1 for limit in (self.rpm_limit, self.tpm_limit)):
            raise ValueError("rpm_limit and tpm_limit must be at least 1")
        if self.max_grammar_repetition is not None and self.max_grammar_repetition < 1:
            raise ValueError("max_grammar_repetition must be at least 1")


class OptionFields(TypedDict, total=False):
    """:class:`OfflineOptions` as keyword arguments."""

    latency_ms: float
    error_rate: float
    invalid_json_rate: float
    hang_rate: float
    hang_seconds: float
    reject_json_schema: bool
    no_responses: bool
    api_key: str | None
    seed: int
    rpm_limit: int | None
    tpm_limit: int | None
    max_grammar_repetition: int | None


class _OfflineApp:
    """Request handlers plus their state; all state is touched on the event loop only."""

    def __init__(self, options: OfflineOptions) -> None:
        self.options = options
        self._fault_rng = random.Random(options.seed)  # noqa: S311 - reproducible, not secret
        self._faults: deque[Fault] = deque()
        self._counts: dict[str, Counter[str]] = {}
        self._models: Counter[str] = Counter()
        """Requests by the model they named, answered or not."""
        self._grammar: Counter[str] = Counter()
        self._recent: deque[dict[str, object]] = deque(maxlen=_RECENT)
        self._in_flight = 0
        self._max_in_flight = 0
        self._limits = SlidingWindowLimits(options.rpm_limit, options.tpm_limit)

    async def chat(self, request: Request) -> Response:
        return await self._generate(request, "chat")

    async def responses(self, request: Request) -> Response:
        return await self._generate(request, "responses")

    async def models(self, request: Request) -> Response:
        if not self._authorized(request):
            return _unauthorized()
        model = {"id": "offline-synthetic", "object": "model", "created": 0, "owned_by": "offline"}
        return _json({"object": "list", "data": [model]})

    async def push_faults(self, request: Request) -> Response:
        try:
            body = await request.json()
            faults = body["faults"]
            if not isinstance(faults, list) or any(f not in FAULTS for f in faults):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return _error(400, f'expected {{"faults": [...]}} with items from {FAULTS}')
        self._faults.extend(faults)
        return _json({"pending": list(self._faults)})

    async def clear_faults(self, request: Request) -> Response:
        self._faults.clear()
        return _json({"pending": []})

    async def reset(self, request: Request) -> Response:
        self._faults.clear()
        self._counts.clear()
        self._models.clear()
        self._grammar.clear()
        self._recent.clear()
        self._limits.reset()
        self._max_in_flight = self._in_flight
        return _json({"reset": True})

    async def stats(self, request: Request) -> Response:
        return _json(
            {
                "requests": {path: dict(counts) for path, counts in self._counts.items()},
                "total": sum(sum(counts.values()) for counts in self._counts.values()),
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "pending_faults": list(self._faults),
                "recent": list(self._recent),
                "rate": self._limits.stats(),
                "grammar": {key: self._grammar[key] for key in ("honoured", "refused")},
                "models": dict(self._models),
            }
        )

    async def _generate(self, request: Request, kind: Literal["chat", "responses"]) -> Response:
        self._in_flight += 1
        self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            return await self._answer(request, kind)
        finally:
            self._in_flight -= 1

    async def _answer(self, request: Request, kind: Literal["chat", "responses"]) -> Response:
        path = request.url.path
        if not self._authorized(request):
            self._note(path, None, "unauthorized")
            return _unauthorized()
        if kind == "responses" and self.options.no_responses:
            self._note(path, None, "not_found")
            return _error(404, "Not Found", error_type="not_found_error")
        try:
            body = await request.json()
            ask = parse_ask(kind, body)
        except (ValueError, TypeError, AttributeError):
            self._note(path, None, "bad_request")
            return _error(400, "We could not parse the JSON body of your request.")
        if kind == "chat" and ask.format_type == "json_schema" and self.options.reject_json_schema:
            # What llama.cpp's OpenAI-compatible server answers to response_format json_schema.
            self._note(path, ask, "rejected_json_schema")
            return _error(500, "response_format.type: Input should be 'text' or 'json_object'")
        if self._refuses_grammar(ask):
            self._grammar["refused"] += 1
            self._note(path, ask, "grammar_refused")
            return _error(400, GRAMMAR_ERROR)
        verdict = self._limits.admit(time.monotonic())
        if verdict.retry_after is not None:
            self._note(path, ask, "rate_limited")
            return _error(
                429,
                "Rate limit reached for requests or tokens per minute (offline server limit).",
                error_type="requests",
                code="rate_limit_exceeded",
                headers=verdict.headers,
            )
        fault = self._next_fault()
        if self.options.latency_ms:
            await asyncio.sleep(self.options.latency_ms / 1000)
        if fault == "hang":
            self._note(path, ask, "hang")
            await _sleep_unless_disconnected(request, self.options.hang_seconds)
            return _error(504, "offline server hang ended", error_type="server_error")
        if fault in ("429", "500", "401"):
            return self._fault_response(path, ask, fault, verdict.headers)
        text, truncated = self._content(ask, fault)
        if ask.schema_source == "response_format":
            self._grammar["honoured"] += 1
        outcome = fault or ("truncated" if truncated else "ok")
        self._note(path, ask, outcome)
        prompt = " ".join(text for _, text in ask.messages) + json.dumps(ask.schema or "")
        prompt_tokens = estimate_tokens(prompt)
        if verdict.entry is not None:
            verdict.entry.tokens = prompt_tokens + estimate_tokens(text)
        build = chat_payload if kind == "chat" else responses_payload
        payload = build(ask, text, truncated=truncated, prompt_tokens=prompt_tokens)
        return _json(payload, headers=verdict.headers)

    def _fault_response(
        self, path: str, ask: Ask, fault: Fault, headers: Mapping[str, str]
    ) -> Response:
        if fault == "429":
            self._note(path, ask, "rate_limited")
            return _error(
                429,
                "Rate limit reached (offline server fault).",
                error_type="requests",
                code="rate_limit_exceeded",
                headers={**headers, "retry-after": "1"},
            )
        if fault == "401":
            self._note(path, ask, "unauthorized")
            return _unauthorized()
        self._note(path, ask, "server_error")
        return _error(
            500, "The server had an error (offline server fault).", "server_error", headers=headers
        )

    def _refuses_grammar(self, ask: Ask) -> bool:
        limit = self.options.max_grammar_repetition
        if limit is None or ask.schema is None or ask.schema_source != "response_format":
            return False
        return grammar_problem(ask.schema, limit) is not None

    def _next_fault(self) -> Fault | None:
        """The scripted queue first, then the random rates."""
        if self._faults:
            return self._faults.popleft()
        options, draw = self.options, self._fault_rng.random()
        coin = self._fault_rng.random() < 0.5
        if draw < options.error_rate:
            return "429" if coin else "500"
        draw -= options.error_rate
        if draw < options.invalid_json_rate:
            return "invalid_json" if coin else "truncated"
        draw -= options.invalid_json_rate
        return "hang" if draw < options.hang_rate else None

    def _content(self, ask: Ask, fault: Fault | None) -> tuple[str, bool]:
        """The answer text and whether it was cut short."""
        key = json.dumps([self.options.seed, ask.schema_name, ask.messages]).encode()
        rng = random.Random(hashlib.sha256(key).digest())  # noqa: S311 - reproducible
        users = [text for role, text in ask.messages if role == "user"]
        topic = synthetic.excerpt(users[0] if users else "")
        if ask.schema is not None:
            text = json.dumps(synthetic.synthesize(ask.schema, rng=rng, topic=topic))
        elif ask.wants_json:
            text = json.dumps({"answer": synthetic.synthetic_text(topic, rng)})
        else:
            text = synthetic.synthetic_text(topic, rng)
        if fault == "invalid_json":
            return f"Sure! Here is the JSON you asked for:\n{text}", False
        if fault == "truncated":
            return text[: len(text) // 2], True
        if ask.max_tokens is not None and estimate_tokens(text) > ask.max_tokens:
            return text[: ask.max_tokens * 4], True
        return text, False

    def _authorized(self, request: Request) -> bool:
        expected = self.options.api_key
        if expected is None:
            return True
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        return hmac.compare_digest(given.encode(), expected.encode())

    def _note(self, path: str, ask: Ask | None, outcome: str) -> None:
        self._counts.setdefault(path, Counter())[outcome] += 1
        if ask is not None:
            self._models[ask.model] += 1
        entry: dict[str, object] = {"path": path, "outcome": outcome}
        if ask is not None:
            entry |= ask.summary()
        self._recent.append(entry)


def create_app(options: OfflineOptions) -> Starlette:
    handlers = _OfflineApp(options)
    routes = [
        Route("/v1/chat/completions", handlers.chat, methods=["POST"]),
        Route("/v1/responses", handlers.responses, methods=["POST"]),
        Route("/v1/models", handlers.models, methods=["GET"]),
        Route("/_offline/faults", handlers.push_faults, methods=["POST"]),
        Route("/_offline/faults", handlers.clear_faults, methods=["DELETE"]),
        Route("/_offline/stats", handlers.stats, methods=["GET"]),
        Route("/_offline/reset", handlers.reset, methods=["POST"]),
    ]
    return Starlette(routes=routes)


def _json(
    payload: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Every answer carries a request id, as OpenAI's do (the SDK reports it)."""
    request_id = f"req_offline_{uuid.uuid4().hex[:24]}"
    return JSONResponse(
        payload, status_code=status, headers={"x-request-id": request_id, **(headers or {})}
    )


def _error(
    status: int,
    message: str,
    error_type: str = "invalid_request_error",
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An error in OpenAI's shape, so the SDK raises the matching exception class."""
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return _json(body, status, headers)


def _unauthorized() -> Response:
    return _error(401, "Incorrect API key provided.", code="invalid_api_key")


async def _sleep_unless_disconnected(request: Request, seconds: float) -> None:
    """Hang like a stuck upstream, but stop as soon as the client gives up."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    sleeper = asyncio.ensure_future(asyncio.sleep(seconds))
    watcher = asyncio.ensure_future(disconnected())
    _, pending = await asyncio.wait({sleeper, watcher}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
