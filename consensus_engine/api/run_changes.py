"""Waking a run's event streams when the database says the run changed.

On PostgreSQL one connection per API process listens for the schema's notifications
(``db/run_events.py``), on the event loop, and wakes the streams that follow the run
named; every stream also re-reads on its own every ``REREAD_SECONDS``, so a notification
lost while the listener reconnects delays an event, never stalls a stream. After each
(re)connection every stream is woken once, for what changed while nobody listened.
Where nothing can be listened to (SQLite, pg8000 through the Cloud SQL connector) streams
read every ``POLL_SECONDS`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterable, Iterator

from sqlalchemy.engine import Engine

from consensus_engine.db import run_events

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25
"""Where changes are not pushed, how often a stream reads its run."""
REREAD_SECONDS = 5.0
"""Where changes are pushed, how often a stream reads its run all the same."""
RETRY_SECONDS = (0.5, 30.0)
"""The first and the longest wait before the listener connects again; doubled each failure."""


class RunWatch:
    """One stream's interest in one run."""

    def __init__(self, woken: asyncio.Event) -> None:
        self._woken = woken

    async def changed(self, within: float) -> None:
        """Return once the run may have changed: woken, or ``within`` seconds passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), within)
        self._woken.clear()  # before the caller reads, so a change during the read wakes again


class RunChanges:
    """The streams waiting on each run, and the listener that wakes them.

    Used on the event loop only, so it needs no lock.
    """

    def __init__(self, reread_seconds: float) -> None:
        self.reread_seconds = reread_seconds
        self._waiting: dict[uuid.UUID, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None

    @classmethod
    def start(cls, engine: Engine) -> RunChanges:
        """Listening where the database can push changes, polling elsewhere; on the loop."""
        if not run_events.can_listen(engine):
            return cls(POLL_SECONDS)
        changes = cls(REREAD_SECONDS)
        changes._listener = asyncio.create_task(changes._listen(engine), name="run-events")
        return changes

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    @contextlib.contextmanager
    def watch(self, run_id: uuid.UUID) -> Iterator[RunWatch]:
        """Be woken by the run's changes until the block ends; enter it before the first read."""
        woken = asyncio.Event()
        self._waiting.setdefault(run_id, set()).add(woken)
        try:
            yield RunWatch(woken)
        finally:
            waiting = self._waiting[run_id]
            waiting.discard(woken)
            if not waiting:
                del self._waiting[run_id]

    def wake(self, run_ids: Iterable[uuid.UUID]) -> None:
        for run_id in run_ids:
            for woken in self._waiting.get(run_id, ()):
                woken.set()

    async def _listen(self, engine: Engine) -> None:
        retry = RETRY_SECONDS[0]
        while True:
            try:
                # In a thread, as connecting blocks; abandoned, not awaited, on shutdown.
                listening = await asyncio.to_thread(run_events.listen, engine)
            except run_events.ListenFailed as error:
                logger.warning(
                    "cannot listen for run changes (%s); event streams re-read every %g s "
                    "meanwhile, next try in %g s",
                    error,
                    self.reread_seconds,
                    retry,
                )
            else:
                retry = RETRY_SECONDS[0]
                try:
                    self.wake(list(self._waiting))
                    await self._follow(listening)
                except run_events.ListenFailed as error:
                    logger.warning("lost the connection listening for run changes (%s)", error)
                finally:
                    listening.close()
            await asyncio.sleep(retry)
            retry = min(2 * retry, RETRY_SECONDS[1])

    async def _follow(self, listening: run_events.Listening) -> None:
        """Wake the streams of every run notified, until the connection fails."""
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        socket = listening.fileno()
        loop.add_reader(socket, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                self.wake(listening.received())
        finally:
            loop.remove_reader(socket)
