"""The job queues and the one place a broker for them is built from settings.

Three uses need a broker, named by ``Role``:

- ``"api"``: the API's publisher. Where the settings allow creating resources (the
  emulator, development) they are created at start, so readiness reflects a usable
  queue from the first request; a failure there is logged and the API starts anyway.
- ``"worker"``: a worker process, with the worker's Dramatiq middleware, which the
  caller passes in (this module stays below the worker package).
- ``"plain"``: Pub/Sub as configured, with Dramatiq's default middleware, for the
  ``pubsub setup`` command, the demo, benchmarks and tests. These need the real
  queues, so ``PUBSUB_USE_MOCK`` does not apply to them.

With ``PUBSUB_USE_MOCK`` the API and the worker get an in-process ``StubBroker``
that needs nothing. Every broker has the job queues declared.
"""

from __future__ import annotations

import logging
from typing import Literal, TypeVar, overload

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware, default_middleware
from google.api_core.exceptions import GoogleAPIError

from brokers.pubsub import PubSubBroker, SubscriptionPolicy
from consensus_engine.domain.runs import Priority
from consensus_engine.observability.message_tracing import MessageTracing
from consensus_engine.observability.tracing import TRACE_OPTIONS
from consensus_engine.settings import Settings

HIGH_PRIORITY_SUFFIX = "-high"

Role = Literal["api", "worker", "plain"]
_Broker = TypeVar("_Broker", bound=dramatiq.Broker)
logger = logging.getLogger(__name__)


LEASE_EXTENSION_SECONDS = 10
"""A worker extends its leases this much at a time, so the messages a crashed worker held
are delivered again within about this many seconds."""

STAGE_MESSAGE_OPTIONS = frozenset(
    {"eta", "pubsub_enqueue_id", "retries", "free_retries", "traceback", "requeue_timestamp"}
) | frozenset(TRACE_OPTIONS)
"""The options the pipeline's own messages carry: a delay, the broker's enqueue id,
the retry bookkeeping (Dramatiq's, and the retries that spent none of the step's: an
outage, a wait for LLM capacity) and the trace context. A pushed message
keeps only these; a time limit, an age or a retry budget of the pusher's choosing is
dropped."""


def job_queue(settings: Settings, priority: Priority = Priority.NORMAL) -> str:
    """Normal jobs use the ``PUBSUB_TOPIC`` queue; high-priority ones its ``-high`` twin."""
    if priority is Priority.HIGH:
        return settings.pubsub_topic + HIGH_PRIORITY_SUFFIX
    return settings.pubsub_topic


def job_queues(settings: Settings) -> tuple[str, ...]:
    return tuple(job_queue(settings, priority) for priority in Priority)


def subscription_policy(settings: Settings) -> SubscriptionPolicy:
    """Ack deadline and dead-lettering from settings; push subscriptions when
    ``PUBSUB_PUSH_ENDPOINT`` names the worker's URL (with an OIDC token for the push
    service account, which the worker then checks)."""
    endpoint = settings.pubsub_push_endpoint
    return SubscriptionPolicy(
        ack_deadline_seconds=settings.worker_ack_deadline_seconds,
        max_delivery_attempts=settings.pubsub_max_delivery_attempts,
        push_endpoint=endpoint,
        push_service_account=settings.pubsub_push_service_account if endpoint else None,
        push_audience=settings.pubsub_push_audience if endpoint else None,
    )


@overload
def build_broker(settings: Settings, role: Literal["plain"]) -> PubSubBroker: ...


@overload
def build_broker(settings: Settings, role: Literal["api"]) -> dramatiq.Broker: ...


@overload
def build_broker(
    settings: Settings, role: Literal["worker"], *, middleware: list[Middleware]
) -> dramatiq.Broker: ...


def build_broker(
    settings: Settings, role: Role, *, middleware: list[Middleware] | None = None
) -> dramatiq.Broker:
    """The broker for ``role`` (see the module docstring), its job queues declared.
    Every broker carries the trace context in its messages (:class:`MessageTracing`)."""
    given = [m() for m in default_middleware] if middleware is None else middleware
    middleware = [MessageTracing(), *given]
    if settings.pubsub_use_mock and role != "plain":
        return _with_job_queues(StubBroker(middleware=middleware), settings)
    broker = _with_job_queues(_pubsub_broker(settings, middleware), settings)
    if role == "api" and settings.pubsub_creates_resources:
        try:
            broker.provision()
        except GoogleAPIError as error:
            logger.warning("could not create the Pub/Sub resources yet: %s", error)
    return broker


def _pubsub_broker(settings: Settings, middleware: list[Middleware]) -> PubSubBroker:
    """Pub/Sub from settings, keeping ``PUBSUB_SUBSCRIPTION`` as the normal queue's."""
    return PubSubBroker(
        middleware=middleware,
        project=settings.pubsub_project_id,
        emulator_host=settings.pubsub_emulator_host,
        auto_create=settings.pubsub_creates_resources,
        policy=subscription_policy(settings),
        publish_timeout=settings.pubsub_publish_timeout_seconds,
        lease_extension=LEASE_EXTENSION_SECONDS,
        subscription_overrides={settings.pubsub_topic: settings.pubsub_subscription},
        delivery=settings.pubsub_delivery,
        attribute_options=TRACE_OPTIONS,
        push_options=STAGE_MESSAGE_OPTIONS,
    )


def _with_job_queues(broker: _Broker, settings: Settings) -> _Broker:
    for queue_name in job_queues(settings):
        broker.declare_queue(queue_name)
    return broker
