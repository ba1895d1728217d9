"""Offline LLM servers (one per kind, per session) and a factory of clients pointed at them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from consensus_engine.devtools.offline_llm import OfflineLLMServer
from consensus_engine.devtools.offline_llm.grammar import LLAMA_CPP_MAX_REPETITION
from consensus_engine.llm.client import LLMClient
from consensus_engine.llm.records import ApiMode

API_KEY = "test-offline-key"


@pytest.fixture(scope="session")
def _plain_server() -> Iterator[OfflineLLMServer]:
    with OfflineLLMServer(api_key=API_KEY, seed=11) as server:
        yield server


@pytest.fixture(scope="session")
def _llama_like_server() -> Iterator[OfflineLLMServer]:
    with OfflineLLMServer(
        api_key=API_KEY,
        seed=11,
        reject_json_schema=True,
        no_responses=True,
        max_grammar_repetition=LLAMA_CPP_MAX_REPETITION,
    ) as server:
        yield server


@pytest.fixture
def server(_plain_server: OfflineLLMServer) -> OfflineLLMServer:
    """A well-behaved server with no queued faults and fresh statistics."""
    _plain_server.reset()
    return _plain_server


@pytest.fixture
def llama_like_server(_llama_like_server: OfflineLLMServer) -> OfflineLLMServer:
    """Behaves like llama.cpp: 500 on json_schema output, 404 on /v1/responses, and a
    json_object schema it cannot compile refused."""
    _llama_like_server.reset()
    return _llama_like_server


ClientFactory = Callable[..., LLMClient]


@pytest.fixture
def make_client(server: OfflineLLMServer) -> Iterator[ClientFactory]:
    """``make_client(mode, target=, api_key=, timeout_seconds=, repair_attempts=)``."""
    clients: list[LLMClient] = []

    def make(
        mode: ApiMode = "auto",
        *,
        target: OfflineLLMServer | None = None,
        api_key: str = API_KEY,
        timeout_seconds: float = 10.0,
        repair_attempts: int = 1,
    ) -> LLMClient:
        client = LLMClient(
            api_key=api_key,
            base_url=(target or server).base_url,
            mode=mode,
            timeout_seconds=timeout_seconds,
            repair_attempts=repair_attempts,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
