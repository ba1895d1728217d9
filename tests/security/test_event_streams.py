"""Event streams are bounded and wait for changes (issue 13, finding 4): each API key may
hold a few open and each replica a few hundred (429 beyond), and an idle stream does not
read the database several times a second, because PostgreSQL pushes each change.

The API runs in this process (``make_api``), so the statements it sends its database are
counted with a SQLAlchemy event; the test's own engine is left out of the count.
"""

from __future__ import annotations

import contextlib
import time
import urllib.error
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from api.test_runs import Event, EventStream, envelope, submit

from consensus_engine.db.models import StepProgress
from consensus_engine.devtools.loopback import Response
from consensus_engine.domain.runs import StepStatus

from .conftest import ApiFactory, ApiHarness

IDLE_SECONDS = 2.0
"""How long the idle streams are watched; shorter than the streams' slow re-read (5 s)."""
PUSH_SECONDS = 1.0
"""A pushed change reaches its stream within this."""
STATEMENTS_PER_READ = 2  # the run, then its steps


def follow(api: ApiHarness, run_id: str, tenant: str = "acme") -> EventStream:
    """An open stream whose snapshot has been read."""
    stream = EventStream(api, run_id, key=api.keys[tenant])
    snapshot = stream.next()
    assert snapshot is not None and snapshot.name == "snapshot", snapshot
    return stream


def refusal(api: ApiHarness, run_id: str, tenant: str = "acme") -> Response:
    """The answer to a stream request that must be refused."""
    try:
        stream = EventStream(api, run_id, key=api.keys[tenant])
    except urllib.error.HTTPError as error:
        return Response(error.code, dict(error.headers), error.read())
    stream.close()
    raise AssertionError("the stream was accepted")


def follow_once_released(api: ApiHarness, run_id: str, tenant: str = "acme") -> EventStream:
    """A stream, as soon as the server has noticed that a closed one is gone."""
    deadline = time.monotonic() + 5
    while True:
        try:
            return follow(api, run_id, tenant)
        except urllib.error.HTTPError as error:
            if error.code != 429 or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def too_many_streams(answer: Response, limit: int) -> dict[str, Any]:
    body = envelope(answer, 429, "TOO_MANY_STREAMS")
    assert body["details"] == {"limit": limit}
    assert {k.lower(): v for k, v in answer.headers.items()}["retry-after"] == "1"
    return body


@contextlib.contextmanager
def closing(streams: list[EventStream]) -> Iterator[list[EventStream]]:
    try:
        yield streams
    finally:
        for stream in streams:
            stream.close()


