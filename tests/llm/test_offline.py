"""The offline server: deterministic, input-dependent, schema-valid, concurrent, scriptable."""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import Annotated, Any, Literal

import openai
import pytest
from pydantic import BaseModel, Field

from consensus_engine.devtools.offline_llm import (
    OfflineLLMServer,
    OfflineOptions,
    add_cli_arguments,
    serve,
    synthetic,
)
from consensus_engine.domain.schemas import ExpandedProposal, ReviewDraft
from consensus_engine.llm.client import LLMClient
from consensus_engine.llm.errors import LLMTimeoutError
from consensus_engine.llm.records import WireMode
from consensus_engine.llm.wire import json_object_schema, strict_schema

from .conftest import API_KEY, ClientFactory

MODES: list[WireMode] = ["responses", "chat", "chat_json_object"]


def review(client: LLMClient, *, system: str = "Critic", user: str = "An idea") -> ReviewDraft:
    generation = client.generate(
        ReviewDraft, system=system, user=user, model="m", temperature=None, step="review"
    )
    return generation.value


@pytest.fixture
def raw(server: OfflineLLMServer) -> Iterator[openai.OpenAI]:
    """The bare SDK, for requests our client never makes."""
    with openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0) as client:
        yield client


@pytest.mark.parametrize("mode", MODES)
def test_same_input_same_output(make_client: ClientFactory, mode: WireMode) -> None:
    client = make_client(mode)

    assert review(client) == review(client)


def test_output_depends_on_every_message(make_client: ClientFactory) -> None:
    client = make_client("chat")
    base = review(client, user="Build a bike-sharing app for the campus")

    assert review(client, user="Replace the billing system with a ledger") != base
    assert (
        review(client, system="Security guardian", user="Build a bike-sharing app for the campus")
        != base
    )
    assert "bike-sharing" in base.summary


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("schema", [ExpandedProposal, ReviewDraft])
def test_content_is_schema_valid_and_marked_synthetic(
    make_client: ClientFactory, mode: WireMode, schema: type[BaseModel]
) -> None:
    generation = make_client(mode).generate(
        schema, system="s", user="Cache the catalogue", model="m", temperature=None, step="x"
    )

    strings = [v for v in generation.value.model_dump().values() if isinstance(v, str)]
    assert strings and all(text.startswith("[synthetic]") for text in strings)


def test_review_heuristics_read_plausibly() -> None:
    schema = strict_schema(ReviewDraft)
    reviews = [
        ReviewDraft.model_validate(
            synthetic.synthesize(schema, rng=random.Random(seed), topic="an idea")
        )
        for seed in range(200)
    ]

    assert all(0.55 <= r.confidence_score <= 0.95 for r in reviews)
    with_blockers = sum(bool(r.blocking_issues) for r in reviews)
    assert 0 < with_blockers < 100
    critical = sum(i.security_critical for r in reviews for i in r.blocking_issues)
    assert critical < with_blockers


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Node(BaseModel):
    name: Annotated[str, Field(min_length=30, max_length=40)]
    children: list[Node] = Field(max_length=2)


class Awkward(BaseModel):
    colour: Colour
    kind: Literal["a", "b"]
    count: Annotated[int, Field(gt=10, lt=13)]
    ratio: Annotated[float, Field(gt=0, lt=0.001)]
    negative: Annotated[float, Field(le=-5)]
    maybe: int | None
    either: int | str
    tags: Annotated[list[Annotated[str, Field(max_length=5)]], Field(min_length=2, max_length=3)]
    nested: Node
    table: dict[str, int]


def test_any_schema_gets_a_valid_instance() -> None:
    for schema in (Awkward.model_json_schema(), strict_schema(Awkward)):
        for seed in range(100):
            instance = synthetic.synthesize(schema, rng=random.Random(seed), topic="x")
            Awkward.model_validate(instance)


def test_plain_chat_gets_synthetic_text(raw: openai.OpenAI) -> None:
    completion = raw.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Say hello"}]
    )

    text = completion.choices[0].message.content or ""
    assert text.startswith("[synthetic] reply about 'Say hello'")
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_max_tokens_truncates_like_a_real_model(raw: openai.OpenAI) -> None:
    completion = raw.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Say hello"}], max_tokens=3
    )

    assert completion.choices[0].finish_reason == "length"
    assert len(completion.choices[0].message.content or "") == 12


def test_models_endpoint(raw: openai.OpenAI) -> None:
    assert [model.id for model in raw.models.list()] == ["offline-synthetic"]


def test_wrong_key_gets_openai_shaped_401(server: OfflineLLMServer) -> None:
    client = openai.OpenAI(api_key="nope", base_url=server.base_url, max_retries=0)
    with client, pytest.raises(openai.AuthenticationError) as caught:
        client.models.list()

    assert caught.value.code == "invalid_api_key"


