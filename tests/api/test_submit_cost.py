"""What one submission costs the database: a single transaction, committed before the
publish, and nothing written after it unless the publish fails."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from consensus_engine.db.models import Run

from .conftest import ApiFactory, ApiHarness

IDEA = "Let people book a bike repair slot online and get a text when it is ready."


@dataclass(eq=False)  # hashable by identity, as the event registry needs
class Commits:
    """The COMMITs of every engine but the test stack's own (so: the API's)."""

    ignored: Engine
    count: int = 0

    def __call__(self, connection: Connection) -> None:
        if connection.engine is not self.ignored:
            self.count += 1

    def since(self, before: int) -> int:
        return self.count - before


@pytest.fixture
def api_commits(make_api: ApiFactory) -> Iterator[tuple[ApiHarness, Commits]]:
    api = make_api()
    commits = Commits(api.stack.engine)
    sa.event.listen(Engine, "commit", commits)
    try:
        yield api, commits
    finally:
        sa.event.remove(Engine, "commit", commits)


def last_enqueued_at(api: ApiHarness, run_id: str) -> object:
    with api.stack.sessions() as session:
        return session.scalar(sa.select(Run.last_enqueued_at).where(Run.id == uuid.UUID(run_id)))


def test_a_submission_commits_once(api_commits: tuple[ApiHarness, Commits]) -> None:
    api, commits = api_commits
    before = commits.count
    answers = [api.acme.post("/v1/full-review", {"idea": IDEA}) for _ in range(3)]

    assert [a.status for a in answers] == [202, 202, 202]
    assert commits.since(before) == 3
    for answer in answers:
        assert answer.json()["enqueued"] is True
        assert last_enqueued_at(api, answer.json()["run_id"]) is not None

    keyed = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    before = commits.count
    first = api.acme.post("/v1/runs", {"idea": IDEA}, headers=keyed)
    assert first.status == 202 and commits.since(before) == 1
    before = commits.count
    replay = api.acme.post("/v1/runs", {"idea": IDEA}, headers=keyed)
    assert replay.status == 200 and commits.since(before) == 0
    assert replay.json()["run_id"] == first.json()["run_id"]


def test_a_failed_publish_clears_the_enqueue_record(make_api: ApiFactory) -> None:
    """The run is recorded as sent in its own transaction; when the publish then fails the
    record goes, so the sweeper's never-sent rule (SWEEPER_REQUEUE_AFTER_SECONDS) finds it."""
    api = make_api(
        api={"PUBSUB_TOPIC": f"missing-{uuid.uuid4().hex[:8]}"} | {"PUBSUB_AUTO_CREATE": False}
    )
    answer = api.acme.post("/v1/full-review", {"idea": IDEA})

    assert answer.status == 202, answer.body
    assert answer.json()["enqueued"] is False
    assert last_enqueued_at(api, answer.json()["run_id"]) is None
