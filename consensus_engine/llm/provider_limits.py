"""What a provider says about its rate limits in the headers of each answer.

OpenAI and compatible servers send ``x-ratelimit-limit-*``, ``x-ratelimit-remaining-*``
and ``x-ratelimit-reset-*`` for requests and tokens with every answer, and
``Retry-After`` with a 429. The shared limiter reads them so that every worker slows
down when the provider is nearly out, instead of finding out from 429s.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class Headroom:
    """One of the provider's budgets (requests or tokens) as it stood after one answer."""

    remaining: int
    reset_seconds: float
    """Until the budget is whole again."""
    limit: int | None = None

    def wait_for(self, need: float) -> float:
        """Seconds until ``need`` units are free again, the budget refilling evenly."""
        if self.remaining >= need:
            return 0.0
        if self.limit is None or self.limit <= self.remaining:
            return self.reset_seconds
        per_unit = self.reset_seconds / (self.limit - self.remaining)
        return min(self.reset_seconds, (need - self.remaining) * per_unit)


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    requests: Headroom | None = None
    tokens: Headroom | None = None
    retry_after: float | None = None
    """From a 429: how long the provider asked us to wait."""

    def pause(self, tokens_needed: int) -> float:
        """How long nobody should call the model: until the provider has room for one
        more call of ``tokens_needed`` tokens (0: it has)."""
        waits = [self.retry_after or 0.0]
        if self.requests is not None:
            waits.append(self.requests.wait_for(1))
        if self.tokens is not None:
            waits.append(self.tokens.wait_for(tokens_needed))
        return max(waits)


def read_limits(headers: Mapping[str, str]) -> ProviderLimits | None:
    """The limits an answer's headers report; ``None`` when they report none."""
    limits = ProviderLimits(
        requests=_headroom(headers, "requests"),
        tokens=_headroom(headers, "tokens"),
        retry_after=retry_after(headers),
    )
    return None if limits == ProviderLimits() else limits


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def duration_seconds(text: str) -> float | None:
    """``"6m0s"``, ``"1s"``, ``"20ms"`` (OpenAI's reset format) or plain seconds."""
    text = text.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def _headroom(headers: Mapping[str, str], kind: str) -> Headroom | None:
    remaining = _integer(headers.get(f"x-ratelimit-remaining-{kind}"))
    reset = headers.get(f"x-ratelimit-reset-{kind}")
    reset_seconds = duration_seconds(reset) if reset else None
    if remaining is None or reset_seconds is None:
        return None
    limit = _integer(headers.get(f"x-ratelimit-limit-{kind}"))
    return Headroom(remaining=remaining, reset_seconds=reset_seconds, limit=limit)


def _integer(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return max(int(value.strip()), 0)
    except ValueError:
        return None
