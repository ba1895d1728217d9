"""A Pub/Sub-compatible gRPC server in this process, for the demo, local runs and tests.

Google's emulator jar ships only with the Cloud SDK (Debian 12 has it, Debian 13 lacks
it, no registry we can reach ships it) and needs Java; this server speaks the same
protocol to the real ``google-cloud-pubsub`` clients, with everything in memory. Start it
on a background thread with :class:`EmbeddedPubSubServer` (a context manager), or in the
foreground with ``consensus-engine pubsub serve``.
"""

from consensus_engine.devtools.pubsub_server.server import (
    EmbeddedPubSubServer,
    add_cli_arguments,
    serve,
    serve_from_args,
)

__all__ = ["EmbeddedPubSubServer", "add_cli_arguments", "serve", "serve_from_args"]