@contextlib.contextmanager
def api_statements(api: ApiHarness) -> Iterator[list[str]]:
    """Every statement the API sends its database while the block runs."""
    ours = api.stack.engine
    database = ours.url.database

    def seen(connection: sa.Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if connection.engine is not ours and connection.engine.url.database == database:
            statements.append(statement)

    statements: list[str] = []
    sa.event.listen(sa.Engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", seen)


def set_step(api: ApiHarness, run_id: str, step: str, status: StepStatus, attempts: int) -> None:
    """Change a step as a worker would, behind the API's back."""
    with api.stack.sessions.begin() as session:
        session.execute(
            sa.update(StepProgress)
            .where(StepProgress.run_id == uuid.UUID(run_id), StepProgress.step_name == step)
            .values(status=status, attempts=attempts)
        )


def timed(read: Callable[[], Event | None]) -> tuple[Event | None, float]:
    began = time.monotonic()
    event = read()
    return event, time.monotonic() - began


def listener(api: ApiHarness, *, not_: int | None = None) -> int:
    """The server process of the API's connection listening for run events, once there is
    one (other than ``not_``); fails if there are several."""
    query = sa.text(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND query = 'LISTEN run_events'"
    )
    deadline = time.monotonic() + 10
    while True:
        with api.stack.engine.connect() as connection:
            pids = [pid for pid in connection.scalars(query) if pid != not_]
        assert len(pids) <= 1, pids
        if pids:
            return int(pids[0])
        assert time.monotonic() < deadline, "the API does not listen for run events"
        time.sleep(0.05)


# -- caps -----------------------------------------------------------------------------------------


def test_a_key_gets_429_past_its_stream_cap_until_one_of_its_streams_ends(
    make_api: ApiFactory,
) -> None:
    api = make_api(api={"API_MAX_STREAMS_PER_KEY": 2})
    for _ in range(3):  # a request that fails keeps no slot
        envelope(api.acme.get(f"/v1/runs/{uuid.uuid4()}/events"), 404, "NOT_FOUND")
    run_id = submit(api.acme)
    with closing([follow(api, run_id), follow(api, run_id)]) as streams:
        body = too_many_streams(refusal(api, run_id), 2)
        assert "this API key" in body["message"]
        # Another key is not affected, and a refused request holds no slot.
        with closing([follow(api, submit(api.globex), "globex")]):
            too_many_streams(refusal(api, run_id), 2)

            streams[0].close()  # the client goes away
            streams.append(follow_once_released(api, run_id))
            too_many_streams(refusal(api, run_id), 2)

        # A stream that ends with its run gives its slot back too.
        assert api.acme.post(f"/v1/runs/{run_id}/cancel").status == 200
        assert streams[1].rest()[-1].name == "end"
        assert streams[2].rest()[-1].name == "end"
        other = submit(api.acme)
        with closing([follow_once_released(api, other), follow_once_released(api, other)]):
            too_many_streams(refusal(api, other), 2)


def test_a_replica_caps_the_streams_of_all_keys_together(make_api: ApiFactory) -> None:
    api = make_api(api={"API_MAX_STREAMS_PER_KEY": 2, "API_MAX_STREAMS_PER_REPLICA": 3})
    ours, theirs = submit(api.acme), submit(api.globex)
    with closing([follow(api, ours), follow(api, ours), follow(api, theirs, "globex")]) as streams:
        body = too_many_streams(refusal(api, theirs, "globex"), 3)
        assert "this server" in body["message"]
        too_many_streams(refusal(api, ours), 2)  # acme is at its own cap as well

        streams[0].close()
        streams.append(follow_once_released(api, theirs, "globex"))
        too_many_streams(refusal(api, ours), 3)  # the replica is full again


# -- push, not polling --------------------------------------------------------------------------


def test_idle_streams_leave_the_database_alone(make_api: ApiFactory) -> None:
    count = 5
    api = make_api(api={"API_MAX_STREAMS_PER_KEY": count})
    run_id = submit(api.acme)
    with closing([follow(api, run_id) for _ in range(count)]), api_statements(api) as statements:
        time.sleep(IDLE_SECONDS)  # a window in which nothing changes
        sent = len(statements)
    # Reading every 0.25 s, the streams would send count * 2 * 8 = 80 statements here; at
    # most one slow safety re-read each may fall into the window.
    assert sent <= count * STATEMENTS_PER_READ, statements


def test_a_change_reaches_an_idle_stream_at_once(make_api: ApiFactory) -> None:
    api = make_api()
    run_id = submit(api.acme)
    with closing([follow(api, run_id)]) as (stream,), api_statements(api) as statements:
        time.sleep(IDLE_SECONDS)
        assert len(statements) <= STATEMENTS_PER_READ, statements

        set_step(api, run_id, "expand", StepStatus.RUNNING, 1)
        event, took = timed(stream.next)
        assert event is not None and event.name == "step", event
        assert event.data["step_name"] == "expand" and event.data["status"] == "running"
        assert took < PUSH_SECONDS, took

        assert api.acme.post(f"/v1/runs/{run_id}/cancel").status == 200
        rest, took = timed(lambda: stream.rest()[-1])
        assert rest is not None and rest.name == "end", rest
        assert took < PUSH_SECONDS, took


def test_one_listener_per_api_and_streams_survive_losing_it(make_api: ApiFactory) -> None:
    api = make_api()
    run_id = submit(api.acme)
    with closing([follow(api, run_id) for _ in range(3)]) as streams:
        first = listener(api)  # one for the process, not one per stream
        with api.stack.engine.connect() as connection:
            connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})

        # Changed while the API may not be listening: the reconnection wakes every stream.
        set_step(api, run_id, "expand", StepStatus.RUNNING, 1)
        for stream in streams:
            event = stream.next()
            assert event is not None and event.data["status"] == "running", event

        listener(api, not_=first)
        set_step(api, run_id, "expand", StepStatus.COMPLETED, 1)
        event, took = timed(streams[0].next)
        assert event is not None and event.data["status"] == "completed", event
        assert took < PUSH_SECONDS, took
