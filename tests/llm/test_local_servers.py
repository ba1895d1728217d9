"""Structured output from llama.cpp-like local servers: the schema next to ``json_object``.

Such a server rejects ``json_schema`` output, constrains decoding with a schema sent as
``{"type": "json_object", "schema": ...}`` and refuses one whose grammar it cannot build.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Annotated, Any

import httpx2
import openai
import pytest
from pydantic import BaseModel, Field

from consensus_engine.devtools.offline_llm import (
    OfflineLLMServer,
    OfflineOptions,
    add_cli_arguments,
)
from consensus_engine.devtools.offline_llm.grammar import (
    GRAMMAR_ERROR,
    LLAMA_CPP_MAX_REPETITION,
    grammar_problem,
)
from consensus_engine.domain.schemas import ExpandedProposal, ReviewDraft
from consensus_engine.llm.client import LLMClient
from consensus_engine.llm.errors import LLMInvalidOutputError, LLMServerError
from consensus_engine.llm.grammar_schema import MAX_COMPILED_REPETITION, compilable_schema
from consensus_engine.llm.wire import SCHEMA_MARKER, json_object_schema, strict_schema

from .conftest import API_KEY

SCHEMAS: list[type[BaseModel]] = [ExpandedProposal, ReviewDraft]


@pytest.fixture
def raw(llama_like_server: OfflineLLMServer) -> Iterator[openai.OpenAI]:
    url = llama_like_server.base_url
    with openai.OpenAI(api_key=API_KEY, base_url=url, max_retries=0) as client:
        yield client


def generate(client: LLMClient, schema: type[BaseModel]) -> BaseModel:
    return client.generate(
        schema,
        system="You review.",
        user="Cache the catalogue",
        model="m",
        temperature=0.2,
        step="review_critic",
    ).value


def json_object_with(schema: dict[str, Any]) -> Any:
    return {"type": "json_object", "schema": schema}


def test_expand_and_review_pass_through_the_grammar(llama_like_server: OfflineLLMServer) -> None:
    with LLMClient(api_key=API_KEY, base_url=llama_like_server.base_url, mode="auto") as client:
        values = [generate(client, schema) for schema in SCHEMAS]
        assert client.wire_mode == "chat_json_object"

    assert [type(value) for value in values] == SCHEMAS
    stats = llama_like_server.stats()
    assert stats["requests"]["/v1/chat/completions"] == {"rejected_json_schema": 1, "ok": 2}
    assert stats["grammar"] == {"honoured": 2, "refused": 0}
    answered = [entry for entry in stats["recent"] if entry["outcome"] == "ok"]
    assert [entry["schema_source"] for entry in answered] == ["response_format"] * 2
    assert all(entry["format"] == "json_object" for entry in answered)


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_schema_sent_compiles_and_the_prompt_keeps_the_full_one(
    schema: type[BaseModel],
) -> None:
    sent: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        return httpx2.Response(500, json={"error": {"message": "stop here"}})

    transport = httpx2.Client(transport=httpx2.MockTransport(handler))
    client = LLMClient(
        api_key=API_KEY,
        base_url="http://local.test/v1",
        mode="chat_json_object",
        http_client=transport,
    )
    with client, pytest.raises(LLMServerError):  # only the request matters
        generate(client, schema)

    response_format = sent[0]["response_format"]
    assert response_format == json_object_with(json_object_schema(schema))
    assert grammar_problem(response_format["schema"], LLAMA_CPP_MAX_REPETITION) is None
    system = sent[0]["messages"][0]["content"]
    assert SCHEMA_MARKER in system and json.dumps(strict_schema(schema), indent=2) in system


def test_openai_itself_gets_no_schema_next_to_json_object() -> None:
    sent: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        return httpx2.Response(500, json={"error": {"message": "stop here"}})

    client = LLMClient(
        api_key=API_KEY,
        mode="chat_json_object",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    with client, pytest.raises(LLMServerError):  # only the request matters
        generate(client, ReviewDraft)

    assert sent[0]["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_strict_schema_as_is_is_refused(
    llama_like_server: OfflineLLMServer, raw: openai.OpenAI, schema: type[BaseModel]
) -> None:
    """What the client sent before: the server cannot build the grammar."""
    messages: Any = [{"role": "user", "content": "hi"}]

    with pytest.raises(openai.BadRequestError, match=GRAMMAR_ERROR):
        raw.chat.completions.create(
            model="m", messages=messages, response_format=json_object_with(strict_schema(schema))
        )
    completion = raw.chat.completions.create(
        model="m", messages=messages, response_format=json_object_with(json_object_schema(schema))
    )

    schema.model_validate_json(completion.choices[0].message.content or "")
    assert "exceeds 1999 repetitions" in (grammar_problem(strict_schema(schema), 1999) or "")
    assert llama_like_server.stats()["grammar"] == {"honoured": 1, "refused": 1}


def test_a_pattern_is_refused_and_left_to_validation(
    llama_like_server: OfflineLLMServer, raw: openai.OpenAI
) -> None:
    class Patterned(BaseModel):
        code: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]

    messages: Any = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError, match=GRAMMAR_ERROR):
        raw.chat.completions.create(
            model="m", messages=messages, response_format=json_object_with(strict_schema(Patterned))
        )
    # Our client leaves the pattern out; the synthetic answer ignores it, and pydantic sees.
    url = llama_like_server.base_url
    client = LLMClient(api_key=API_KEY, base_url=url, mode="chat_json_object")
    with client, pytest.raises(LLMInvalidOutputError, match="should match pattern"):
        generate(client, Patterned)

    assert llama_like_server.stats()["grammar"] == {"honoured": 2, "refused": 1}


def test_servers_compile_anything_unless_told_otherwise() -> None:
    messages: Any = [{"role": "user", "content": "hi"}]
    with OfflineLLMServer(api_key=API_KEY) as server:
        with openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0) as raw:
            completion = raw.chat.completions.create(
                model="m",
                messages=messages,
                response_format=json_object_with(strict_schema(ReviewDraft)),
            )
        stats = server.stats()

    ReviewDraft.model_validate_json(completion.choices[0].message.content or "")
    assert stats["grammar"] == {"honoured": 1, "refused": 0}


def test_grammar_option_is_validated_and_on_the_command_line() -> None:
    with pytest.raises(ValueError, match="max_grammar_repetition"):
        OfflineOptions(max_grammar_repetition=0)
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)

    assert parser.parse_args([]).max_grammar_repetition is None
    assert parser.parse_args(["--max-grammar-repetition", "1999"]).max_grammar_repetition == 1999


# The derivation itself.


class Tag(BaseModel):
    label: Annotated[str, Field(min_length=2, max_length=40)]
    note: Annotated[str, Field(max_length=5000)]


class Inner(BaseModel):
    tags: Annotated[list[Tag], Field(min_length=1, max_length=8)]
    many: Annotated[list[int], Field(max_length=10_000)]


class Outer(BaseModel):
    title: Annotated[str, Field(min_length=1, max_length=300)]
    body: Annotated[str, Field(min_length=1, max_length=20_000)]
    code: Annotated[str, Field(pattern=r"^[a-z]+$")]
    day: Annotated[str, Field(json_schema_extra={"format": "date"})]
    score: Annotated[float, Field(ge=0, le=1)]
    kind: Annotated[str, Field(json_schema_extra={"enum": ["a", "b"]})]
    inner: Inner
    maybe: Tag | None
    rows: list[list[Annotated[str, Field(max_length=3000)]]]


def test_cheap_bounds_are_kept_and_costly_ones_dropped() -> None:
    strict = strict_schema(Outer)
    before = json.dumps(strict)

    derived = compilable_schema(strict)

    assert json.dumps(strict) == before  # the cached strict schema is left alone
    props = derived["properties"]
    assert props["title"] == {"maxLength": 300, "minLength": 1, "title": "Title", "type": "string"}
    assert props["body"] == {"minLength": 1, "title": "Body", "type": "string"}
    assert "pattern" not in props["code"] and "format" not in props["day"]
    assert (props["score"]["minimum"], props["score"]["maximum"]) == (0, 1)
    assert props["kind"]["enum"] == ["a", "b"]
    assert derived["required"] == strict["required"]
    assert derived["additionalProperties"] is False
    assert props["rows"]["items"]["items"] == {"type": "string"}


def test_refs_and_defs_are_converted_alike() -> None:
    derived = compilable_schema(strict_schema(Outer))

    defs = derived["$defs"]
    assert derived["properties"]["inner"] == {"$ref": "#/$defs/Inner"}
    assert defs["Tag"]["properties"]["label"]["maxLength"] == 40
    assert "maxLength" not in defs["Tag"]["properties"]["note"]
    tags = defs["Inner"]["properties"]["tags"]
    assert (tags["minItems"], tags["maxItems"], tags["items"]) == (1, 8, {"$ref": "#/$defs/Tag"})
    assert "maxItems" not in defs["Inner"]["properties"]["many"]
    branches = derived["properties"]["maybe"]["anyOf"]
    assert {"$ref": "#/$defs/Tag"} in branches and {"type": "null"} in branches
    assert defs["Tag"]["additionalProperties"] is False


def test_the_limit_is_inclusive_and_property_names_are_not_keywords() -> None:
    schema = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "maxLength": MAX_COMPILED_REPETITION},
            "maxLength": {"type": "string", "maxLength": MAX_COMPILED_REPETITION + 1},
        },
    }

    derived = compilable_schema(schema)

    assert derived["properties"]["pattern"]["maxLength"] == MAX_COMPILED_REPETITION
    assert derived["properties"]["maxLength"] == {"type": "string"}
    assert grammar_problem(derived, MAX_COMPILED_REPETITION) is None
    assert grammar_problem(schema, MAX_COMPILED_REPETITION) is not None


@pytest.mark.parametrize("schema", [*SCHEMAS, Outer])
def test_derived_schemas_compile_under_llama_cpps_limit(schema: type[BaseModel]) -> None:
    assert grammar_problem(strict_schema(schema), LLAMA_CPP_MAX_REPETITION) is not None
    assert grammar_problem(json_object_schema(schema), LLAMA_CPP_MAX_REPETITION) is None
