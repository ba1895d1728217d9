"""Creating and updating the topics and subscriptions a queue needs.

Used lazily by the broker when ``auto_create`` is on (development, the emulator)
and by deployment tooling, where it reports what it changed. Production workers
run with ``auto_create`` off and need only the publisher and subscriber roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.protobuf import duration_pb2, field_mask_pb2
from google.pubsub_v1 import types

from brokers.pubsub.clients import Clients, bounded_retry
from brokers.pubsub.names import QueueResources


@dataclass(frozen=True)
class SubscriptionPolicy:
    """How subscriptions are configured.

    ``max_delivery_attempts`` sets Pub/Sub's own dead-letter policy on main
    subscriptions, a backstop for messages that crash workers before Dramatiq
    can dead-letter them; ``None`` leaves it off.

    ``push_endpoint`` makes queue and delay-queue subscriptions push to that URL
    (a worker's ``/pubsub/push``, for a broker with ``delivery="push"``), with an
    OIDC token for ``push_service_account`` (audience ``push_audience``, or the
    endpoint when unset) so the worker can tell Pub/Sub from anyone else.
    Dead-letter subscriptions stay pull: nobody works on them.
    """

    ack_deadline_seconds: int = 60
    retention: timedelta = timedelta(days=7)
    max_delivery_attempts: int | None = 5
    push_endpoint: str | None = None
    push_service_account: str | None = None
    push_audience: str | None = None

    def __post_init__(self) -> None:
        if not 10 <= self.ack_deadline_seconds <= 600:
            raise ValueError("ack_deadline_seconds must be between 10 and 600")
        if not timedelta(minutes=10) <= self.retention <= timedelta(days=7):
            raise ValueError("retention must be between 10 minutes and 7 days")
        if self.max_delivery_attempts is not None and not 5 <= self.max_delivery_attempts <= 100:
            raise ValueError("max_delivery_attempts must be between 5 and 100")
        if self.push_endpoint is None:
            if self.push_service_account is not None or self.push_audience is not None:
                raise ValueError("push_service_account and push_audience need a push_endpoint")
        elif not self.push_endpoint.startswith(("https://", "http://")):
            raise ValueError("push_endpoint must be an http(s) URL")
        if self.push_audience is not None and self.push_service_account is None:
            raise ValueError("push_audience needs a push_service_account to sign the token")

    def push_config(self) -> types.PushConfig:
        """The push configuration of queue subscriptions; empty means pull."""
        if self.push_endpoint is None:
            return types.PushConfig()
        config = types.PushConfig(push_endpoint=self.push_endpoint)
        if self.push_service_account is not None:
            config.oidc_token = types.PushConfig.OidcToken(
                service_account_email=self.push_service_account,
                audience=self.push_audience or "",
            )
        return config


_UPDATABLE = ("ack_deadline_seconds", "message_retention_duration", "dead_letter_policy")


def _duration(delta: timedelta) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(delta.total_seconds()))


def _push_target(config: types.PushConfig) -> tuple[str, str, str]:
    """What a push configuration says that we set; Pub/Sub adds defaults of its own."""
    return (
        config.push_endpoint,
        config.oidc_token.service_account_email,
        config.oidc_token.audience,
    )


class Provisioner:
    """Ensures resources exist (``ensure``) or match the policy (``apply``)."""

    def __init__(
        self,
        clients: Clients,
        *,
        project: str,
        policy: SubscriptionPolicy,
        timeout: float = 30.0,
    ) -> None:
        self._clients = clients
        self._project = project
        self._policy = policy
        self._rpc: dict[str, Any] = {"timeout": timeout, "retry": bounded_retry(timeout)}

    def topic_path(self, topic: str) -> str:
        return f"projects/{self._project}/topics/{topic}"

    def subscription_path(self, subscription: str) -> str:
        return f"projects/{self._project}/subscriptions/{subscription}"

    def _wanted(self, resources: QueueResources, *, delay: bool) -> list[types.Subscription]:
        """The subscriptions of one queue: main (or delay) and its dead-letter keeper."""
        main = types.Subscription(
            name=self.subscription_path(resources.subscription),
            topic=self.topic_path(resources.topic),
            ack_deadline_seconds=self._policy.ack_deadline_seconds,
            message_retention_duration=_duration(self._policy.retention),
            expiration_policy=types.ExpirationPolicy(),
            push_config=self._policy.push_config(),
        )
        if not delay and self._policy.max_delivery_attempts is not None:
            main.dead_letter_policy = types.DeadLetterPolicy(
                dead_letter_topic=self.topic_path(resources.dead_letter_topic),
                max_delivery_attempts=self._policy.max_delivery_attempts,
            )
        if delay:
            return [main]
        keeper = types.Subscription(
            name=self.subscription_path(resources.dead_letter_subscription),
            topic=self.topic_path(resources.dead_letter_topic),
            ack_deadline_seconds=self._policy.ack_deadline_seconds,
            message_retention_duration=_duration(self._policy.retention),
            expiration_policy=types.ExpirationPolicy(),
        )
        return [keeper, main]

    def _topics(self, resources: QueueResources, *, delay: bool) -> list[str]:
        if delay:
            return [resources.topic]
        return [resources.dead_letter_topic, resources.topic]

    def ensure(self, resources: QueueResources, *, delay: bool) -> None:
        """Create whatever is missing; leave existing resources alone."""
        self._provision(resources, delay=delay, update=False)

    def apply(self, resources: QueueResources, *, delay: bool) -> list[str]:
        """Create what is missing and bring existing subscriptions in line; say what happened."""
        return self._provision(resources, delay=delay, update=True)

    def _provision(self, resources: QueueResources, *, delay: bool, update: bool) -> list[str]:
        report: list[str] = []
        publisher = self._clients.publisher
        for topic in self._topics(resources, delay=delay):
            path = self.topic_path(topic)
            try:
                publisher.create_topic(request={"name": path}, **self._rpc)
                report.append(f"created topic {path}")
            except gexc.AlreadyExists:
                report.append(f"unchanged topic {path}")
        for wanted in self._wanted(resources, delay=delay):
            report.append(self._subscription(wanted, update=update))
        return report

    def _subscription(self, wanted: types.Subscription, *, update: bool) -> str:
        subscriber = self._clients.subscriber
        try:
            subscriber.create_subscription(request=wanted, **self._rpc)
        except gexc.AlreadyExists:
            pass
        else:
            return f"created subscription {wanted.name}"
        if not update:
            return f"unchanged subscription {wanted.name}"
        current = subscriber.get_subscription(request={"subscription": wanted.name}, **self._rpc)
        if current.topic != wanted.topic:
            raise ValueError(
                f"subscription {wanted.name} is attached to {current.topic}, not {wanted.topic}"
            )
        changed = [name for name in _UPDATABLE if getattr(current, name) != getattr(wanted, name)]
        if _push_target(current.push_config) != _push_target(wanted.push_config):
            changed.append("push_config")
        if not changed:
            return f"unchanged subscription {wanted.name}"
        subscriber.update_subscription(
            request={
                "subscription": wanted,
                "update_mask": field_mask_pb2.FieldMask(paths=changed),
            },
            **self._rpc,
        )
        return f"updated subscription {wanted.name} ({', '.join(changed)})"
