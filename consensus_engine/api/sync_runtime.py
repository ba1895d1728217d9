"""What the synchronous endpoints share in the API process: one LLM client and a small pool.

The work of a request runs on the pool and the request waits at most
``API_SYNC_TIMEOUT_SECONDS`` for it, asynchronously: a waiting request holds no thread, so
health checks and other routes never queue behind slow LLM calls. Each tenant may have
``API_SYNC_MAX_PER_TENANT`` requests open at once; more are refused with 429. Past the
timeout the client gets 504 ``TIMEOUT``. The work's LLM calls have timeouts short enough
that all of them fit in that time (a thread blocked in an HTTP call cannot be
interrupted), so work that started does not outlive its request by much; an LLM call that
times out also answers 504. Work still waiting for a free thread at that point is dropped.
The LLM calls pass the same gate as the workers' (``pipeline/call_gate.py``): the shared
rate limits, where a request waits up to ``LLM_CAPACITY_WAIT_SECONDS`` for room, then
answers 503 ``LLM_CAPACITY`` with ``Retry-After``; and the tenant's budget, where a call
whose worst case would cross a limit answers 429 ``BUDGET_EXCEEDED``.
Every LLM attempt is kept in ``llm_calls`` (without a run) so these requests show up in
cost accounting.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.api.errors import ApiError
from consensus_engine.api.llm_errors import llm_error, llm_not_configured
from consensus_engine.api.open_limits import OpenLimit
from consensus_engine.api.tenancy import budget_exceeded
from consensus_engine.db import writes
from consensus_engine.db.rate_limits import DatabaseBuckets
from consensus_engine.llm import (
    CallRecord,
    LLMClient,
    LLMConfigurationError,
    LLMError,
    LLMTimeoutError,
)
from consensus_engine.pipeline.budget_gate import CallOverBudget
from consensus_engine.pipeline.call_gate import call_gate
from consensus_engine.pipeline.refusals import BudgetExceeded
from consensus_engine.pipeline.service import check_budget
from consensus_engine.settings import Settings, SettingsError

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_CONCURRENT_REQUESTS = 16
"""Synchronous requests worked on at once per process; more wait (within their timeout)."""


class SyncRuntime:
    """The LLM client and the pool, for the life of the API process.

    The client is built on first use, so an API that never serves these endpoints needs
    no LLM configuration, and once, so all requests share one connection pool.
    """

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], buckets: DatabaseBuckets
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._buckets = buckets
        self._budgets = settings.budgets
        self._lock = threading.Lock()
        self._llm: LLMClient | None = None
        self._closed = False
        limit = settings.api_sync_max_per_tenant
        self._admission = OpenLimit(
            limit,
            "TOO_MANY_SYNC_REQUESTS",
            f"this tenant already has {limit} synchronous requests open; wait for one to "
            "finish, or use POST /v1/full-review",
        )
        self._pool = ThreadPoolExecutor(
            max_workers=MAX_CONCURRENT_REQUESTS, thread_name_prefix="sync-llm"
        )

    def llm(self) -> LLMClient:
        """The shared client; 503 ``LLM_NOT_CONFIGURED`` when the settings cannot build one."""
        with self._lock:
            if self._llm is None:
                try:
                    within = self._settings.api_sync_timeout_seconds
                    gate = call_gate(
                        self._settings, self._sessions, self._buckets, within_seconds=within
                    )
                    self._llm = LLMClient.from_settings(
                        self._settings, within_seconds=within, gate=gate
                    )
                except (LLMConfigurationError, SettingsError) as error:
                    logger.error(
                        "cannot build the LLM client for the synchronous endpoints: %s", error
                    )
                    raise llm_not_configured() from None
            return self._llm

    async def run(
        self, tenant: str, work: Callable[[], T], calls_of: Callable[[T], Sequence[CallRecord]]
    ) -> T:
        """``work()`` on the pool, awaited for at most ``API_SYNC_TIMEOUT_SECONDS``.

        ``calls_of`` picks the LLM attempts out of the result, to be recorded; an LLM
        failure becomes the client-facing error of ``api/llm_errors.py``.
        """

        def job() -> T:
            try:
                result = work()
            except LLMError as error:
                self._record(tenant, error.calls)
                raise
            self._record(tenant, calls_of(result))
            return result

        try:
            await asyncio.to_thread(self._check_budget, tenant)
        except BudgetExceeded as error:
            raise budget_exceeded(error) from None
        timeout = self._settings.api_sync_timeout_seconds
        with self._admission.held(tenant):
            future: Future[T] = self._pool.submit(job)
            try:
                return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
            except (TimeoutError, LLMTimeoutError):
                future.cancel()  # only succeeds if it never started
                raise ApiError(
                    504,
                    "TIMEOUT",
                    f"not done within {timeout:g} s; POST /v1/full-review runs long work in "
                    "the background",
                    details={"timeout_seconds": timeout},
                ) from None
            except CallOverBudget as error:
                raise budget_exceeded(error) from None
            except LLMError as error:
                logger.warning("synchronous LLM work failed: %s (%s)", error.code, error.message)
                raise llm_error(error) from None

    def _check_budget(self, tenant: str) -> None:
        """Synchronous calls count against the tenant's budget like a run's."""
        with self._sessions() as session:
            check_budget(session, self._budgets, tenant)

    def _record(self, tenant: str, calls: Sequence[CallRecord]) -> None:
        """Keep each attempt for the tenant's cost accounting; losing them must not fail the
        request.

        Work that outlived its request can end after the API shut down; its engine is gone
        then.
        """
        if not calls or self._closed:
            return
        try:
            with self._sessions.begin() as session:
                writes.record_llm_calls(session, None, calls, tenant=tenant)
        except SQLAlchemyError as error:
            logger.warning("could not store %d synchronous LLM call(s): %s", len(calls), error)

    def close(self) -> None:
        """Drop queued work and the client; work already running ends on its own."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None
