"""Operations: liveness, readiness and metrics; no API key needed, nothing revealed."""

from __future__ import annotations

import logging
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client.exposition import choose_encoder
from pydantic import BaseModel

from brokers.pubsub import PubSubBroker
from consensus_engine.api.state import StateDep

router = APIRouter(tags=["operations"])
logger = logging.getLogger(__name__)
_CHECK_TIMEOUT_SECONDS = 3.0


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "failing"]
    checks: dict[str, Literal["ok", "unavailable"]]


@router.get("/health", summary="Liveness: the process answers")
def health() -> Health:
    return Health(status="ok")


def _database(state: StateDep) -> None:
    with state.engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))


def _broker(state: StateDep) -> None:
    broker = state.broker
    if isinstance(broker, PubSubBroker):
        queue_name = sorted(broker.get_declared_queues())[0]
        path = broker.provisioner.topic_path(broker.queues[queue_name].topic)
        broker.clients.publisher.get_topic(
            request={"topic": path}, timeout=_CHECK_TIMEOUT_SECONDS, retry=None
        )


@router.get(
    "/ready",
    summary="Readiness: the database and the broker answer",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a dependency does not answer"}},
)
def ready(state: StateDep) -> JSONResponse:
    checks: dict[str, str] = {}
    for name, check in (("database", _database), ("broker", _broker)):
        try:
            check(state)
        except Exception as error:  # any failure means not ready; the log says why
            logger.warning("readiness check %r failed: %s", name, type(error).__name__)
            checks[name] = "unavailable"
        else:
            checks[name] = "ok"
    ok = all(value == "ok" for value in checks.values())
    body: dict[str, Any] = {"status": "ready" if ok else "failing", "checks": checks}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics of this API process",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(state: StateDep) -> Response:
    encoder, content_type = choose_encoder("")  # the text format, with its matching type
    return Response(encoder(state.metrics.registry), media_type=content_type)
