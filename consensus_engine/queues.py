"""The job queues and the Pub/Sub broker that carries them, built from settings."""

from __future__ import annotations

from dramatiq.middleware import Middleware

from brokers.pubsub import PubSubBroker, SubscriptionPolicy
from consensus_engine.domain.runs import Priority
from consensus_engine.settings import Settings

HIGH_PRIORITY_SUFFIX = "-high"


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


def build_pubsub_broker(
    settings: Settings, *, middleware: list[Middleware] | None = None
) -> PubSubBroker:
    """A broker for the job queues, keeping ``PUBSUB_SUBSCRIPTION`` as the normal queue's."""
    broker = PubSubBroker(
        middleware=middleware,
        project=settings.pubsub_project_id,
        emulator_host=settings.pubsub_emulator_host,
        auto_create=settings.pubsub_creates_resources,
        policy=subscription_policy(settings),
        publish_timeout=settings.pubsub_publish_timeout_seconds,
        subscription_overrides={settings.pubsub_topic: settings.pubsub_subscription},
        delivery=settings.pubsub_delivery,
    )
    for queue_name in job_queues(settings):
        broker.declare_queue(queue_name)
    return broker
