"""The three ways of asking for structured output, and reading the answer back.

Each mode sends the same conversation and returns the same :class:`Reply`, so
validation and repair live in one place (the client). We call ``create`` rather
than the SDK's ``parse`` helpers: they raise on truncation and hide the raw
text and usage we need for repair prompts and cost accounting.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from openai import OpenAI, omit
from openai.lib._pydantic import to_strict_json_schema
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from openai.types.responses import Response, ResponseInputParam, ResponseTextConfigParam
from openai.types.shared_params import ResponseFormatJSONObject, ResponseFormatJSONSchema
from pydantic import BaseModel

from consensus_engine.llm.grammar_schema import compilable_schema
from consensus_engine.llm.provider_limits import ProviderLimits, read_limits
from consensus_engine.llm.records import WireMode

# In chat_json_object mode this fixed line precedes the fenced schema (the offline server
# looks for it).
SCHEMA_MARKER = "Reply with one JSON object that validates against this JSON Schema:"

Role = Literal["user", "assistant"]
Turn = tuple[Role, str]


class _JSONObjectWithSchema(ResponseFormatJSONObject, total=False):
    """llama.cpp's dialect: ``json_object`` with the schema that constrains decoding."""

    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Request:
    model: str
    system: str
    turns: Sequence[Turn]
    temperature: float | None
    max_output_tokens: int


@dataclass(frozen=True, slots=True)
class Reply:
    """The model's raw answer, before any validation."""

    text: str
    truncated: bool
    refusal: str | None
    input_tokens: int
    output_tokens: int
    request_id: str | None
    limits: ProviderLimits | None = None
    """What the answer's headers said about the provider's rate limits."""


@functools.cache
def strict_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """The schema as strict structured output wants it (cached: treat as read-only)."""
    return to_strict_json_schema(schema)


@functools.cache
def json_object_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """The schema sent next to ``json_object``: the strict one, minus what grammar builders
    cannot compile (cached: treat as read-only)."""
    return compilable_schema(strict_schema(schema))


def json_object_system_prompt(system: str, schema: type[BaseModel]) -> str:
    """For servers without ``json_schema`` support: the full schema travels in the prompt
    too, for servers that do not constrain decoding."""
    fenced = json.dumps(strict_schema(schema), indent=2)
    return f"{system}\n\n{SCHEMA_MARKER}\n```json\n{fenced}\n```"


def send(
    client: OpenAI, mode: WireMode, schema: type[BaseModel], request: Request, *, official: bool
) -> Reply:
    """One HTTP call in ``mode``; SDK exceptions propagate to the caller for mapping."""
    if mode == "responses":
        return _send_responses(client, schema, request)
    return _send_chat(client, mode, schema, request, official=official)


def _send_responses(client: OpenAI, schema: type[BaseModel], request: Request) -> Reply:
    text: ResponseTextConfigParam = {
        "format": {
            "type": "json_schema",
            "name": schema.__name__,
            "schema": strict_schema(schema),
            "strict": True,
        }
    }
    turns: ResponseInputParam = [
        {"role": role, "content": content} for role, content in request.turns
    ]
    raw = client.responses.with_raw_response.create(
        model=request.model,
        instructions=request.system,
        input=turns,
        text=text,
        max_output_tokens=request.max_output_tokens,
        temperature=omit if request.temperature is None else request.temperature,
        store=False,
    )
    response: Response = raw.parse()
    refusals = [
        part.refusal
        for item in response.output
        if item.type == "message"
        for part in item.content
        if part.type == "refusal"
    ]
    usage = response.usage
    return Reply(
        text=response.output_text,
        truncated=response.status == "incomplete",
        refusal=" ".join(refusals) or None,
        input_tokens=usage.input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        request_id=response._request_id,
        limits=read_limits(raw.headers),
    )


def _send_chat(
    client: OpenAI, mode: WireMode, schema: type[BaseModel], request: Request, *, official: bool
) -> Reply:
    response_format: ResponseFormatJSONSchema | ResponseFormatJSONObject
    if mode == "chat_json_object":
        system = json_object_system_prompt(request.system, schema)
        response_format = _json_object_format(schema, official=official)
    else:
        system = request.system
        response_format = {
            "type": "json_schema",
            "json_schema": {
                "name": schema.__name__,
                "schema": strict_schema(schema),
                "strict": True,
            },
        }
    messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": system}]
    messages.extend(_chat_turn(role, content) for role, content in request.turns)
    # OpenAI's reasoning models accept only max_completion_tokens; compatible servers
    # (llama.cpp, vLLM, Ollama) have long understood max_tokens.
    limit = request.max_output_tokens
    raw = client.chat.completions.with_raw_response.create(
        model=request.model,
        messages=messages,
        response_format=response_format,
        max_completion_tokens=limit if official else omit,
        max_tokens=omit if official else limit,
        temperature=omit if request.temperature is None else request.temperature,
    )
    completion: ChatCompletion = raw.parse()
    usage = completion.usage
    choice = completion.choices[0] if completion.choices else None
    message = choice.message if choice else None
    return Reply(
        text=(message.content or "") if message else "",
        truncated=choice is not None and choice.finish_reason == "length",
        refusal=_chat_refusal(completion),
        input_tokens=usage.prompt_tokens if usage else 0,
        output_tokens=usage.completion_tokens if usage else 0,
        request_id=completion._request_id,
        limits=read_limits(raw.headers),
    )


def _json_object_format(schema: type[BaseModel], *, official: bool) -> ResponseFormatJSONObject:
    """Compatible servers get the schema to constrain decoding with (llama.cpp's servers
    honour it, Ollama's OpenAI endpoint ignores it); OpenAI's own API documents no such
    field, so it gets none."""
    if official:
        return {"type": "json_object"}
    with_schema: _JSONObjectWithSchema = {
        "type": "json_object",
        "schema": json_object_schema(schema),
    }
    return with_schema


def _chat_turn(role: Role, content: str) -> ChatCompletionMessageParam:
    if role == "assistant":
        return {"role": "assistant", "content": content}
    return {"role": "user", "content": content}


def _chat_refusal(completion: ChatCompletion) -> str | None:
    if not completion.choices:
        return None
    choice = completion.choices[0]
    if choice.message.refusal:
        return choice.message.refusal
    if choice.finish_reason == "content_filter":
        return "the provider's content filter stopped the answer"
    return None
