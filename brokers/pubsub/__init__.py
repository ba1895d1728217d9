"""A Dramatiq broker backed by Google Cloud Pub/Sub."""

from brokers.pubsub.admin import Provisioner, SubscriptionPolicy
from brokers.pubsub.broker import MAX_MESSAGE_BYTES, PubSubBroker
from brokers.pubsub.consumer import PubSubConsumer, PubSubMessageProxy
from brokers.pubsub.dead_letters import DeadLetter
from brokers.pubsub.errors import (
    DelayTooLong,
    InvalidQueueName,
    MessageTooLarge,
    PublishFailed,
    ResourceMissing,
)
from brokers.pubsub.names import NameScheme, QueueResources
from brokers.pubsub.push import PushConsumer, PushInbox, PushOutcome

__all__ = [
    "MAX_MESSAGE_BYTES",
    "DeadLetter",
    "DelayTooLong",
    "InvalidQueueName",
    "MessageTooLarge",
    "NameScheme",
    "Provisioner",
    "PubSubBroker",
    "PubSubConsumer",
    "PubSubMessageProxy",
    "PublishFailed",
    "PushConsumer",
    "PushInbox",
    "PushOutcome",
    "QueueResources",
    "ResourceMissing",
    "SubscriptionPolicy",
]
