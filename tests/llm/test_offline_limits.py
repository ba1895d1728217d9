"""The offline server's enforced limits: refused past them, with a provider's headers."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any

import pytest

from consensus_engine.devtools.loopback import http_request
from consensus_engine.devtools.offline_llm import (
    OfflineLLMServer,
    OfflineOptions,
    add_cli_arguments,
)
from consensus_engine.devtools.offline_llm.limits import SlidingWindowLimits

CHAT = {"model": "m", "messages": [{"role": "user", "content": "Review my idea, please."}]}


@pytest.fixture
def server() -> Iterator[OfflineLLMServer]:
    with OfflineLLMServer(rpm_limit=3, tpm_limit=100_000) as running:
        yield running


def chat(server: OfflineLLMServer) -> tuple[int, dict[str, str], dict[str, Any]]:
    reply = http_request(
        f"{server.base_url}/chat/completions",
        method="POST",
        body=json.dumps(CHAT).encode(),
        headers={"content-type": "application/json"},
    )
    return reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.json()


def test_requests_past_the_limit_are_refused_with_retry_after(server: OfflineLLMServer) -> None:
    answers = [chat(server) for _ in range(4)]

    assert [status for status, _, _ in answers] == [200, 200, 200, 429]
    assert [h["x-ratelimit-remaining-requests"] for _, h, _ in answers] == ["2", "1", "0", "0"]
    assert {h["x-ratelimit-limit-requests"] for _, h, _ in answers} == {"3"}
    _, refused, body = answers[3]
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert 59 <= int(refused["retry-after"]) <= 60
    assert 55_000 < int(refused["retry-after-ms"]) <= 60_000
    assert float(refused["x-ratelimit-reset-requests"].removesuffix("s")) <= 60
    # Tokens are those the answers used, counted against the tokens limit.
    used = sum(b["usage"]["total_tokens"] for _, _, b in answers[:3])
    assert int(answers[2][1]["x-ratelimit-remaining-tokens"]) == 100_000 - (
        used - answers[2][2]["usage"]["total_tokens"]
    )

    rate = server.stats()["rate"]
    assert (rate["refused"], rate["accepted"], rate["busiest_minute"]) == (1, 3, 3)
    assert rate["per_minute"] == [3] and rate["tokens"] == used
    assert server.stats()["requests"]["/v1/chat/completions"] == {"ok": 3, "rate_limited": 1}

    server.reset()
    assert server.stats()["rate"]["accepted"] == 0
    assert chat(server)[0] == 200


def test_a_request_leaves_the_window_a_minute_after_it_came() -> None:
    limits = SlidingWindowLimits(rpm=2, tpm=None)
    assert limits.admit(0.0).retry_after is None
    assert limits.admit(30.0).retry_after is None
    assert limits.admit(59.5).retry_after == pytest.approx(0.5)
    assert limits.admit(60.0).retry_after is None  # the first has left
    assert limits.admit(89.0).retry_after == pytest.approx(1.0)
    stats = limits.stats()
    assert stats["per_minute"] == [2, 1] and stats["busiest_minute"] == 2
    assert stats["span_seconds"] == 60.0 and stats["refused"] == 2


def test_the_tokens_limit_counts_the_tokens_answers_used() -> None:
    limits = SlidingWindowLimits(rpm=None, tpm=1_000)
    first = limits.admit(0.0)
    assert first.entry is not None
    first.entry.tokens = 1_000
    refused = limits.admit(1.0)
    assert refused.retry_after == pytest.approx(59.0)
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    assert "x-ratelimit-limit-requests" not in refused.headers


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        OfflineOptions(rpm_limit=0)


def test_cli_limit_arguments() -> None:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)

    args = parser.parse_args(["--rpm-limit", "120", "--tpm-limit", "100000"])

    assert (args.rpm_limit, args.tpm_limit) == (120, 100_000)
    assert parser.parse_args([]).rpm_limit is None
