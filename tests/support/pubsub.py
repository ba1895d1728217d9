"""Which Pub/Sub server the test suite talks to, and how to start and stop it.

In order of preference:

1. ``PUBSUB_EMULATOR_HOST`` already set: a server someone else runs ("external");
2. ``CE_PUBSUB_BACKEND=embedded``: the embedded server, even where the jar exists;
3. Google's emulator jar (``consensus_engine.devtools.emulator``), where the image has it;
4. otherwise the embedded server (``consensus_engine.devtools.pubsub_server``).

Tests that need Google's exact behaviour check ``PubSubBackend.exact_google_behaviour``
(see the ``requires_google_emulator`` fixture), so a green run on an image
without the jar says what it skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brokers.pubsub.clients import Clients
from consensus_engine.devtools.emulator import (
    answers_ok,
    find_emulator_jar,
    start_emulator,
    why_no_emulator_jar,
)
from consensus_engine.devtools.pubsub_server import EmbeddedPubSubServer

GOOGLE_EMULATOR, EMBEDDED, EXTERNAL = "google-emulator", "embedded", "external"


@dataclass
class PubSubBackend:
    """A running server: where it is, what it is, and how to stop it."""

    host: str
    name: str
    exact_google_behaviour: bool
    _stop: Callable[[], object] = field(default=lambda: None, repr=False)

    def stop(self) -> None:
        stop, self._stop = self._stop, lambda: None
        stop()


def selected_backend(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(name, detail) of the backend ``start_pubsub_backend`` would use; starts nothing."""
    environ = os.environ if environ is None else environ
    if environ.get("PUBSUB_EMULATOR_HOST"):
        return EXTERNAL, f"PUBSUB_EMULATOR_HOST={environ['PUBSUB_EMULATOR_HOST']}"
    if environ.get("CE_PUBSUB_BACKEND") == EMBEDDED:
        return EMBEDDED, f"forced by CE_PUBSUB_BACKEND={EMBEDDED}"
    jar = find_emulator_jar()
    if jar is not None:
        return GOOGLE_EMULATOR, str(jar)
    return EMBEDDED, f"{why_no_emulator_jar()}; behaviour is approximate"


def start_pubsub_backend(environ: Mapping[str, str] | None = None) -> PubSubBackend:
    """Start the selected backend (see the module docstring) and return it, ready."""
    name, detail = selected_backend(environ)
    if name == EXTERNAL:
        host = (os.environ if environ is None else environ)["PUBSUB_EMULATOR_HOST"]
        return PubSubBackend(host, EXTERNAL, exact_google_behaviour=answers_ok(host))
    if name == GOOGLE_EMULATOR:
        process = start_emulator(Path(detail))  # the detail is the jar
        return PubSubBackend(process.host, GOOGLE_EMULATOR, True, process.stop)
    server = EmbeddedPubSubServer().start()
    return PubSubBackend(server.address, EMBEDDED, False, server.stop)


def publisher_client(host: str) -> Any:
    """A PublisherClient on an insecure channel to ``host``, whatever the environment says."""
    return Clients(emulator_host=host).publisher


def subscriber_client(host: str) -> Any:
    """A SubscriberClient on an insecure channel to ``host``; ``close()`` it when done."""
    return Clients(emulator_host=host).subscriber
