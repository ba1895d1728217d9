"""The client's gate: asked before every request it sends, settled after each, over real
HTTP to the offline server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from consensus_engine.devtools.offline_llm import OfflineLLMServer
from consensus_engine.domain.schemas import ReviewDraft
from consensus_engine.llm.client import LLMClient
from consensus_engine.llm.errors import LLMCapacityWait, LLMRateLimitedError
from consensus_engine.llm.gate import Admission, CallIntent
from consensus_engine.llm.provider_limits import Headroom, ProviderLimits
from consensus_engine.llm.records import ApiMode, Generation, LlmCallOutcome

from .conftest import API_KEY

MAX_OUTPUT_TOKENS = 1_000


@dataclass
class Settled:
    input_tokens: int
    output_tokens: int
    provider: ProviderLimits | None


@dataclass
class Ticket:
    intent: CallIntent
    settled: list[Settled] = field(default_factory=list)

    def settle(
        self, input_tokens: int, output_tokens: int, provider: ProviderLimits | None = None
    ) -> None:
        self.settled.append(Settled(input_tokens, output_tokens, provider))


@dataclass
class RecordingGate:
    """Admits every call, after ``wait`` seconds, unless told to refuse the n-th (counting
    from 1)."""

    refuse_call: int | None = None
    wait: float = 0.0
    tickets: list[Ticket] = field(default_factory=list)

    def admit(self, intent: CallIntent) -> Admission:
        time.sleep(self.wait)  # a gate that waits for its turn
        if len(self.tickets) + 1 == self.refuse_call:
            raise LLMCapacityWait("no room", retry_after=3.0)
        self.tickets.append(Ticket(intent))
        return self.tickets[-1]


@pytest.fixture
def limited_server() -> Iterator[OfflineLLMServer]:
    """Refuses past two requests a minute."""
    with OfflineLLMServer(api_key=API_KEY, seed=11, rpm_limit=2) as server:
        yield server


def client_for(
    server: OfflineLLMServer,
    gate: RecordingGate,
    mode: ApiMode = "chat",
    capacity_wait_seconds: float = 0.0,
) -> LLMClient:
    return LLMClient(
        api_key=API_KEY,
        base_url=server.base_url,
        mode=mode,
        timeout_seconds=10,
        max_output_tokens=MAX_OUTPUT_TOKENS,
        gate=gate,
        capacity_wait_seconds=capacity_wait_seconds,
    )


def generate(client: LLMClient) -> Generation[ReviewDraft]:
    return client.generate(
        ReviewDraft,
        system="You are a critic.",
        user="An idea worth reviewing.",
        model="m",
        temperature=None,
        step="review",
        tenant="acme",
    )


def review(client: LLMClient) -> list[LlmCallOutcome]:
    return [call.outcome for call in generate(client).calls]


def test_each_request_is_admitted_then_settled_with_its_usage(server: OfflineLLMServer) -> None:
    gate = RecordingGate()
    with client_for(server, gate) as client:
        generation = generate(client)

    (ticket,) = gate.tickets
    assert (ticket.intent.model, ticket.intent.tenant) == ("m", "acme")
    assert ticket.intent.max_output_tokens == MAX_OUTPUT_TOKENS
    # The prompt and the schema: a few hundred tokens, about what the server counted.
    (call,) = generation.calls
    assert call.input_tokens / 2 < ticket.intent.input_tokens < call.input_tokens * 2
    assert [(s.input_tokens, s.output_tokens) for s in ticket.settled] == [
        (call.input_tokens, call.output_tokens)
    ]
    assert call.call_id == ticket.intent.call_id  # how a budget's hold finds its call


def test_one_generation_waits_at_its_gate_for_its_capacity_wait_in_all(
    server: OfflineLLMServer,
) -> None:
    server.push_faults("invalid_json")
    gate = RecordingGate(wait=0.3)
    with client_for(server, gate, capacity_wait_seconds=1.0) as client:
        generation = generate(client)

    first, repair = (ticket.intent for ticket in gate.tickets)
    assert first.patience == 1.0
    assert 0.5 < repair.patience <= 0.7  # what the first wait left
    assert [call.call_id for call in generation.calls] == [first.call_id, repair.call_id]
    assert first.call_id != repair.call_id


def test_a_repair_is_a_request_of_its_own(server: OfflineLLMServer) -> None:
    server.push_faults("invalid_json")
    gate = RecordingGate()
    with client_for(server, gate) as client:
        assert review(client) == [LlmCallOutcome.INVALID_OUTPUT, LlmCallOutcome.REPAIRED]

    assert len(gate.tickets) == 2
    assert all(len(ticket.settled) == 1 for ticket in gate.tickets)
    first, repair = (ticket.intent.input_tokens for ticket in gate.tickets)
    assert repair > first  # the repair sends the bad answer back


def test_the_request_before_a_fallback_is_admitted_and_settled_as_failed(
    llama_like_server: OfflineLLMServer,
) -> None:
    gate = RecordingGate()
    with client_for(llama_like_server, gate, mode="auto") as client:
        assert review(client) == [LlmCallOutcome.BAD_REQUEST, LlmCallOutcome.SUCCESS]

    assert [len(ticket.settled) for ticket in gate.tickets] == [1, 1]
    assert (gate.tickets[0].settled[0].input_tokens, gate.tickets[0].settled[0].output_tokens) == (
        0,
        0,
    )


def test_no_room_sends_nothing_and_records_no_call(server: OfflineLLMServer) -> None:
    with (
        client_for(server, RecordingGate(refuse_call=1)) as client,
        pytest.raises(LLMCapacityWait) as raised,
    ):
        review(client)

    assert raised.value.calls == [] and raised.value.retry_after == 3.0
    assert server.stats()["total"] == 0


def test_no_room_for_a_repair_keeps_the_calls_made_before(server: OfflineLLMServer) -> None:
    server.push_faults("invalid_json")
    with (
        client_for(server, RecordingGate(refuse_call=2)) as client,
        pytest.raises(LLMCapacityWait) as raised,
    ):
        review(client)

    assert [call.outcome for call in raised.value.calls] == [LlmCallOutcome.INVALID_OUTPUT]
    assert server.stats()["total"] == 1


def test_the_providers_limit_headers_reach_the_gate(limited_server: OfflineLLMServer) -> None:
    gate = RecordingGate()
    with client_for(limited_server, gate) as client:
        review(client)
        review(client)
        with pytest.raises(LLMRateLimitedError) as refused:
            review(client)

    first, second, third = (ticket.settled[0].provider for ticket in gate.tickets)
    assert first is not None and first.requests is not None
    assert (first.requests.limit, first.requests.remaining) == (2, 1)
    assert second is not None and second.requests is not None
    reset = second.requests.reset_seconds
    assert second.requests == Headroom(remaining=0, reset_seconds=reset, limit=2)
    assert 0 < reset <= 60
    # The 429: its Retry-After (until the first request leaves the minute) reaches both.
    assert third is not None and third.retry_after is not None
    assert 55 < third.retry_after <= 60
    assert refused.value.retry_after == third.retry_after
