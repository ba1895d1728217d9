"""The pipeline's Dramatiq actors; ``dramatiq consensus_engine.actors`` runs them.

The broker is set from settings before any actor is declared: Pub/Sub normally, the
in-process stub with ``PUBSUB_USE_MOCK=true``. Each actor is one stage of a run and
sends the next: expand → one review per persona → aggregate. The work itself lives
in :mod:`consensus_engine.pipeline`; see :mod:`consensus_engine.workers.dispatch`
for retries and follow-up messages.
"""

from __future__ import annotations

import logging

import dramatiq

from consensus_engine.llm import LLMClient, LLMConfigurationError
from consensus_engine.observability.logs import configure_logging
from consensus_engine.queues import job_queue
from consensus_engine.settings import SettingsError, get_settings
from consensus_engine.workers.broker import build_broker
from consensus_engine.workers.dispatch import execute


class WorkerConfigError(ImportError):
    """Settings a worker cannot run with; Dramatiq stops at once on an import error."""


try:
    settings = get_settings()
    LLMClient.from_settings(settings).close()
except (SettingsError, LLMConfigurationError) as error:
    raise WorkerConfigError(f"cannot start the worker: {error}") from None

logging.getLogger().handlers.clear()  # Dramatiq's basicConfig; ours replaces it
configure_logging(json_lines=settings.is_production, level=settings.effective_log_level)
broker = build_broker(settings)
dramatiq.set_broker(broker)

_QUEUE = job_queue(settings)
_MAX_RETRIES = settings.max_retries_per_persona


# Within a worker, later stages go first (lower number: higher priority), so a run
# under way finishes before new runs start and latency does not pile up under load.
@dramatiq.actor(actor_name="expand", queue_name=_QUEUE, max_retries=_MAX_RETRIES, priority=20)
def expand(run_id: str) -> None:
    """Expand the idea (or apply a revision's edits), then send the reviews."""
    execute(settings, "expand", run_id)


@dramatiq.actor(actor_name="review", queue_name=_QUEUE, max_retries=_MAX_RETRIES, priority=10)
def review(run_id: str, persona_id: str) -> None:
    """One persona's review; the last review of a run sends the aggregate."""
    execute(settings, "review", run_id, persona_id)


@dramatiq.actor(actor_name="aggregate", queue_name=_QUEUE, max_retries=_MAX_RETRIES, priority=0)
def aggregate(run_id: str) -> None:
    """Decide from the reviews; the run completes (or fails short of its quorum)."""
    execute(settings, "aggregate", run_id)
