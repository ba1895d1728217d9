"""Fixtures of the pipeline tests: a migrated database, queues and an offline LLM per test."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from support import alembic_config
from support.pubsub import PubSubBackend
from support.stack import PipelineStack, StackFactory, pipeline_stack

from consensus_engine.llm.offline import OfflineLLMServer


@pytest.fixture
def make_stack(
    make_database: Callable[[], str],
    pubsub_emulator: PubSubBackend,
    pubsub_namespace: str,
    tmp_path: Path,
) -> Iterator[StackFactory]:
    """``make_stack(env={...}, **offline_llm_options)``: one stack per call, torn down after."""
    with contextlib.ExitStack() as stacks:

        def make(env: dict[str, str] | None = None, **llm_options: Any) -> PipelineStack:
            database_url = make_database()
            command.upgrade(alembic_config(database_url), "head")
            llm_options.setdefault("latency_ms", 50)
            llm = stacks.enter_context(OfflineLLMServer(**llm_options))
            return stacks.enter_context(
                pipeline_stack(
                    database_url=database_url,
                    emulator_host=pubsub_emulator.host,
                    namespace=pubsub_namespace,
                    tmp_path=tmp_path,
                    llm=llm,
                    env=env,
                )
            )

        yield make


@pytest.fixture
def stack(make_stack: StackFactory) -> PipelineStack:
    """The default stack: 50 ms LLM latency, no faults."""
    return make_stack()
