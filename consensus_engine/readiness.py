"""Readiness: whether the database and the broker answer, for the API's ``/ready`` and
the worker's ``/readyz`` alike.

The checks run side by side and the probe waits at most ``CHECK_TIMEOUT_SECONDS``,
so a dependency that hangs fails the probe instead of holding it. The answer names
each check and says only "ok" or "unavailable"; why a check failed goes to the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from http import HTTPStatus
from typing import Any

import dramatiq
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from brokers.pubsub import PubSubBroker

#: The longest a readiness probe waits for its checks, and each broker call for Pub/Sub.
CHECK_TIMEOUT_SECONDS = 3.0

Check = Callable[[], None]
logger = logging.getLogger(__name__)


def checks(
    engine: Callable[[], Engine],
    broker: dramatiq.Broker,
    *,
    consumed: Collection[str] | None = None,
) -> dict[str, Check]:
    """The database and broker checks, each raising when its dependency is unusable.

    ``engine`` is called at check time (a worker builds its engine on first use);
    ``consumed`` names the queues a worker consumes (None: a publisher).
    """
    return {
        "database": lambda: _database(engine()),
        "broker": lambda: _broker(broker, consumed),
    }


def _database(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))


def _broker(broker: dramatiq.Broker, consumed: Collection[str] | None) -> None:
    """Pub/Sub answers for what the broker uses; the in-process stub always does."""
    if isinstance(broker, PubSubBroker):
        broker.check_health(CHECK_TIMEOUT_SECONDS, consumed=consumed)


def report(named_checks: Mapping[str, Check]) -> tuple[HTTPStatus, dict[str, Any]]:
    """Run the checks: 200 and "ready" when all pass, else 503 and "failing"."""
    passed = _run_checks(named_checks, CHECK_TIMEOUT_SECONDS)
    ready = all(passed.values())
    body = {
        "status": "ready" if ready else "failing",
        "checks": {name: "ok" if ok else "unavailable" for name, ok in passed.items()},
    }
    return (HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE), body


def _run_checks(named_checks: Mapping[str, Check], timeout: float) -> dict[str, bool]:
    """Run the checks side by side; one that raises or outlasts ``timeout`` fails."""
    passed: dict[str, bool] = {}

    def run(name: str, check: Check) -> None:
        try:
            check()
        except Exception as error:
            # One line: a probe fails every few seconds while a dependency is down.
            logger.warning("Readiness check %r failed: %s", name, _first_line(error))
        else:
            passed[name] = True

    threads = {
        name: threading.Thread(target=run, args=(name, check), daemon=True)
        for name, check in named_checks.items()
    }
    for thread in threads.values():
        thread.start()
    deadline = time.monotonic() + timeout
    for name, thread in threads.items():
        thread.join(max(deadline - time.monotonic(), 0.0))
        if thread.is_alive():
            logger.warning("Readiness check %r did not answer within %.1f s.", name, timeout)
    return {name: passed.get(name, False) for name in named_checks}


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]
