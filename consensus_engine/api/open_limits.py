"""Caps on what a caller may hold open at once, in this process.

The rate limit counts requests as they arrive; a request that stays open (a synchronous
LLM call, an event stream) keeps costing after it is counted, so these caps count what is
open instead. Each API replica counts on its own.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator

from consensus_engine.api.errors import ApiError

RETRY_AFTER_SECONDS = 1


class OpenLimit:
    """At most ``limit`` open at once per key; beyond, 429 ``code`` with ``message``."""

    def __init__(self, limit: int, code: str, message: str) -> None:
        self.limit = limit
        self._code = code
        self._message = message
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()

    @contextlib.contextmanager
    def held(self, key: str) -> Iterator[None]:
        """One of ``key``'s slots for the block, given back however it ends."""
        with self._lock:
            if self._open[key] >= self.limit:
                raise ApiError(
                    429,
                    self._code,
                    self._message,
                    details={"limit": self.limit},
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            self._open[key] += 1
        try:
            yield
        finally:
            with self._lock:
                self._open[key] -= 1
                if not self._open[key]:
                    del self._open[key]  # keys seen once do not pile up
