"""The pipeline worker as a child process, as the demo, the benchmarks and the tests run it."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from consensus_engine.devtools.http_client import answers_200, http_request
from consensus_engine.devtools.ports import free_port
from consensus_engine.devtools.process import ChildProcess, spawn

PIPELINE_WORKER = (sys.executable, "-m", "consensus_engine.workers.pipeline_worker")
READY_TIMEOUT_S = 90.0


@dataclass
class WorkerProcess(ChildProcess):
    """One worker process tree, its log and its two HTTP ports."""

    http_port: int
    metrics_port: int

    def get(self, path: str, *, port: int | None = None) -> tuple[int, bytes]:
        reply = http_request(f"http://127.0.0.1:{port or self.http_port}{path}", timeout=5)
        return reply.status, reply.body

    def events(self) -> list[dict[str, Any]]:
        """The JSON lifecycle records the worker wrote so far (``ENV=production`` logs JSON)."""
        records = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    record = json.loads(line)
                    if "lifecycle_event" in record:
                        records.append(record)
        return records

    def wait_until_ready(self, timeout: float = 60) -> None:
        """Until ``/readyz`` answers 200 (imports, broker and database checked)."""
        self.wait_until(partial(answers_200, f"http://127.0.0.1:{self.http_port}/readyz"), timeout)


def _launch(
    command: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None
) -> WorkerProcess:
    popen = spawn(command, env=env, log_path=log_path, cwd=cwd)
    ports = int(env["WORKER_HTTP_PORT"]), int(env["WORKER_METRICS_PORT"])
    return WorkerProcess(popen, log_path, "the worker", *ports)


def start_worker(
    env: Mapping[str, str],
    work_dir: Path,
    name: str,
    *,
    processes: int = 1,
    threads: int = 8,
    args: Sequence[str] = (),
    entry_point: Sequence[str] | None = None,
    overrides: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> WorkerProcess:
    """``dramatiq consensus_engine.actors -p P -t T`` (or ``entry_point``) plus ``args``, on
    free ports, with ``work_dir/worker-NAME.log`` and a Prometheus directory of its own;
    ``overrides`` win over all of that."""
    worker_env = {
        **env,
        "WORKER_HTTP_PORT": str(free_port()),
        "WORKER_METRICS_PORT": str(free_port()),
        "dramatiq_prom_db": str(work_dir / f"prom-{name}"),
        **(overrides or {}),
    }
    Path(worker_env["dramatiq_prom_db"]).mkdir(exist_ok=True)
    shutdown_ms = int(worker_env.get("WORKER_SHUTDOWN_TIMEOUT_SECONDS", "10")) * 1000
    command = entry_point or [
        *(sys.executable, "-m", "dramatiq", "consensus_engine.actors"),
        *("-p", str(processes), "-t", str(threads), "--skip-logging"),
        *("--worker-shutdown-timeout", str(shutdown_ms)),
    ]
    return _launch([*command, *args], worker_env, work_dir / f"worker-{name}.log", cwd)


@contextlib.contextmanager
def running_worker(env: Mapping[str, str], log_path: Path) -> Iterator[WorkerProcess]:
    """``python -m consensus_engine.workers.pipeline_worker`` on the ports ``env`` names,
    ready, until the block ends (SIGTERM)."""
    worker = _launch(PIPELINE_WORKER, env, log_path, None)
    try:
        worker.wait_until_ready(READY_TIMEOUT_S)
        yield worker
    finally:
        worker.stop()
