"""The service's own processes as the demo, the benchmarks and the tests run them: the
pipeline worker and the API as production serves it (``uvicorn --factory``)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from consensus_engine.api.auth import digest, new_key
from consensus_engine.devtools.loopback import answers_200, http_request
from consensus_engine.devtools.process import ChildProcess, free_port, spawn

HOST = "127.0.0.1"
PIPELINE_WORKER = (sys.executable, "-m", "consensus_engine.workers.pipeline_worker")
READY_TIMEOUT_S = 90.0


@dataclass
class WorkerProcess(ChildProcess):
    """One worker process tree, its log and its two HTTP ports."""

    http_port: int
    metrics_port: int

    def get(self, path: str, *, port: int | None = None) -> tuple[int, bytes]:
        reply = http_request(f"http://{HOST}:{port or self.http_port}{path}", timeout=5)
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
        """Until ``/readyz`` answers 200 (imports, broker and database checked) and so does
        ``/metrics``: Dramatiq forks the metrics server only once every worker process is
        up, so with ``-p 2`` one process can be ready and working before it listens."""
        probes = [f"http://{HOST}:{self.http_port}/readyz"]
        if self.metrics_port:
            probes.append(f"http://{HOST}:{self.metrics_port}/metrics")
        self.wait_until(lambda: all(answers_200(url) for url in probes), timeout)


def launch_worker(
    command: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
) -> WorkerProcess:
    """Start a worker on the HTTP and metrics ports that ``env`` names."""
    popen = spawn(command, env=env, log_path=log_path, cwd=cwd)
    ports = int(env["WORKER_HTTP_PORT"]), int(env["WORKER_METRICS_PORT"])
    return WorkerProcess(popen, log_path, "the worker", *ports)


@contextlib.contextmanager
def running_worker(env: Mapping[str, str], log_path: Path) -> Iterator[WorkerProcess]:
    """``python -m consensus_engine.workers.pipeline_worker`` on the ports ``env`` names,
    ready, until the block ends (SIGTERM)."""
    worker = launch_worker(PIPELINE_WORKER, env, log_path)
    try:
        worker.wait_until_ready(READY_TIMEOUT_S)
        yield worker
    finally:
        worker.stop()


@dataclass
class ApiProcess(ChildProcess):
    """``uvicorn`` serving ``create_app()``, with its ports, worker count and key."""

    port: int
    metrics_port: int  # 0: none (several workers cannot share one)
    workers: int
    key: str  # the one tenant's API key

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}/metrics"


def start_api(
    env: Mapping[str, str],
    log_path: Path,
    *,
    tenant: str,
    workers: int = 1,
    timeout: float = 60,
    cwd: Path | None = None,
) -> ApiProcess:
    """Start the API on a free port with one key for ``tenant``; returns once it is ready.

    Its metrics get a free port too, with one worker: every uvicorn worker process starts
    its own metrics server, and only one of them could bind a shared port.
    """
    key, port = new_key(), free_port()
    metrics_port = free_port() if workers == 1 else 0
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "consensus_engine.api.app:create_app",
        "--host", HOST, "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    api_env = {**env, "API_KEYS": f"{tenant}:{digest(key)}", "API_METRICS_PORT": str(metrics_port)}
    popen = spawn(command, env=api_env, log_path=log_path, cwd=cwd)
    server = ApiProcess(popen, log_path, "the API", port, metrics_port, workers, key)
    return server.started(partial(answers_200, f"{server.base_url}/ready"), timeout)
