"""What runs beside the worker threads in each worker process: the sweeper and the HTTP endpoint.

Started when Dramatiq has booted the worker and stopped before it shuts down, as a
middleware, so ``dramatiq consensus_engine.actors`` and the guide's
``python -m consensus_engine.workers.pipeline_worker`` get them alike.
"""

from __future__ import annotations

import logging
import random
import threading

import dramatiq
from dramatiq.middleware import Middleware

from brokers.pubsub import PubSubBroker
from consensus_engine import readiness
from consensus_engine.settings import Settings
from consensus_engine.workers.dispatch import sweep_once
from consensus_engine.workers.http import WorkerHTTPServer
from consensus_engine.workers.push_auth import PushTokenVerifier
from consensus_engine.workers.runtime import runtime

logger = logging.getLogger(__name__)


class Sweeper(threading.Thread):
    """Calls the sweeper every ``SWEEPER_INTERVAL_SECONDS`` (with jitter, so replicas spread)."""

    def __init__(self, settings: Settings, broker: dramatiq.Broker) -> None:
        super().__init__(name="sweeper", daemon=True)
        self.settings = settings
        self.broker = broker
        self.stopped = threading.Event()

    def run(self) -> None:
        interval = self.settings.sweeper_interval_seconds
        while not self.stopped.wait(interval * random.uniform(0.5, 1.0)):  # noqa: S311
            try:
                sweep_once(self.settings, self.broker, runtime(self.settings).sessions)
            except Exception:
                logger.exception("sweep failed; trying again in %.0f s", interval)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


class WorkerServices(Middleware):
    """Starts the sweeper and the health/push endpoint in every worker process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sweeper: Sweeper | None = None
        self.server: WorkerHTTPServer | None = None
        self._worker: dramatiq.Worker | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        settings = self.settings
        self._worker = worker
        self.sweeper = Sweeper(settings, broker)
        self.sweeper.start()
        if settings.worker_http_port == 0:
            return
        push = settings.pubsub_delivery == "push" and isinstance(broker, PubSubBroker)
        verifier = PushTokenVerifier.from_settings(settings) if push else None
        self.server = WorkerHTTPServer(
            settings.worker_http_host,
            settings.worker_http_port,
            checks=readiness.checks(
                lambda: runtime(settings).engine, broker, consumed=worker.consumers.keys()
            ),
            inbox=broker.push_inbox if push and isinstance(broker, PubSubBroker) else None,
            verifier=verifier,
            push_timeout=max(5.0, settings.worker_ack_deadline_seconds - 10.0),
            alive=self._alive,
        )
        self.server.start()
        logger.info(
            "worker endpoint on port %d: /healthz, /readyz%s",
            self.server.port,
            ", /pubsub/push" if push else "",
        )

    def _alive(self) -> bool:
        worker = self._worker
        return worker is not None and all(t.is_alive() for t in worker.workers)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.sweeper is not None:
            self.sweeper.stop()
        if self.server is not None:
            self.server.stop()
