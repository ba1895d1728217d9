"""The rate-limit gate's policy over a scripted bucket store: what it draws, how long it
waits here, when it sends a caller away, and what it settles. The store's own arithmetic
is tested against PostgreSQL in ``tests/integration/test_rate_limits.py``."""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass, field

import pytest

from consensus_engine.llm.catalogue import ModelCatalogue
from consensus_engine.llm.errors import LLMCapacityWait
from consensus_engine.llm.gate import UNCONDITIONAL, Admission, CallIntent, Gates
from consensus_engine.llm.provider_limits import Headroom, ProviderLimits
from consensus_engine.llm.rate_limits import Bucket, Draw, RateLimitGate, Taken
from consensus_engine.settings import load_settings

LIMITED = "limited"
CATALOGUE = {
    LIMITED: {"free": True, "rpm": 120, "tpm": 60_000},
    "requests-only": {"free": True, "rpm": 60},
    "unlimited": {"free": True},
}


def catalogue() -> ModelCatalogue:
    settings = load_settings(
        model_catalogue_json=json.dumps(CATALOGUE), expand_model=LIMITED, review_model=LIMITED
    )
    return ModelCatalogue.from_settings(settings)


def intent(model: str = LIMITED, input_tokens: int = 500, patience: float = 2.0) -> CallIntent:
    return CallIntent(
        model=model,
        tenant="acme",
        input_tokens=input_tokens,
        max_output_tokens=1_000,
        patience=patience,
    )


@dataclass
class ScriptedStore:
    """Answers takes from a script (admitted when it runs out) and records every call."""

    answers: deque[Taken] = field(default_factory=deque)
    takes: list[tuple[str, Draw | None, Draw | None, float]] = field(default_factory=list)
    settled: list[tuple[str, Draw | None, float]] = field(default_factory=list)
    failing: bool = False

    def take(
        self, model: str, requests: Draw | None, tokens: Draw | None, patience: float
    ) -> Taken:
        self.takes.append((model, requests, tokens, patience))
        return self.answers.popleft() if self.answers else Taken(admitted=True, wait=0.0)

    def settle(self, model: str, tokens: Draw | None, pause: float) -> None:
        if self.failing:
            raise ConnectionError("the database went away")
        self.settled.append((model, tokens, pause))


@dataclass
class Sleeps:
    seconds: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def gate(store: ScriptedStore, sleeps: Sleeps | None = None) -> RateLimitGate:
    return RateLimitGate(store, catalogue(), sleep=sleeps or Sleeps())


def test_a_bucket_keeps_a_minute_a_second_under_its_limit() -> None:
    bucket = Bucket.per_minute(120)
    assert bucket.capacity == 2.0
    assert bucket.capacity + 60 * bucket.rate == pytest.approx(118)
    draw = Draw(bucket, 1)
    assert draw.seconds == pytest.approx(1 / bucket.rate)
    assert draw.allowance == pytest.approx(1 / bucket.rate)  # one more fits in a full bucket
    # Larger than the whole bucket: it goes only when the bucket is full.
    assert Draw(bucket, 5).allowance == 0.0


def test_a_model_without_limits_costs_no_round_trip() -> None:
    store = ScriptedStore()
    assert gate(store).admit(intent("unlimited")) is UNCONDITIONAL
    assert gate(store).admit(intent("outside-the-catalogue")) is UNCONDITIONAL
    assert store.takes == []


def test_each_call_takes_a_request_and_its_most_tokens_at_once() -> None:
    store = ScriptedStore()
    gate(store).admit(intent(input_tokens=500))
    gate(store).admit(intent("requests-only"))

    (model, requests, tokens, patience), (_, only_requests, no_tokens, _) = store.takes
    assert (model, patience) == (LIMITED, 2.0)
    assert requests == Draw(Bucket.per_minute(120), 1)
    assert tokens == Draw(Bucket.per_minute(60_000), 1_500)  # prompt estimate + output cap
    assert only_requests == Draw(Bucket.per_minute(60), 1) and no_tokens is None


