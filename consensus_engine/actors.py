"""The pipeline's Dramatiq actors; ``dramatiq consensus_engine.actors`` runs them.

The broker is set from settings before any actor is declared: Pub/Sub normally, the
in-process stub with ``PUBSUB_USE_MOCK=true``. Each actor is one stage of a run and
sends the next: expand → one review per persona → (with two rounds) one debate per
persona → aggregate → (with a chair) the chair. The work itself lives
in :mod:`consensus_engine.pipeline`; see :mod:`consensus_engine.workers.dispatch`
for retries and follow-up messages.
"""

from __future__ import annotations

import logging
import uuid

import dramatiq

from consensus_engine.domain.runs import Stage
from consensus_engine.llm import LLMClient, LLMConfigurationError
from consensus_engine.llm.catalogue import ModelCatalogue, require_priced
from consensus_engine.messaging import build_broker, job_queue
from consensus_engine.observability.logs import configure_logging
from consensus_engine.observability.tracing import configure_tracing
from consensus_engine.settings import SettingsError, get_settings
from consensus_engine.webhooks import messages as webhook_messages
from consensus_engine.webhooks.delivery import deliver
from consensus_engine.workers.broker import worker_middleware
from consensus_engine.workers.dispatch import execute
from consensus_engine.workers.runtime import runtime


class WorkerConfigError(ImportError):
    """Settings a worker cannot run with; Dramatiq stops at once on an import error."""


try:
    settings = get_settings()
    require_priced(ModelCatalogue.from_settings(settings))
    LLMClient.from_settings(settings).close()
except (SettingsError, LLMConfigurationError) as error:
    raise WorkerConfigError(f"cannot start the worker: {error}") from None

logging.getLogger().handlers.clear()  # Dramatiq's basicConfig; ours replaces it
configure_logging(
    json_lines=settings.json_logs,
    level=settings.effective_log_level,
    trace_project=settings.log_trace_project,
)
configure_tracing(settings)
broker = build_broker(settings, "worker", middleware=worker_middleware(settings))
dramatiq.set_broker(broker)

_QUEUE = job_queue(settings)


# Within a worker, later stages go first (lower number: higher priority), so a run
# under way finishes before new runs start and latency does not pile up under load.
@dramatiq.actor(actor_name=Stage.EXPAND.value, queue_name=_QUEUE, priority=20)
def expand(run_id: str) -> None:
    """Expand the idea (or apply a revision's edits), then send the reviews."""
    execute(settings, Stage.EXPAND, run_id)


@dramatiq.actor(actor_name=Stage.REVIEW.value, queue_name=_QUEUE, priority=10)
def review(run_id: str, persona_id: str) -> None:
    """One persona's review; the last review of a run sends the next stage."""
    execute(settings, Stage.REVIEW, run_id, persona_id)


@dramatiq.actor(actor_name=Stage.DEBATE.value, queue_name=_QUEUE, priority=5)
def debate(run_id: str, persona_id: str) -> None:
    """One persona's second-round review, after reading the others' first round."""
    execute(settings, Stage.DEBATE, run_id, persona_id)


@dramatiq.actor(actor_name=Stage.AGGREGATE.value, queue_name=_QUEUE, priority=0)
def aggregate(run_id: str) -> None:
    """Decide from the reviews; the run completes (or fails short of its quorum), or
    its chair is sent."""
    execute(settings, Stage.AGGREGATE, run_id)


@dramatiq.actor(actor_name=Stage.CHAIR.value, queue_name=_QUEUE, priority=0)
def chair(run_id: str) -> None:
    """The chair's synthesis of the decided run; the run completes however it ends."""
    execute(settings, Stage.CHAIR, run_id)


@dramatiq.actor(actor_name=webhook_messages.ACTOR, queue_name=_QUEUE, priority=30, max_retries=0)
def webhook(delivery_id: str) -> None:
    """One attempt at a webhook delivery; its retries are scheduled in the database (for a
    day), not by Dramatiq."""
    deliver(settings, runtime(settings).pipeline.sessions, uuid.UUID(delivery_id))
