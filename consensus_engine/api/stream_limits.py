"""Caps on open event streams: per API key, and per API replica.

A stream stays open until its run ends, holding a task and reading the database now and
then, while the rate limit counts it once; so one key could otherwise open streams
without end. The replica's cap bounds them all, whatever the number of keys.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from consensus_engine.api.open_limits import OpenLimit
from consensus_engine.settings import Settings

_REPLICA = "replica"
"""The one key of the per-replica count."""


class StreamLimits:
    def __init__(self, per_key: int, per_replica: int) -> None:
        self._per_key = OpenLimit(
            per_key,
            "TOO_MANY_STREAMS",
            f"this API key already has {per_key} event streams open; close one first",
        )
        self._per_replica = OpenLimit(
            per_replica,
            "TOO_MANY_STREAMS",
            f"this server already has {per_replica} event streams open; try again later",
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamLimits:
        return cls(settings.api_max_streams_per_key, settings.api_max_streams_per_replica)

    @contextlib.contextmanager
    def held(self, key_id: str) -> Iterator[None]:
        """Count one stream of ``key_id`` for the block; 429 when a cap is reached."""
        with self._per_key.held(key_id), self._per_replica.held(_REPLICA):
            yield