def test_scripted_faults_are_consumed_in_order(
    raw: openai.OpenAI, server: OfflineLLMServer
) -> None:
    server.push_faults("500", "429")
    messages: Any = [{"role": "user", "content": "hi"}]

    with pytest.raises(openai.InternalServerError):
        raw.chat.completions.create(model="m", messages=messages)
    with pytest.raises(openai.RateLimitError) as limited:
        raw.responses.create(model="m", input="hi")
    raw.chat.completions.create(model="m", messages=messages)

    assert limited.value.response.headers["retry-after"] == "1"
    stats = server.stats()
    assert stats["requests"] == {
        "/v1/chat/completions": {"server_error": 1, "ok": 1},
        "/v1/responses": {"rate_limited": 1},
    }
    assert stats["total"] == 3 and stats["pending_faults"] == []


def test_unknown_fault_is_refused(server: OfflineLLMServer) -> None:
    request = urllib.request.Request(
        server.base_url.removesuffix("/v1") + "/_offline/faults",
        data=json.dumps({"faults": ["explode"]}).encode(),
        method="POST",
    )

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)

    caught.value.close()
    assert caught.value.code == 400


def test_queued_faults_can_be_dropped(raw: openai.OpenAI, server: OfflineLLMServer) -> None:
    server.push_faults("500", "500")
    request = urllib.request.Request(
        server.base_url.removesuffix("/v1") + "/_offline/faults", method="DELETE"
    )
    urllib.request.urlopen(request, timeout=5).close()

    raw.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])

    assert server.stats()["pending_faults"] == []


def test_llama_like_server_rejects_json_schema_only(llama_like_server: OfflineLLMServer) -> None:
    schema: Any = {
        "type": "json_schema",
        "json_schema": {"name": "R", "schema": strict_schema(ReviewDraft), "strict": True},
    }
    messages: Any = [{"role": "user", "content": "hi"}]
    with openai.OpenAI(
        api_key=API_KEY, base_url=llama_like_server.base_url, max_retries=0
    ) as client:
        with pytest.raises(openai.InternalServerError, match="'text' or 'json_object'"):
            client.chat.completions.create(model="m", messages=messages, response_format=schema)
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model="m", input="hi")
        # llama.cpp's own dialect: the schema next to type json_object, in a form its
        # grammar builder compiles (tests/llm/test_local_servers.py: the strict one fails).
        dialect: Any = {"type": "json_object", "schema": json_object_schema(ReviewDraft)}
        completion = client.chat.completions.create(
            model="m", messages=messages, response_format=dialect
        )

    ReviewDraft.model_validate_json(completion.choices[0].message.content or "")


def test_random_rates_are_seeded() -> None:
    def outcomes(seed: int) -> list[str]:
        with OfflineLLMServer(error_rate=0.5, invalid_json_rate=0.5, seed=seed) as server:
            with openai.OpenAI(api_key="k", base_url=server.base_url, max_retries=0) as client:
                for _ in range(12):
                    with contextlib.suppress(openai.APIStatusError):
                        client.chat.completions.create(
                            model="m", messages=[{"role": "user", "content": "hi"}]
                        )
            return [entry["outcome"] for entry in server.stats()["recent"]]

    first = outcomes(5)
    assert first == outcomes(5)
    assert "ok" not in first
    assert {"rate_limited", "server_error"} & set(first)
    assert {"invalid_json", "truncated"} & set(first)


def test_slow_answers_overlap_instead_of_queueing() -> None:
    server = OfflineLLMServer(latency_ms=300)
    with server, LLMClient(api_key="k", base_url=server.base_url, mode="chat") as client:
        with ThreadPoolExecutor(max_workers=20) as pool:
            values = list(pool.map(lambda i: review(client, user=f"idea {i}"), range(20)))
        stats = server.stats()

    assert len({value.summary for value in values}) == 20
    assert stats["requests"]["/v1/chat/completions"] == {"ok": 20}
    assert stats["max_in_flight"] >= 10


@pytest.mark.timeout(20)
def test_hung_request_does_not_block_shutdown() -> None:
    server = OfflineLLMServer(hang_rate=1.0, hang_seconds=3600).start()
    client = LLMClient(api_key="k", base_url=server.base_url, mode="chat", timeout_seconds=0.3)
    with client, pytest.raises(LLMTimeoutError):
        review(client)

    assert server.is_running
    server.stop()

    assert not server.is_running


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="add up"):
        OfflineOptions(error_rate=0.7, invalid_json_rate=0.5)
    with pytest.raises(ValueError, match="latency"):
        OfflineOptions(latency_ms=-1)


def test_serve_refuses_to_leave_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        serve("0.0.0.0", 8089)


def test_cli_arguments() -> None:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)

    args = parser.parse_args(
        ["--port", "9000", "--latency-ms", "50", "--error-rate", "0.1", "--reject-json-schema"]
    )

    assert (args.host, args.port, args.latency_ms, args.error_rate) == ("127.0.0.1", 9000, 50, 0.1)
    assert args.reject_json_schema and not args.no_responses
    assert (args.invalid_json_rate, args.hang_rate, args.api_key) == (0.0, 0.0, None)
