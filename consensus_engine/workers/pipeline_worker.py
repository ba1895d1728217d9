"""``python -m consensus_engine.workers.pipeline_worker``: the deployment guide's entry point.

It starts the same worker as ``dramatiq consensus_engine.actors``, sized from settings
(``WORKER_PROCESSES`` processes of ``WORKER_MAX_CONCURRENCY`` threads, shutdown timeout
``WORKER_SHUTDOWN_TIMEOUT_SECONDS``). Extra arguments go to Dramatiq, e.g.
``-Q consensus-engine-jobs-high`` for a worker of high-priority runs only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from consensus_engine.llm.catalogue import ModelCatalogue, require_priced
from consensus_engine.settings import Settings, SettingsError, get_settings


def dramatiq_arguments(settings: Settings, extra: Sequence[str] = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dramatiq",
        "consensus_engine.actors",
        "--processes",
        str(settings.worker_processes),
        "--threads",
        str(settings.worker_max_concurrency),
        "--worker-shutdown-timeout",
        str(settings.worker_shutdown_timeout_seconds * 1000),
        "--skip-logging",
        *extra,
    ]


def _forget_old_metrics() -> None:
    """Drop the metric files of earlier runs, so counters start from this worker's life."""
    from dramatiq.middleware.prometheus import DB_PATH

    for path in Path(DB_PATH).glob("*.db"):
        path.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings = get_settings()
        require_priced(ModelCatalogue.from_settings(settings))
    except SettingsError as error:
        sys.exit(f"pipeline worker: {error}")
    _forget_old_metrics()
    arguments = dramatiq_arguments(settings, sys.argv[1:] if argv is None else argv)
    os.execv(sys.executable, arguments)  # noqa: S606 - replace this process with Dramatiq's


if __name__ == "__main__":
    main()
