"""Pub/Sub clients created lazily, once per process.

gRPC channels do not survive ``fork``: ``dramatiq -p N`` imports the app in the
parent and forks workers, so a client made in ``__init__`` would be shared and
broken. Each accessor checks the pid and builds fresh clients after a fork.
"""

from __future__ import annotations

import os
import threading

import google.cloud.pubsub_v1 as pubsub_v1
import grpc
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type
from google.pubsub_v1.services.publisher import PublisherClient as PublisherRpc
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

_TRANSIENT: tuple[type[Exception], ...] = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
)
#: What the library retries a publish on (its generated default): the message was not taken.
_PUBLISH_TRANSIENT: tuple[type[Exception], ...] = (
    *_TRANSIENT,
    gexc.Aborted,
    gexc.Cancelled,
    gexc.ResourceExhausted,
    gexc.Unknown,
)


def bounded_retry(timeout: float, retryable: tuple[type[Exception], ...] = _TRANSIENT) -> Retry:
    """Retry transient failures of an admin or ack call, but give up after ``timeout``.

    The library's default retries can outlast any per-call timeout when the
    server is unreachable; a command should fail with a clear error instead.
    """
    return Retry(
        initial=0.1,
        maximum=2.0,
        multiplier=2.0,
        timeout=timeout,
        predicate=if_exception_type(*retryable),
    )


def publish_retry(timeout: float) -> Retry:
    """Retry a publish on what the library's batches retry it on, for at most ``timeout``."""
    return bounded_retry(timeout, _PUBLISH_TRANSIENT)


class Clients:
    """The publisher (admin calls, batches), its plain publish call and the subscriber of
    the current process."""

    def __init__(self, *, emulator_host: str | None = None) -> None:
        self._emulator_host = emulator_host
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._publisher: pubsub_v1.PublisherClient | None = None
        self._subscriber: pubsub_v1.SubscriberClient | None = None
        self._publish_rpc: PublisherRpc | None = None

    def _reset_after_fork(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._publisher = None
            self._subscriber = None
            self._publish_rpc = None

    @property
    def publisher(self) -> pubsub_v1.PublisherClient:
        with self._lock:
            return self._current_publisher()

    @property
    def publish_rpc(self) -> PublisherRpc:
        """The generated client on the publisher's channel: each ``publish`` is one
        ``Publish`` call answered with the message ids, no batch or commit thread."""
        with self._lock:
            publisher = self._current_publisher()
            if self._publish_rpc is None:
                self._publish_rpc = PublisherRpc(transport=publisher.transport)
            return self._publish_rpc

    def _current_publisher(self) -> pubsub_v1.PublisherClient:
        """The publisher of this process, made if need be; the caller holds the lock."""
        self._reset_after_fork()
        if self._publisher is None:
            batch = pubsub_v1.types.BatchSettings(max_latency=0.001, max_messages=100)
            if self._emulator_host:
                transport = PublisherGrpcTransport(
                    channel=grpc.insecure_channel(self._emulator_host)
                )
                self._publisher = pubsub_v1.PublisherClient(batch, transport=transport)
            else:
                self._publisher = pubsub_v1.PublisherClient(batch)
        return self._publisher

    @property
    def subscriber(self) -> pubsub_v1.SubscriberClient:
        with self._lock:
            self._reset_after_fork()
            if self._subscriber is None:
                if self._emulator_host:
                    transport = SubscriberGrpcTransport(
                        channel=grpc.insecure_channel(self._emulator_host)
                    )
                    self._subscriber = pubsub_v1.SubscriberClient(transport=transport)
                else:
                    self._subscriber = pubsub_v1.SubscriberClient()
            return self._subscriber

    def close(self) -> None:
        """Flush and close the clients of this process, if any were made."""
        with self._lock:
            if self._pid != os.getpid():
                return
            publisher, subscriber = self._publisher, self._subscriber
            self._publisher = self._subscriber = self._publish_rpc = None
        if publisher is not None:
            publisher.stop()
        if subscriber is not None:
            subscriber.close()
