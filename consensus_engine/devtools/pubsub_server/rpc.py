"""The Publisher and Subscriber services on a gRPC server, without generated stubs.

``grpc.method_handlers_generic_handler`` with the proto-plus types' ``serialize`` and
``deserialize`` avoids the descriptor clash between generated ``pubsub_pb2`` modules and
google-cloud-pubsub.
"""

from __future__ import annotations

import re
from concurrent import futures
from contextlib import AbstractContextManager
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
from google.pubsub_v1.types import pubsub

from consensus_engine.devtools.pubsub_server.resources import RpcError

MAX_WORKERS = 32  # each open StreamingPull holds one
# "Service.Rpc Request Response", types from google.pubsub_v1.types.pubsub (Empty: no body)
_UNARY_RPCS = """
Publisher.CreateTopic Topic Topic
Publisher.GetTopic GetTopicRequest Topic
Publisher.UpdateTopic UpdateTopicRequest Topic
Publisher.ListTopics ListTopicsRequest ListTopicsResponse
Publisher.ListTopicSubscriptions ListTopicSubscriptionsRequest ListTopicSubscriptionsResponse
Publisher.DeleteTopic DeleteTopicRequest Empty
Publisher.Publish PublishRequest PublishResponse
Subscriber.CreateSubscription Subscription Subscription
Subscriber.GetSubscription GetSubscriptionRequest Subscription
Subscriber.UpdateSubscription UpdateSubscriptionRequest Subscription
Subscriber.ListSubscriptions ListSubscriptionsRequest ListSubscriptionsResponse
Subscriber.DeleteSubscription DeleteSubscriptionRequest Empty
Subscriber.Pull PullRequest PullResponse
Subscriber.Acknowledge AcknowledgeRequest Empty
Subscriber.ModifyAckDeadline ModifyAckDeadlineRequest Empty
Subscriber.Seek SeekRequest SeekResponse
"""


def grpc_server(servicer: Any, lock: AbstractContextManager[Any]) -> Any:
    """A gRPC server (not yet bound) whose unary RPCs call ``servicer``'s snake_case
    methods holding ``lock``, and whose StreamingPull calls ``servicer.streaming_pull``
    (which locks for itself). Other RPCs answer UNIMPLEMENTED."""
    services: dict[str, dict[str, Any]] = {"Publisher": {}, "Subscriber": {}}
    for line in _UNARY_RPCS.strip().splitlines():
        rpc, request_type, response_type = line.split()
        service, _, name = rpc.partition(".")
        method = getattr(servicer, re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower())
        services[service][name] = _unary(method, lock, request_type, response_type)
    services["Subscriber"]["StreamingPull"] = grpc.stream_stream_rpc_method_handler(
        servicer.streaming_pull,
        request_deserializer=pubsub.StreamingPullRequest.deserialize,
        response_serializer=pubsub.StreamingPullResponse.serialize,
    )
    # no SO_REUSEPORT: a second server on a busy port must fail, not share it
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=MAX_WORKERS), options=[("grpc.so_reuseport", 0)]
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(f"google.pubsub.v1.{name}", handlers)
            for name, handlers in services.items()
        ]
    )
    return server


def _unary(
    method: Any, lock: AbstractContextManager[Any], request_type: str, response_type: str
) -> Any:
    """A handler that runs ``method`` holding ``lock``: RpcError becomes the call's status,
    None an empty body."""

    def handle(request: Any, context: Any) -> Any:
        try:
            with lock:
                return method(request, context)
        except RpcError as error:
            context.abort(*error.args)

    response = None if response_type == "Empty" else getattr(pubsub, response_type)
    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=getattr(pubsub, request_type).deserialize,
        response_serializer=response.serialize if response else lambda _: b"",
    )
