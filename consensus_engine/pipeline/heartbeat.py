"""Claim heartbeats: while a step's work runs, its claim is touched every few seconds.

A claim is presumed abandoned once its heartbeat has been silent for the claim timeout,
however long the step's time limit: a crashed worker's steps are taken over within
seconds, and a live worker's never. One thread per process beats for every step the
process holds. A step still running past ``give_up_after`` (its thread stuck where no
interrupt reaches) is no longer beaten for, so even such a step is taken over in the end.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.db import claims

logger = logging.getLogger(__name__)


class Heartbeat:
    """Beats every ``interval`` seconds for the claims held inside :meth:`beating`."""

    def __init__(
        self, sessions: sessionmaker[Session], *, interval: float, give_up_after: float
    ) -> None:
        self._sessions = sessions
        self._interval = interval
        self._give_up_after = give_up_after
        self._lock = threading.Lock()
        self._held: dict[claims.Holding, float] = {}
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def beating(self, run_id: uuid.UUID, step_name: str, holder: str) -> Iterator[None]:
        """Keep the claim of ``holder`` on the step alive until the block ends."""
        holding = claims.Holding(run_id, step_name, holder)
        with self._lock:
            self._held[holding] = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._beat, name="claim-heartbeat", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(holding, None)

    def _beat(self) -> None:
        """Touch the live claims until none is held; the next claim starts a new thread."""
        while True:
            time.sleep(self._interval)
            now = time.monotonic()
            with self._lock:
                if not self._held:
                    self._thread = None
                    return
                live = [h for h, since in self._held.items() if now - since < self._give_up_after]
            if not live:
                continue
            try:
                with self._sessions.begin() as session:
                    claims.touch(session, live)
            except SQLAlchemyError as error:  # the database is away: the claims go stale
                logger.warning("Claim heartbeat failed: %s.", type(error).__name__)
