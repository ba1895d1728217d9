"""The offline server's side of the OpenAI wire format: read a request, shape a reply.

Request reading is lenient (a fake must not be stricter than the real thing),
and replies carry just the fields the openai SDK's parser expects.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from consensus_engine.llm.wire import SCHEMA_MARKER

Kind = Literal["chat", "responses"]
SchemaSource = Literal["json_schema", "response_format", "prompt"]
_FENCED_JSON = re.compile(r"```json\s*\n(.*?)\n```", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Ask:
    """What a generation request asks for, whichever endpoint it came to."""

    kind: Kind
    model: str
    messages: list[tuple[str, str]]
    schema: dict[str, Any] | None
    schema_source: SchemaSource | None
    """Where the schema came from: ``json_schema`` output, next to ``json_object`` (the
    llama.cpp dialect, which constrains decoding there) or the prompt."""
    schema_name: str
    format_type: str
    max_tokens: int | None
    temperature: float | None
    temperature_sent: bool

    @property
    def wants_json(self) -> bool:
        return self.format_type in ("json_schema", "json_object")

    def summary(self) -> dict[str, object]:
        """What tests want to assert about the request that was sent."""
        return {
            "model": self.model,
            "temperature": self.temperature,
            "temperature_sent": self.temperature_sent,
            "format": self.format_type,
            "schema_name": self.schema_name,
            "schema_source": self.schema_source,
            "max_tokens": self.max_tokens,
            "messages": len(self.messages),
        }


def parse_ask(kind: Kind, body: Any) -> Ask:
    """Raises ``TypeError``/``ValueError``/``AttributeError`` for a body of the wrong shape."""
    if not isinstance(body, dict):
        raise TypeError("request body must be a JSON object")
    if kind == "chat":
        messages = [(str(m["role"]), _text(m.get("content"))) for m in body.get("messages") or []]
        response_format = body.get("response_format") or {}
        spec = response_format.get("json_schema") or {}
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    else:
        messages = _responses_messages(body)
        response_format = (body.get("text") or {}).get("format") or {}
        spec = response_format
        max_tokens = body.get("max_output_tokens")
    format_type = str(response_format.get("type", "text"))
    schema: Any = None
    source: SchemaSource | None = None
    name = ""
    if format_type == "json_schema":
        schema, source, name = spec.get("schema"), "json_schema", str(spec.get("name", ""))
    elif format_type == "json_object":
        # llama.cpp's dialect puts the schema next to the type; ours puts it in the prompt too.
        schema, source = response_format.get("schema"), "response_format"
        if not schema or not isinstance(schema, dict):
            schema, source = schema_in_messages(messages), "prompt"
        name = str(schema.get("title", "")) if schema else ""
    if not isinstance(schema, dict):
        schema, source = None, None
    temperature = body.get("temperature")
    return Ask(
        kind=kind,
        model=str(body.get("model", "")),
        messages=messages,
        schema=schema,
        schema_source=source,
        schema_name=name,
        format_type=format_type,
        max_tokens=int(max_tokens) if max_tokens else None,
        temperature=float(temperature) if temperature is not None else None,
        temperature_sent="temperature" in body,
    )


def schema_in_messages(messages: list[tuple[str, str]]) -> dict[str, Any] | None:
    """The fenced JSON schema that follows :data:`SCHEMA_MARKER`, if a message has one."""
    for _, text in messages:
        start = text.find(SCHEMA_MARKER)
        if start < 0:
            continue
        match = _FENCED_JSON.search(text, start)
        if match:
            try:
                found = json.loads(match.group(1))
            except ValueError:
                continue
            if isinstance(found, dict):
                return found
    return None


def estimate_tokens(text: str) -> int:
    """About four characters a token: close enough for cost figures in tests and demos."""
    return math.ceil(len(text) / 4)


def chat_payload(ask: Ask, text: str, *, truncated: bool, prompt_tokens: int) -> dict[str, Any]:
    completion_tokens = estimate_tokens(text)
    return {
        "id": f"chatcmpl-offline-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": ask.model,
        "system_fingerprint": "offline",
        "choices": [
            {
                "index": 0,
                "finish_reason": "length" if truncated else "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": text, "refusal": None},
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def responses_payload(
    ask: Ask, text: str, *, truncated: bool, prompt_tokens: int
) -> dict[str, Any]:
    output_tokens = estimate_tokens(text)
    status = "incomplete" if truncated else "completed"
    return {
        "id": f"resp_offline_{uuid.uuid4().hex[:24]}",
        "object": "response",
        "created_at": int(time.time()),
        "model": ask.model,
        "status": status,
        "incomplete_details": {"reason": "max_output_tokens"} if truncated else None,
        "error": None,
        "output": [
            {
                "type": "message",
                "id": f"msg_offline_{uuid.uuid4().hex[:24]}",
                "role": "assistant",
                "status": status,
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "temperature": ask.temperature,
        "usage": {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + output_tokens,
        },
    }


def _responses_messages(body: dict[str, Any]) -> list[tuple[str, str]]:
    messages: list[tuple[str, str]] = []
    if body.get("instructions"):
        messages.append(("system", str(body["instructions"])))
    given = body.get("input")
    if isinstance(given, str):
        messages.append(("user", given))
        return messages
    for item in given or []:
        if isinstance(item, dict) and "role" in item:
            messages.append((str(item["role"]), _text(item.get("content"))))
    return messages


def _text(content: Any) -> str:
    """Message content is either a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""
