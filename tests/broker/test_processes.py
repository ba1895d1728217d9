"""Real ``dramatiq`` worker processes (``-p 1 -t 2``) running ``worker_app``.

The test process publishes; the workers append lines to an events file (see
``worker_app``), which the tests poll, never for longer than a set time.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import pytest

from brokers.pubsub import PubSubBroker
from consensus_engine.devtools.process import ChildProcess, spawn

from .conftest import Backend, BrokerFactory, pull_handed_back

pytestmark = pytest.mark.timeout(180)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
QUEUE = "jobs"


@dataclass(frozen=True)
class Event:
    kind: str
    tag: str
    pid: int
    at: float


class Scenario:
    """Worker processes, a producer and the events file of one test."""

    def __init__(self, tmp_path: Path, host: str, namespace: str, lease_s: int) -> None:
        self.events_path = tmp_path / "events.log"
        self.events_path.touch()
        self._tmp_path = tmp_path
        self.env = {
            **os.environ,
            "PUBSUB_EMULATOR_HOST": host,
            "CE_TEST_NAMESPACE": namespace,
            "CE_TEST_EVENTS": str(self.events_path),
            "CE_TEST_LEASE_S": str(lease_s),
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
            "PYTHONUNBUFFERED": "1",
        }
        self.workers: list[ChildProcess] = []

    def start_worker(self) -> ChildProcess:
        """``python -m dramatiq worker_app -p 1 -t 2`` in its own process group."""
        log = self._tmp_path / f"worker-{len(self.workers)}.log"
        command = [sys.executable, "-m", "dramatiq", "worker_app", "-p", "1", "-t", "2"]
        worker = ChildProcess(spawn(command, env=self.env, log_path=log, cwd=ROOT), log, "worker")
        self.workers.append(worker)
        return worker

    def events(self) -> list[Event]:
        events = []
        for line in self.events_path.read_text().splitlines():
            kind, tag, pid, at = line.split()
            events.append(Event(kind, tag, int(pid), float(at)))
        return events

    def wait_for(
        self, done: Callable[[list[Event]], bool], timeout: float, what: str
    ) -> list[Event]:
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if done(events):
                return events
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {w.log_path.name}\n{w.tail()}" for w in self.workers)
                pytest.fail(f"no {what} within {timeout} s; events: {events!r}\n{logs}")
            time.sleep(0.1)

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()


@pytest.fixture
def scenario_on(tmp_path: Path, pubsub_namespace: str) -> Iterator[Callable[..., Scenario]]:
    scenarios: list[Scenario] = []

    def make(host: str, *, lease_s: int) -> Scenario:
        scenario = Scenario(tmp_path, host, pubsub_namespace, lease_s)
        scenarios.append(scenario)
        return scenario

    yield make
    for scenario in scenarios:
        scenario.close()


def send(producer: PubSubBroker, tag: str, seconds: float) -> dramatiq.Message[Any]:
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=QUEUE, actor_name="work", args=(tag, seconds), kwargs={}, options={}
    )
    return producer.enqueue(message)  # type: ignore[no-any-return]


def started(events: list[Event], pids: set[int]) -> list[str]:
    return [e.tag for e in events if e.kind == "start" and e.pid in pids]


def test_killed_worker_process_loses_no_message(
    faithful_pubsub: Backend, make_broker: BrokerFactory, scenario_on: Callable[..., Scenario]
) -> None:
    """SIGKILL mid-task: once its lease (10 s) runs out, another worker process
    gets the message and completes it. (Google's emulator jar goes on handing
    redeliveries to the dead worker's stream for one to three more lease
    periods, so this runs on ``faithful_pubsub`` too.)"""
    lease_s = 10
    scenario = scenario_on(faithful_pubsub.host, lease_s=lease_s)
    producer = make_broker(emulator_host=faithful_pubsub.host, lease_extension=lease_s)
    producer.declare_queue(QUEUE)

    doomed = scenario.start_worker()
    send(producer, "orphan", 4)
    scenario.wait_for(lambda events: any(e.kind == "start" for e in events), 60, "start")
    doomed_pids = doomed.pids()
    killed_at = time.time()
    doomed.kill()
    assert doomed.popen.returncode == -signal.SIGKILL

    rescuer = scenario.start_worker()
    events = scenario.wait_for(
        lambda events: any(e.kind == "done" for e in events), lease_s + 40, "completion"
    )

    [done] = [e for e in events if e.kind == "done"]
    assert done.pid not in doomed_pids
    assert done.pid in rescuer.pids()
    [first, second] = [e for e in events if e.kind == "start"]
    assert first.pid in doomed_pids
    assert second.pid == done.pid
    assert second.at - killed_at < lease_s + 20
    assert rescuer.stop(timeout=30) == 0


def test_sigterm_drains_and_hands_back_unstarted_messages(
    faithful_pubsub: Backend, make_broker: BrokerFactory, scenario_on: Callable[..., Scenario]
) -> None:
    """SIGTERM: the two tasks under way finish, the process exits 0, and the
    messages it had prefetched are deliverable again as soon as it is gone
    (leases would keep them away for up to 10 s), so a second worker runs them,
    each once. (On a server that honours nacks after a stream closed; see
    ``faithful_pubsub`` in conftest.)

    Four messages, the prefetch of ``-t 2``: with more, one could be on its way
    to the closing stream when the drained tasks' acks free room, and such a
    message comes back only when its lease ends, whatever the broker does."""
    lease_s = 10
    scenario = scenario_on(faithful_pubsub.host, lease_s=lease_s)
    producer = make_broker(emulator_host=faithful_pubsub.host, lease_extension=lease_s)
    producer.declare_queue(QUEUE)

    draining = scenario.start_worker()
    tags = [f"m{index}" for index in range(4)]
    for tag in tags:
        send(producer, tag, 2)
    scenario.wait_for(lambda events: len(started(events, draining.pids())) >= 2, 60, "2 starts")
    draining_pids = draining.pids()
    assert draining.stop(timeout=60) == 0, draining.tail()

    events = scenario.events()
    in_flight = started(events, draining_pids)
    assert len(in_flight) == 2
    assert sorted(e.tag for e in events if e.kind == "done") == sorted(in_flight)

    # Everything else is back with Pub/Sub now: a plain Pull gets it at once.
    path = producer.provisioner.subscription_path(producer.queues[QUEUE].subscription)
    handed_back = pull_handed_back(faithful_pubsub.host, path, expected=2)
    assert sorted(handed_back) == sorted(set(tags) - set(in_flight))

    second = scenario.start_worker()
    events = scenario.wait_for(
        lambda events: sum(e.kind == "done" for e in events) >= len(tags), 40, "all done"
    )
    assert Counter(e.tag for e in events if e.kind == "start") == Counter(tags)
    assert Counter(e.tag for e in events if e.kind == "done") == Counter(tags)
    assert {e.pid for e in events if e.tag in handed_back} <= second.pids()
    assert second.stop(timeout=30) == 0