def test_a_short_wait_is_waited_here_with_the_patience_left() -> None:
    store = ScriptedStore(deque([Taken(False, 0.5), Taken(False, 1.0)]))
    sleeps = Sleeps()

    gate(store, sleeps=sleeps).admit(intent(patience=2.0))

    assert sleeps.seconds == [0.5, 1.0]
    assert [take[3] for take in store.takes] == [2.0, 1.5, 0.5]


def test_a_caller_whose_turn_is_further_off_is_sent_away_with_its_time() -> None:
    store = ScriptedStore(deque([Taken(False, 0.5), Taken(False, 7.25)]))
    sleeps = Sleeps()

    with pytest.raises(LLMCapacityWait) as raised:
        gate(store, sleeps=sleeps).admit(intent(patience=2.0))

    assert raised.value.retry_after == 7.25
    assert raised.value.calls == []
    assert raised.value.code == "llm_capacity_wait" and raised.value.transient
    assert sleeps.seconds == [0.5]


def test_settling_corrects_the_token_estimate_with_the_usage() -> None:
    store = ScriptedStore()
    admission = gate(store).admit(intent(input_tokens=500))

    admission.settle(400, 300)

    tokens = Bucket.per_minute(60_000)
    assert store.settled == [(LIMITED, Draw(tokens, -800), 0.0)]


def test_a_failed_request_gives_its_tokens_back() -> None:
    store = ScriptedStore()
    gate(store).admit(intent(input_tokens=500)).settle(0, 0)
    assert store.settled == [(LIMITED, Draw(Bucket.per_minute(60_000), -1_500), 0.0)]


def test_nothing_to_settle_costs_no_round_trip() -> None:
    store = ScriptedStore()
    gate(store).admit(intent("requests-only")).settle(400, 300)
    assert store.settled == []


def test_a_provider_nearly_out_pauses_the_model() -> None:
    store = ScriptedStore()
    admission = gate(store).admit(intent("requests-only"))
    nearly_out = ProviderLimits(requests=Headroom(remaining=0, reset_seconds=30.0, limit=60))

    admission.settle(400, 300, nearly_out)

    ((model, tokens, pause),) = store.settled
    assert (model, tokens) == ("requests-only", None)
    assert pause == pytest.approx(0.5)


def test_a_429_pauses_the_model_for_its_retry_after() -> None:
    store = ScriptedStore()
    gate(store).admit(intent("requests-only")).settle(0, 0, ProviderLimits(retry_after=3.0))
    assert store.settled == [("requests-only", None, 3.0)]


def test_a_settlement_lost_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    store = ScriptedStore(failing=True)
    admission = gate(store).admit(intent())

    with caplog.at_level(logging.WARNING):
        admission.settle(10, 10)

    assert "could not settle the rate limit of limited" in caplog.text


@dataclass
class Recorded:
    settled: list[tuple[int, int]] = field(default_factory=list)

    def settle(
        self, input_tokens: int, output_tokens: int, provider: ProviderLimits | None = None
    ) -> None:
        self.settled.append((input_tokens, output_tokens))


@dataclass
class RecordingGate:
    refuse: bool = False
    admissions: list[Recorded] = field(default_factory=list)

    def admit(self, intent: CallIntent) -> Admission:
        if self.refuse:
            raise LLMCapacityWait("no room", retry_after=1.0)
        self.admissions.append(Recorded())
        return self.admissions[-1]


def test_gates_admit_through_each_and_settle_each() -> None:
    first, second = RecordingGate(), RecordingGate()

    Gates(first, second).admit(intent()).settle(7, 8)

    assert first.admissions[0].settled == second.admissions[0].settled == [(7, 8)]


def test_a_gate_refusing_settles_those_already_passed_as_unused() -> None:
    first, refusing, never = RecordingGate(), RecordingGate(refuse=True), RecordingGate()

    with pytest.raises(LLMCapacityWait):
        Gates(first, refusing, never).admit(intent())

    assert first.admissions[0].settled == [(0, 0)]
    assert never.admissions == []
