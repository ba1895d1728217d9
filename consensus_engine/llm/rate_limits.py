"""The providers' rate limits, shared by every worker process, replica and API replica.

A model the catalogue gives ``rpm`` or ``tpm`` has a bucket of requests and one of
tokens, kept where every process sees them (the database:
:mod:`consensus_engine.db.rate_limits`). Before each request the client's gate takes one
request and the call's most tokens (prompt estimate plus output cap) from both at once;
the tokens the answer reports correct the estimate. A bucket holds one second's share of
its limit and refills evenly, so that no one-minute window sees more than the limit, a
second's share kept in hand, whatever the windows a provider counts in. When a provider's
headers say it is nearly out, or a 429 says how long to wait, the model is paused for
everyone until it has room again.

Over the limit, callers queue: each is given a turn of its own, one draw's refill after
the last turn given out. A caller whose turn is within its patience waits for it here;
one whose turn is further off is sent away (``LLMCapacityWait``: a worker puts its step
back, a synchronous request answers 503) with a time to come back when its turn would be
near enough, these times spaced like the turns. So a crowd of waiters neither returns
at once nor leaves room unused: those sent away come back late or early by however long
a message takes, and the queue of those waiting here absorbs it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from consensus_engine.llm.catalogue import ModelCatalogue
from consensus_engine.llm.errors import LLMCapacityWait
from consensus_engine.llm.gate import UNCONDITIONAL, Admission, CallIntent
from consensus_engine.llm.provider_limits import ProviderLimits

if TYPE_CHECKING:
    from consensus_engine.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Bucket:
    capacity: float
    """Units that may go at once."""
    rate: float
    """Units returned per second."""

    @classmethod
    def per_minute(cls, limit: int) -> Bucket:
        """A burst of one second's share of ``limit``, refilled evenly so that no one-minute
        window sees more than the limit less one second's share: requests that reach the
        provider up to a second out of step still keep within its limit."""
        share = limit / 60
        return cls(capacity=share, rate=(limit - 2 * share) / 60)


@dataclass(frozen=True, slots=True)
class Draw:
    """``amount`` units from ``bucket`` (negative: given back)."""

    bucket: Bucket
    amount: float

    @property
    def seconds(self) -> float:
        """How long the bucket takes to earn the amount back."""
        return self.amount / self.bucket.rate

    @property
    def allowance(self) -> float:
        """How far behind (in seconds of refill) the bucket may be for the draw to pass: a
        draw larger than the whole bucket passes only when it is full."""
        return (self.bucket.capacity - min(self.amount, self.bucket.capacity)) / self.bucket.rate


@dataclass(frozen=True, slots=True)
class Taken:
    admitted: bool
    wait: float
    """When refused: seconds until this caller's turn."""


class BucketStore(Protocol):
    """Where the buckets live; every process that calls the provider must share it."""

    def take(
        self, model: str, requests: Draw | None, tokens: Draw | None, patience: float
    ) -> Taken:
        """Both draws, or neither: refused while either bucket lacks room or the model is
        paused. A refused caller is told its turn if it comes within ``patience`` seconds
        (it waits for it), else when to come back (see the module docstring)."""

    def settle(self, model: str, tokens: Draw | None, pause: float) -> None:
        """Correct the tokens taken by ``tokens``; pause the model for ``pause`` seconds."""


@dataclass(frozen=True, slots=True)
class ModelLimits:
    requests: Bucket | None
    tokens: Bucket | None

    @classmethod
    def of(cls, catalogue: ModelCatalogue, model: str) -> ModelLimits | None:
        """The model's buckets; ``None`` when the catalogue gives it no limit."""
        spec = catalogue.get(model)
        if spec is None or (spec.requests_per_minute is None and spec.tokens_per_minute is None):
            return None
        rpm, tpm = spec.requests_per_minute, spec.tokens_per_minute
        return cls(
            requests=Bucket.per_minute(rpm) if rpm else None,
            tokens=Bucket.per_minute(tpm) if tpm else None,
        )


class RateLimitGate:
    """A :class:`~consensus_engine.llm.gate.CallGate` over a shared :class:`BucketStore`.

    A caller waits here for its turn up to its intent's ``patience``, in all, and is told
    to come back (``LLMCapacityWait``) when its turn is further off. A model the catalogue
    gives no limit costs nothing.
    """

    def __init__(
        self,
        store: BucketStore,
        catalogue: ModelCatalogue,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._catalogue = catalogue
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings, store: BucketStore) -> RateLimitGate:
        """Limits from the model catalogue."""
        return cls(store, ModelCatalogue.from_settings(settings))

    def admit(self, intent: CallIntent) -> Admission:
        limits = ModelLimits.of(self._catalogue, intent.model)
        if limits is None:
            return UNCONDITIONAL
        requests = Draw(limits.requests, 1) if limits.requests else None
        tokens = Draw(limits.tokens, intent.tokens) if limits.tokens else None
        patience = intent.patience
        while True:
            taken = self._store.take(intent.model, requests, tokens, patience)
            if taken.admitted:
                return _Taken(self._store, intent, tokens)
            if taken.wait > patience:
                raise LLMCapacityWait(
                    f"The rate limit of {intent.model} is reached; try again in "
                    f"{taken.wait:.1f} s.",
                    retry_after=taken.wait,
                )
            self._sleep(taken.wait)
            patience -= taken.wait


@dataclass(frozen=True, slots=True)
class _Taken:
    store: BucketStore
    intent: CallIntent
    tokens: Draw | None

    def settle(
        self, input_tokens: int, output_tokens: int, provider: ProviderLimits | None = None
    ) -> None:
        """Give back (or take) the difference from the estimate, and pause the model when
        the provider is nearly out. Losing this only makes the buckets a little off, so a
        failure is logged, never raised into the call."""
        correction = None
        if self.tokens is not None and input_tokens + output_tokens != self.tokens.amount:
            correction = Draw(self.tokens.bucket, input_tokens + output_tokens - self.tokens.amount)
        pause = provider.pause(self.intent.tokens) if provider is not None else 0.0
        if correction is None and pause <= 0:
            return
        try:
            self.store.settle(self.intent.model, correction, pause)
        except Exception as error:
            logger.warning("could not settle the rate limit of %s: %r", self.intent.model, error)
