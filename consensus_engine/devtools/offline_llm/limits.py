"""The offline server's enforced rate limits: requests and tokens per sliding minute.

The strictest reading of "N per minute": a request is refused (429 with ``Retry-After``)
while the minute before it already holds N accepted requests, or N tokens. Tokens are
those the answers report (prompt plus completion), counted at the request's arrival.
Every generation answer carries OpenAI's ``x-ratelimit-*`` headers: the limit, what is
left, and how long until the window is empty again. Accepted requests are kept (times
only) so that statistics can show the rate a test really achieved.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

WINDOW_SECONDS = 60.0


@dataclass
class Entry:
    """One accepted request."""

    at: float
    tokens: int = 0


@dataclass(frozen=True)
class Verdict:
    retry_after: float | None
    """Seconds until the request would be accepted; ``None``: it was."""
    headers: dict[str, str]
    entry: Entry | None = None


@dataclass
class SlidingWindowLimits:
    rpm: int | None
    tpm: int | None
    refused: int = 0
    _window: deque[Entry] = field(default_factory=deque)
    _accepted: list[Entry] = field(default_factory=list)

    def admit(self, now: float) -> Verdict:
        """Accept the request arriving ``now`` (monotonic seconds), or say how long to wait."""
        while self._window and self._window[0].at <= now - WINDOW_SECONDS:
            self._window.popleft()
        requests, tokens = len(self._window), sum(entry.tokens for entry in self._window)
        full = (self.rpm is not None and requests >= self.rpm) or (
            self.tpm is not None and tokens >= self.tpm
        )
        if full:
            self.refused += 1
            wait = self._window[0].at + WINDOW_SECONDS - now
            return Verdict(wait, self._headers(now, requests, tokens, wait))
        entry = Entry(now)
        self._window.append(entry)
        self._accepted.append(entry)
        return Verdict(None, self._headers(now, requests + 1, tokens, None), entry)

    def stats(self) -> dict[str, object]:
        """The limits, the 429s sent, and the accepted requests: how many, the seconds from
        the first to the last, how many in each minute since the first, and the most in any
        one-minute window."""
        times = [entry.at for entry in self._accepted]
        first = times[0] if times else 0.0
        per_minute: list[int] = []
        for at in times:
            minute = int((at - first) // WINDOW_SECONDS)
            per_minute.extend([0] * (minute + 1 - len(per_minute)))
            per_minute[minute] += 1
        busiest, start = 0, 0
        for end, at in enumerate(times):
            while times[start] <= at - WINDOW_SECONDS:
                start += 1
            busiest = max(busiest, end - start + 1)
        return {
            "rpm_limit": self.rpm,
            "tpm_limit": self.tpm,
            "refused": self.refused,
            "accepted": len(times),
            "tokens": sum(entry.tokens for entry in self._accepted),
            "span_seconds": round(times[-1] - first, 3) if times else 0.0,
            "per_minute": per_minute,
            "busiest_minute": busiest,
        }

    def reset(self) -> None:
        self.refused = 0
        self._window.clear()
        self._accepted.clear()

    def _headers(
        self, now: float, requests: int, tokens: int, retry_after: float | None
    ) -> dict[str, str]:
        empty_in = self._window[-1].at + WINDOW_SECONDS - now if self._window else 0.0
        headers: dict[str, str] = {}
        for kind, limit, used in (("requests", self.rpm, requests), ("tokens", self.tpm, tokens)):
            if limit is not None:
                headers[f"x-ratelimit-limit-{kind}"] = str(limit)
                headers[f"x-ratelimit-remaining-{kind}"] = str(max(limit - used, 0))
                headers[f"x-ratelimit-reset-{kind}"] = f"{max(empty_in, 0.0):.3f}s"
        if retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(retry_after)))
            headers["retry-after-ms"] = str(max(1, math.ceil(retry_after * 1000)))
        return headers
