"""The Pub/Sub server a local run uses: the one configured, else Google's emulator jar,
else the embedded server, so the demo needs neither the Cloud SDK nor Java."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import grpc  # type: ignore[import-untyped, unused-ignore]

from consensus_engine.devtools.emulator import (
    find_emulator_jar,
    start_emulator,
    why_no_emulator_jar,
)
from consensus_engine.devtools.process import ProcessError
from consensus_engine.devtools.pubsub_server import EmbeddedPubSubServer


@dataclass(frozen=True)
class LocalPubSub:
    """Where the server listens (``host:port``) and which one it is, in words."""

    host: str
    description: str


def accepts_grpc(host: str, *, timeout_s: float = 2.0) -> bool:
    """True when ``host`` ("HOST:PORT") completes a gRPC handshake, as both servers do."""
    channel = grpc.insecure_channel(host)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()


@contextlib.contextmanager
def local_pubsub(configured: str | None) -> Iterator[LocalPubSub]:
    """``configured`` (``PUBSUB_EMULATOR_HOST``) as it is, else a server started here and
    stopped when the block ends: the jar where it and ``java`` are found and it starts,
    the embedded server otherwise."""
    if configured:
        yield LocalPubSub(configured, f"PUBSUB_EMULATOR_HOST={configured}")
        return
    with contextlib.ExitStack() as stack:
        yield _start(stack)


def _start(stack: contextlib.ExitStack) -> LocalPubSub:
    jar = find_emulator_jar()
    if jar is None:
        reason = f"Google's emulator not found: {why_no_emulator_jar()}"
    else:
        try:
            process = start_emulator(jar)
        except ProcessError as error:
            reason = f"Google's emulator did not start: {str(error).partition(';')[0]}"
        else:
            stack.callback(process.stop)
            described = f"Google's emulator ({jar.name}, pid {process.pid})"
            return LocalPubSub(process.host, f"{described} on {process.host}")
    server = stack.enter_context(EmbeddedPubSubServer())
    return LocalPubSub(server.address, f"the embedded server on {server.address} ({reason})")
