"""The FastAPI application: ``consensus-engine api`` serves it with uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dramatiq
from dramatiq.brokers.stub import StubBroker
from fastapi import FastAPI
from google.api_core.exceptions import GoogleAPIError

from consensus_engine.api import errors
from consensus_engine.api.auth import KeyRing
from consensus_engine.api.limits import RateLimiter
from consensus_engine.api.metrics import ApiMetrics
from consensus_engine.api.middleware import ApiMiddleware
from consensus_engine.api.routes import control, events, ops, revisions, runs, sync
from consensus_engine.api.state import ApiState
from consensus_engine.db.engine import create_engine_from_settings, session_factory
from consensus_engine.pipeline.config import personas_from_settings
from consensus_engine.queues import build_pubsub_broker, job_queues
from consensus_engine.settings import Settings, get_settings

API_VERSION = "1.0.0"
logger = logging.getLogger(__name__)


def _broker(settings: Settings) -> dramatiq.Broker:
    """The publisher: Pub/Sub, or with ``PUBSUB_USE_MOCK`` a stub that only records.

    Where the settings allow creating resources (the emulator, development), they are
    created at start, so readiness reflects a usable queue from the first request.
    """
    if not settings.pubsub_use_mock:
        broker = build_pubsub_broker(settings)
        if settings.pubsub_creates_resources:
            try:
                broker.provision()
            except GoogleAPIError as error:
                logger.warning("could not create the Pub/Sub resources yet: %s", error)
        return broker
    stub = StubBroker()
    for queue_name in job_queues(settings):
        stub.declare_queue(queue_name)
    return stub


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    keys = KeyRing.from_settings(settings)
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine_from_settings(settings)
        broker = _broker(settings)
        app.state.api = ApiState(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            broker=broker,
            keys=keys,
            limiter=RateLimiter(settings.api_rate_limit_per_minute, settings.api_rate_limit_burst),
            metrics=metrics,
            personas=personas_from_settings(settings),
        )
        try:
            yield
        finally:
            broker.close()
            engine.dispose()

    app = FastAPI(
        title="Consensus Engine",
        version=API_VERSION,
        summary="Turn a rough idea into a reviewed decision.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(ApiMiddleware, max_body_bytes=settings.api_max_body_bytes, metrics=metrics)
    app.include_router(ops.router)
    # The order of the paths in the OpenAPI document.
    app.include_router(runs.router)
    app.include_router(events.router)
    app.include_router(revisions.router)
    app.include_router(control.router)
    app.include_router(sync.router)
    return app
