"""LLMClient over real HTTP: the openai SDK talking to the offline server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel

from consensus_engine.devtools.offline_llm import OfflineLLMServer
from consensus_engine.domain.schemas import ExpandedProposal, ReviewDraft
from consensus_engine.llm.client import LLMClient
from consensus_engine.llm.errors import (
    LLMAuthError,
    LLMBadRequestError,
    LLMConfigurationError,
    LLMConnectionError,
    LLMInvalidOutputError,
    LLMQuotaError,
    LLMRateLimitedError,
    LLMServerError,
    LLMTimeoutError,
)
from consensus_engine.llm.pricing import PriceTable
from consensus_engine.llm.records import Generation, WireMode
from consensus_engine.settings import Settings

from .conftest import API_KEY, ClientFactory

IDEA = "Let teams book meeting rooms from chat.\nRooms sync with the calendar every minute."


def ask(
    client: LLMClient, schema: type[BaseModel] = ReviewDraft, **overrides: Any
) -> Generation[Any]:
    arguments: dict[str, Any] = {
        "system": "You review proposals as the Critic.",
        "user": IDEA,
        "model": "gpt-4.1-mini",
        "temperature": 0.2,
        "step": "review_critic",
    }
    arguments.update(overrides)
    return client.generate(schema, **arguments)


@dataclass
class Scenario:
    client: LLMClient
    server: OfflineLLMServer
    mode: WireMode


@pytest.fixture(params=["responses", "chat", "chat_json_object", "auto_fallback"])
def scenario(
    request: pytest.FixtureRequest,
    make_client: ClientFactory,
    server: OfflineLLMServer,
    llama_like_server: OfflineLLMServer,
) -> Scenario:
    """Each wire mode; ``auto_fallback`` has already learnt that its server rejects json_schema."""
    if request.param == "auto_fallback":
        client = make_client("auto", target=llama_like_server)
        ask(client)
        llama_like_server.reset()
        return Scenario(client, llama_like_server, "chat_json_object")
    return Scenario(make_client(request.param), server, request.param)


def outcomes(calls: Any) -> list[str]:
    return [call.outcome for call in calls]


@pytest.mark.parametrize("schema", [ExpandedProposal, ReviewDraft])
def test_valid_output(scenario: Scenario, schema: type[BaseModel]) -> None:
    generation = ask(scenario.client, schema)

    assert isinstance(generation.value, schema)
    assert generation.mode == scenario.mode
    assert outcomes(generation.calls) == ["success"]
    call = generation.calls[0]
    assert (call.step, call.model, call.mode, call.attempt) == (
        "review_critic",
        "gpt-4.1-mini",
        scenario.mode,
        1,
    )
    assert call.request_id and call.request_id.startswith("req_offline_")
    assert scenario.server.stats()["recent"][-1]["schema_name"] == schema.__name__


def test_invalid_json_is_repaired(scenario: Scenario) -> None:
    scenario.server.push_faults("invalid_json")

    generation = ask(scenario.client)

    assert outcomes(generation.calls) == ["invalid_output", "repaired"]
    assert [call.attempt for call in generation.calls] == [1, 2]
    repair = scenario.server.stats()["recent"][-1]
    assert repair["messages"] == 4  # system, user, the bad answer, the repair request


def test_truncated_output_is_repaired(scenario: Scenario) -> None:
    scenario.server.push_faults("truncated")

    generation = ask(scenario.client)

    assert outcomes(generation.calls) == ["invalid_output", "repaired"]
    assert isinstance(generation.value, ReviewDraft)


def test_output_still_invalid_after_repairs_is_permanent(scenario: Scenario) -> None:
    scenario.server.push_faults("invalid_json", "truncated")

    with pytest.raises(LLMInvalidOutputError) as caught:
        ask(scenario.client)

    error = caught.value
    assert (error.code, error.transient) == ("llm_invalid_output", False)
    assert outcomes(error.calls) == ["invalid_output", "invalid_output"]
    assert "ReviewDraft" in error.message and "2 attempt(s)" in error.message


def test_rate_limit_is_transient_and_keeps_retry_after(scenario: Scenario) -> None:
    scenario.server.push_faults("429")

    with pytest.raises(LLMRateLimitedError) as caught:
        ask(scenario.client)

    error = caught.value
    assert (error.code, error.transient, error.retry_after) == ("llm_rate_limited", True, 1.0)
    assert outcomes(error.calls) == ["rate_limited"]
    assert error.calls[0].request_id is not None


def test_server_error_is_transient(scenario: Scenario) -> None:
    scenario.server.push_faults("500")

    with pytest.raises(LLMServerError) as caught:
        ask(scenario.client)

    assert (caught.value.code, caught.value.transient) == ("llm_server_error", True)
    assert outcomes(caught.value.calls) == ["server_error"]


def test_scripted_401_is_permanent_auth_error(scenario: Scenario) -> None:
    scenario.server.push_faults("401")

    with pytest.raises(LLMAuthError) as caught:
        ask(scenario.client)

    assert (caught.value.code, caught.value.transient) == ("llm_auth", False)


@pytest.mark.timeout(20)
def test_hang_past_the_client_timeout_is_transient_timeout(
    make_client: ClientFactory, server: OfflineLLMServer
) -> None:
    client = make_client("chat", timeout_seconds=0.5)
    server.push_faults("hang")

    with pytest.raises(LLMTimeoutError) as caught:
        ask(client)

    error = caught.value
    assert (error.code, error.transient) == ("llm_timeout", True)
    assert "0.5s" in error.message
    assert outcomes(error.calls) == ["timeout"]
    assert server.stats()["requests"]["/v1/chat/completions"] == {"hang": 1}
    assert isinstance(ask(client).value, ReviewDraft)  # the server is still serving


def test_wrong_key_is_permanent_auth_error_and_never_echoed(
    make_client: ClientFactory, server: OfflineLLMServer
) -> None:
    client = make_client("chat", api_key="sk-wrong-key-123456")

    with pytest.raises(LLMAuthError) as caught:
        ask(client)

    assert "HTTP 401" in caught.value.message
    assert "sk-wrong" not in str(caught.value)
    assert outcomes(caught.value.calls) == ["auth_error"]


@pytest.mark.parametrize("mode", ["responses", "chat", "chat_json_object"])
def test_temperature_is_sent_only_when_set(
    make_client: ClientFactory, server: OfflineLLMServer, mode: WireMode
) -> None:
    client = make_client(mode)

    ask(client, temperature=None)
    ask(client, temperature=0.3)

    first, second = server.stats()["recent"]
    assert (first["temperature_sent"], first["temperature"]) == (False, None)
    assert (second["temperature_sent"], second["temperature"]) == (True, 0.3)
    assert first["max_tokens"] == 4096


def test_usage_and_cost_are_recorded(make_client: ClientFactory, server: OfflineLLMServer) -> None:
    server.push_faults("invalid_json")

    generation = ask(make_client("chat"))

    prices = PriceTable()
    for call in generation.calls:
        assert call.input_tokens > 0 and call.output_tokens > 0
        expected = prices.cost_usd("gpt-4.1-mini", call.input_tokens, call.output_tokens)
        assert call.cost_usd == expected > 0
        assert call.priced and call.latency_ms >= 0
    assert generation.input_tokens == sum(call.input_tokens for call in generation.calls)
    assert generation.output_tokens == sum(call.output_tokens for call in generation.calls)
    assert generation.cost_usd == sum(call.cost_usd for call in generation.calls)
    assert generation.priced
    assert json.dumps(generation.calls[0].as_dict())


def test_unknown_model_costs_nothing_and_is_flagged(make_client: ClientFactory) -> None:
    generation = ask(make_client("chat"), model="local-llama")

    assert generation.cost_usd == Decimal(0)
    assert not generation.priced
    assert generation.calls[0].output_tokens > 0


def test_auto_falls_back_to_json_object_and_remembers(
    make_client: ClientFactory, llama_like_server: OfflineLLMServer
) -> None:
    client = make_client("auto", target=llama_like_server)
    before = client.wire_mode

    first = ask(client, ExpandedProposal)
    second = ask(client)

    assert before == "chat"
    assert first.mode == second.mode == client.wire_mode == "chat_json_object"
    assert outcomes(first.calls) == ["bad_request", "success"]
    assert [call.mode for call in first.calls] == ["chat", "chat_json_object"]
    assert outcomes(second.calls) == ["success"]
    formats = [entry["format"] for entry in llama_like_server.stats()["recent"]]
    assert formats == ["json_schema", "json_object", "json_object"]


def test_fallback_is_safe_under_concurrent_first_calls(
    make_client: ClientFactory, llama_like_server: OfflineLLMServer
) -> None:
    client = make_client("auto", target=llama_like_server)

    with ThreadPoolExecutor(max_workers=6) as pool:
        generations = list(pool.map(lambda i: ask(client, user=f"{IDEA} #{i}"), range(6)))

    assert all(g.mode == "chat_json_object" for g in generations)
    assert client.wire_mode == "chat_json_object"


def test_explicit_chat_mode_does_not_fall_back(
    make_client: ClientFactory, llama_like_server: OfflineLLMServer
) -> None:
    with pytest.raises(LLMBadRequestError) as caught:
        ask(make_client("chat", target=llama_like_server))

    assert not caught.value.transient
    assert "chat_json_object" in caught.value.message


def test_missing_responses_endpoint_is_bad_request(
    make_client: ClientFactory, llama_like_server: OfflineLLMServer
) -> None:
    with pytest.raises(LLMBadRequestError) as caught:
        ask(make_client("responses", target=llama_like_server))

    assert "HTTP 404" in caught.value.message


def test_unreachable_server_is_transient_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = LLMClient(api_key="k", base_url=f"http://127.0.0.1:{port}/v1", mode="chat")

    with client, pytest.raises(LLMConnectionError) as caught:
        ask(client)

    assert (caught.value.code, caught.value.transient) == ("llm_connection", True)


def test_auto_mode_resolves_by_base_url() -> None:
    with LLMClient(api_key="k") as official:
        assert official.wire_mode == "responses"
    with LLMClient(api_key=None, base_url="http://127.0.0.1:1/v1") as local:
        assert local.wire_mode == "chat"


def test_official_api_needs_a_key() -> None:
    with pytest.raises(LLMConfigurationError, match="OPENAI_API_KEY"):
        LLMClient(api_key=None)


def test_from_settings(server: OfflineLLMServer) -> None:
    settings = Settings(
        _env_file=None,
        openai_api_key=API_KEY,
        openai_base_url=server.base_url,
        llm_api_mode="chat_json_object",
        llm_prices_json='{"local-model": {"input": 1, "output": 2}}',
        expand_model="local-model",  # the catalogue, and so the prices, are the configured models
    )

    with LLMClient.from_settings(settings) as client:
        generation = ask(client, model="local-model")

    assert client.mode == "chat_json_object"
    assert generation.priced and generation.cost_usd > 0


@pytest.mark.parametrize(
    ("overrides", "within", "expected", "waits"),
    [
        ({}, None, 120.0, 2.0),  # no bound: the settings as they are
        # A first call, one repair, one json_schema fallback, after 2 s of waiting for room.
        ({}, 300.0, 298.0 / 3, 2.0),
        ({"llm_api_mode": "chat"}, 300.0, 120.0, 2.0),  # two calls fit at the full timeout
        ({"llm_repair_attempts": 3, "llm_sdk_max_retries": 1}, 300.0, 298.0 / 9, 2.0),
        ({}, 3.0, 1.5 / 3, 1.5),  # waiting for room takes half the time at most
    ],
)
def test_each_call_is_short_enough_for_all_the_calls_and_waits_to_fit(
    server: OfflineLLMServer,
    overrides: dict[str, Any],
    within: float | None,
    expected: float,
    waits: float,
) -> None:
    settings = Settings(
        _env_file=None,
        openai_base_url=server.base_url,
        llm_timeout_seconds=120,
        llm_capacity_wait_seconds=2.0,
        **overrides,
    )

    with LLMClient.from_settings(settings, within_seconds=within) as client:
        assert client.timeout_seconds == pytest.approx(expected)
        assert client.capacity_wait_seconds == pytest.approx(waits)


# Cases the offline server cannot produce, served through an injected httpx2 transport.

CHAT_OK = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "", "refusal": None},
        }
    ],
}


def mocked(*responses: httpx2.Response) -> tuple[LLMClient, list[dict[str, Any]]]:
    queue = list(responses)
    seen: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        return queue.pop(0)

    client = LLMClient(
        api_key="sk-live-secret-value",
        base_url="http://mocked.test/v1",
        mode="chat",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    return client, seen


def chat_reply(content: str, refusal: str | None = None) -> httpx2.Response:
    body = json.loads(json.dumps(CHAT_OK))
    body["choices"][0]["message"].update(content=content, refusal=refusal)
    return httpx2.Response(200, json=body)


def test_refusal_gets_a_repair_call_and_missing_usage_counts_zero() -> None:
    valid = ExpandedProposal(
        title="t",
        summary="s",
        problem_statement="p",
        proposed_solution="x",
        assumptions=[],
        scope_non_goals=[],
    )
    client, seen = mocked(
        chat_reply("", refusal="I can't help"), chat_reply(valid.model_dump_json())
    )

    with client:
        generation = ask(client, ExpandedProposal)

    assert generation.value == valid
    assert outcomes(generation.calls) == ["invalid_output", "repaired"]
    assert generation.input_tokens == 0
    assert "refused" in seen[1]["messages"][-1]["content"]
    assert seen[0]["response_format"]["json_schema"]["strict"] is True


def test_output_is_validated_even_in_strict_mode() -> None:
    # Strict json_schema allows "   " for minLength 1; our model strips it to "" and says no.
    bad = json.dumps(
        {
            "title": "   ",
            "summary": "s",
            "problem_statement": "p",
            "proposed_solution": "x",
            "assumptions": [],
            "scope_non_goals": [],
        }
    )
    client, _ = mocked(chat_reply(bad), chat_reply(bad))

    with client, pytest.raises(LLMInvalidOutputError, match="title"):
        ask(client, ExpandedProposal)


def test_insufficient_quota_is_permanent() -> None:
    body = {
        "error": {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}
    }
    client, _ = mocked(httpx2.Response(429, json=body))

    with client, pytest.raises(LLMQuotaError) as caught:
        ask(client)

    assert not caught.value.transient
    assert outcomes(caught.value.calls) == ["rate_limited"]


def test_retry_after_ms_is_preferred() -> None:
    client, _ = mocked(httpx2.Response(429, json={"error": {}}, headers={"retry-after-ms": "1500"}))

    with client, pytest.raises(LLMRateLimitedError) as caught:
        ask(client)

    assert caught.value.retry_after == 1.5


def test_bad_request_message_redacts_keys() -> None:
    body = {"error": {"message": "Key sk-live-secret-value and sk-other-abcdef are wrong"}}
    client, _ = mocked(httpx2.Response(400, json=body))

    with client, pytest.raises(LLMBadRequestError) as caught:
        ask(client)

    assert "secret" not in caught.value.message and "abcdef" not in caught.value.message
    assert "HTTP 400" in caught.value.message


def test_official_chat_sends_max_completion_tokens() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        return httpx2.Response(500, json={"error": {"message": "boom"}})

    client = LLMClient(
        api_key="k",
        mode="chat",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    with client, pytest.raises(LLMServerError):
        ask(client)

    assert len(seen) == 1, "the SDK must not retry on its own"
    assert seen[0]["max_completion_tokens"] == 4096 and "max_tokens" not in seen[0]
