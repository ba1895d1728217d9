"""The FastAPI application: ``consensus-engine api`` serves it with uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from consensus_engine.api import errors
from consensus_engine.api.auth import KeyRing
from consensus_engine.api.limits import RateLimiter
from consensus_engine.api.metrics import ApiMetrics, serving
from consensus_engine.api.middleware import ApiMiddleware
from consensus_engine.api.routes import (
    control,
    events,
    me,
    ops,
    revisions,
    runs,
    sync,
    usage,
    webhooks,
)
from consensus_engine.api.run_changes import RunChanges
from consensus_engine.api.state import ApiState
from consensus_engine.api.stream_limits import StreamLimits
from consensus_engine.api.sync_runtime import SyncRuntime
from consensus_engine.api.web_app import router as root_router
from consensus_engine.api.web_app import serve_web_app
from consensus_engine.db.engine import create_engine_from_settings, session_factory
from consensus_engine.db.rate_limits import DatabaseBuckets
from consensus_engine.jobs import job_sender
from consensus_engine.llm.catalogue import ModelCatalogue
from consensus_engine.llm.providers import providers
from consensus_engine.messaging import build_broker
from consensus_engine.observability.tracing import configure_tracing, trace_app
from consensus_engine.pipeline.config import personas_from_settings
from consensus_engine.pipeline.service import RunService
from consensus_engine.settings import Settings, get_settings

API_VERSION = "1.0.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    keys = KeyRing.from_settings(settings)
    catalogue = ModelCatalogue.from_settings(settings)
    providers(settings)  # checked here: a wrong LLM_PROVIDERS_JSON stops the API at start-up
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine_from_settings(settings)
        broker = build_broker(settings, "api")
        sessions = session_factory(engine)
        buckets = DatabaseBuckets(engine)
        sync = SyncRuntime(settings, sessions, buckets)
        run_changes = RunChanges.start(engine)
        app.state.api = ApiState(
            settings=settings,
            engine=engine,
            sessions=sessions,
            broker=broker,
            keys=keys,
            limiter=RateLimiter(settings.api_rate_limit_per_minute, settings.api_rate_limit_burst),
            personas=personas_from_settings(settings),
            catalogue=catalogue,
            sync=sync,
            runs=RunService(
                sessions,
                job_sender(broker, settings),
                job_timeout_seconds=settings.worker_job_timeout_seconds,
                max_in_flight=settings.api_max_runs_in_flight,
                budgets=settings.budgets,
            ),
            streams=StreamLimits.from_settings(settings),
            run_changes=run_changes,
        )
        try:
            # On a port of its own, never the public one (see consensus_engine.api.metrics).
            with serving(metrics.registry, settings.api_host, settings.api_metrics_port):
                yield
        finally:
            sync.close()  # first: work that outlives it must not record into a closed engine
            buckets.close()
            await run_changes.close()
            broker.close()
            engine.dispose()

    docs = settings.serves_docs
    app = FastAPI(
        title="Consensus Engine",
        version=API_VERSION,
        summary="Turn a rough idea into a reviewed decision.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    errors.install(app)
    configure_tracing(settings)
    trace_app(app)
    app.add_middleware(ApiMiddleware, max_body_bytes=settings.api_max_body_bytes, metrics=metrics)
    app.include_router(root_router)  # ``/``: JSON to who prefers it, else the web app
    app.include_router(ops.router)
    # The order of the paths in the OpenAPI document.
    app.include_router(runs.router)
    app.include_router(events.router)
    app.include_router(revisions.router)
    app.include_router(control.router)
    app.include_router(sync.router)
    app.include_router(usage.router)
    app.include_router(me.router)
    app.include_router(webhooks.router)
    if settings.web_app_enabled:
        serve_web_app(app)  # what no route answers: the app's files and pages
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.allowed_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "Last-Event-ID",
                "X-Request-ID",
                "X-Schema-Version",
                "X-Prompt-Set-Version",
            ],
            expose_headers=["Location", "Retry-After", "Idempotent-Replayed", "X-Request-ID"],
            max_age=600,
        )  # added last, so outermost: preflights and error answers get its headers too
    return app
