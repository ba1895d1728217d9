"""The in-process pipeline the stage tests drive by hand: PostgreSQL and the offline LLM
over HTTP are real; each test delivers the stage messages itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.db.engine import session_factory
from consensus_engine.devtools.offline_llm import OfflineLLMServer
from consensus_engine.llm import LLMClient
from consensus_engine.pipeline.retries import RetryPolicy
from consensus_engine.pipeline.stages import Pipeline, StageSettings
from consensus_engine.pipeline.work import Thresholds

SETTINGS = StageSettings(
    thresholds=Thresholds(approve=0.8, revise=0.6, quorum=None),
    retries=RetryPolicy(max_retries=3, initial_backoff=0.1, multiplier=2.0, max_backoff=2.0),
    stale_after=30.0,
    working_limit=60.0,
)


def settings_with(**overrides: Any) -> StageSettings:
    """``SETTINGS`` with some values replaced, each named by its field in ``StageSettings``
    or in one of its parts (``quorum=4``, ``max_retries=1``, ``stale_after=5.0``)."""
    rest = dict(overrides)
    parts: dict[str, Any] = {}
    for name, part in (("thresholds", SETTINGS.thresholds), ("retries", SETTINGS.retries)):
        own = {f.name for f in fields(part)} & rest.keys()
        parts[name] = replace(part, **{key: rest.pop(key) for key in own})
    return replace(SETTINGS, **parts, **rest)  # an unknown name raises TypeError


@pytest.fixture(scope="module")
def _llm_server() -> Iterator[OfflineLLMServer]:
    with OfflineLLMServer(seed=7) as server:
        yield server


@pytest.fixture
def llm_server(_llm_server: OfflineLLMServer) -> OfflineLLMServer:
    """The module's server with no queued faults and zeroed statistics."""
    _llm_server.reset()
    return _llm_server


@pytest.fixture(scope="module")
def llm(_llm_server: OfflineLLMServer) -> Iterator[LLMClient]:
    with LLMClient(api_key="offline", base_url=_llm_server.base_url, timeout_seconds=10) as client:
        yield client


@pytest.fixture
def sessions(db_session: Session, db_engine: Engine) -> sessionmaker[Session]:
    """Sessions on the migrated database; asking for ``db_session`` empties it afterwards."""
    return session_factory(db_engine)


PipelineFactory = Callable[..., Pipeline]


@pytest.fixture
def make_pipeline(
    sessions: sessionmaker[Session], llm: LLMClient, llm_server: OfflineLLMServer
) -> PipelineFactory:
    """``make_pipeline(**overrides)`` as :func:`settings_with` takes them; the LLM server
    is reset first."""

    def make(**overrides: Any) -> Pipeline:
        return Pipeline(sessions, llm, settings_with(**overrides))

    return make


@pytest.fixture
def pipeline(make_pipeline: PipelineFactory) -> Pipeline:
    return make_pipeline()
