"""A tenant's webhook endpoints: register, list, change, delete, rotate the secret, see the
deliveries and their attempts, deliver one again.

The secret is shown once, in the answer that creates it (registering, rotating); every
other answer leaves it out.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from consensus_engine.api.errors import ApiError, invalid
from consensus_engine.api.openapi import errors
from consensus_engine.api.state import PrincipalDep, SessionDep, StateDep
from consensus_engine.db import webhooks
from consensus_engine.db.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from consensus_engine.webhooks import messages
from consensus_engine.webhooks.delivery import message_id
from consensus_engine.webhooks.events import EVENTS
from consensus_engine.webhooks.signing import new_secret
from consensus_engine.webhooks.targets import MAX_URL_LENGTH, RefusedTarget, check_target

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
logger = logging.getLogger(__name__)

Event = Literal["run.completed", "run.failed", "run.cancelled"]
assert set(get_args(Event)) == set(EVENTS), "the API names every event"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointIn(_Request):
    url: str = Field(
        max_length=MAX_URL_LENGTH, description="where deliveries are POSTed (http or https)"
    )
    events: list[Event] = Field(min_length=1, max_length=len(EVENTS))
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = True


class EndpointChange(_Request):
    """Only the fields given change."""

    url: str | None = Field(default=None, max_length=MAX_URL_LENGTH)
    events: list[Event] | None = Field(default=None, min_length=1, max_length=len(EVENTS))
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(EndpointOut):
    secret: str = Field(
        description="signs every delivery (Standard Webhooks); shown this once: keep it"
    )


class AttemptOut(BaseModel):
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None


class DeliveryOut(BaseModel):
    id: uuid.UUID
    webhook_id: str = Field(description="the webhook-id header every attempt carried")
    run_id: uuid.UUID | None
    event: str
    status: str = Field(description="pending, delivered or failed (its retries spent)")
    attempts: list[AttemptOut]
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]


def _out(row: WebhookEndpoint) -> EndpointOut:
    return EndpointOut.model_validate(row, from_attributes=True)


def _with_secret(row: WebhookEndpoint) -> EndpointWithSecret:
    return EndpointWithSecret.model_validate(row, from_attributes=True)


def _checked(state: StateDep, url: str) -> str:
    """422 for a URL a webhook must not go to (its name is resolved: the routes are sync)."""
    try:
        check_target(url, allow_private=state.settings.webhook_allow_private_targets)
    except RefusedTarget as refused:
        raise invalid("url", str(refused)) from None
    return url


def _owned(session: SessionDep, endpoint_id: uuid.UUID, tenant: str) -> WebhookEndpoint:
    row = webhooks.endpoint(session, endpoint_id, tenant)
    if row is None:
        raise ApiError(404, "NOT_FOUND", "no such webhook endpoint")
    return row


@router.post(
    "",
    operation_id="create_webhook",
    status_code=201,
    response_model=EndpointWithSecret,
    summary="Register an endpoint for run events",
    responses=errors(413),
)
def create(
    body: EndpointIn, state: StateDep, session: SessionDep, principal: PrincipalDep
) -> EndpointWithSecret:
    """The URL is checked now, and again before every attempt: it must not resolve to an
    internal address unless WEBHOOK_ALLOW_PRIVATE_TARGETS is set."""
    url = _checked(state, body.url)
    row = WebhookEndpoint(
        tenant=principal.tenant,
        url=url,
        events=sorted(set(body.events)),
        description=body.description,
        enabled=body.enabled,
        secret=new_secret(),
    )
    session.add(row)
    session.commit()
    return _with_secret(row)


@router.get("", operation_id="list_webhooks", summary="The tenant's endpoints", responses=errors())
def list_endpoints(session: SessionDep, principal: PrincipalDep) -> list[EndpointOut]:
    return [_out(row) for row in webhooks.endpoints(session, principal.tenant)]


@router.get(
    "/{endpoint_id}", operation_id="get_webhook", summary="One endpoint", responses=errors(404)
)
def get(endpoint_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> EndpointOut:
    return _out(_owned(session, endpoint_id, principal.tenant))


@router.patch(
    "/{endpoint_id}",
    operation_id="update_webhook",
    summary="Change an endpoint's URL, events, description or whether it is enabled",
    responses=errors(404, 413),
)
def update(
    endpoint_id: uuid.UUID,
    body: EndpointChange,
    state: StateDep,
    session: SessionDep,
    principal: PrincipalDep,
) -> EndpointOut:
    row = _owned(session, endpoint_id, principal.tenant)
    if body.url is not None:
        row.url = _checked(state, body.url)
    if body.events is not None:
        row.events = sorted(set(body.events))
    if "description" in body.model_fields_set:
        row.description = body.description
    if body.enabled is not None:
        row.enabled = body.enabled
    session.commit()
    return _out(row)


@router.delete(
    "/{endpoint_id}",
    operation_id="delete_webhook",
    status_code=204,
    summary="Delete an endpoint and its deliveries",
    responses=errors(404),
)
def delete(endpoint_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> Response:
    session.delete(_owned(session, endpoint_id, principal.tenant))
    session.commit()
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/rotate-secret",
    operation_id="rotate_webhook_secret",
    response_model=EndpointWithSecret,
    summary="Replace the signing secret (shown once); the old one stops signing at once",
    responses=errors(404),
)
def rotate(
    endpoint_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> EndpointWithSecret:
    row = _owned(session, endpoint_id, principal.tenant)
    row.secret = new_secret()
    session.commit()
    return _with_secret(row)


def _delivery(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        webhook_id=message_id(delivery.id),
        run_id=delivery.run_id,
        event=delivery.event,
        status=delivery.status,
        attempts=[AttemptOut.model_validate(a, from_attributes=True) for a in attempts],
        next_attempt_at=delivery.next_attempt_at,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
    )


@router.get(
    "/{endpoint_id}/deliveries",
    operation_id="list_webhook_deliveries",
    summary="The endpoint's latest deliveries, newest first, each with every attempt",
    responses=errors(404),
)
def list_deliveries(
    endpoint_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 30,
) -> DeliveryList:
    _owned(session, endpoint_id, principal.tenant)
    found = webhooks.deliveries(session, endpoint_id, limit=limit)
    return DeliveryList(deliveries=[_delivery(d, attempts) for d, attempts in found])


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    operation_id="redeliver_webhook",
    status_code=202,
    summary="Deliver again, at once (the sweeper sends it if the publish fails)",
    responses=errors(404),
)
def redeliver(
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
    state: StateDep,
    session: SessionDep,
    principal: PrincipalDep,
) -> Response:
    _owned(session, endpoint_id, principal.tenant)
    if not webhooks.redeliver(session, delivery_id, principal.tenant, endpoint_id):
        raise ApiError(404, "NOT_FOUND", "no such delivery")
    session.commit()
    try:
        messages.send(state.broker, state.settings, [delivery_id])
    except Exception:
        logger.warning("Could not publish the redelivery of %s; the sweeper will.", delivery_id)
    return Response(status_code=202)
