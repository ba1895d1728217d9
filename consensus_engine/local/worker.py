"""Run the pipeline worker as a child process, as the demo and a developer would."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

_READY_TIMEOUT_SECONDS = 90.0


class WorkerStartError(RuntimeError):
    """The worker exited or never became ready; the message ends with its log."""


@dataclass(frozen=True)
class LocalWorker:
    pid: int
    log_path: Path
    http_port: int


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(path: Path, limit: int = 2000) -> str:
    return path.read_text(errors="replace")[-limit:] if path.exists() else ""


@contextlib.contextmanager
def running_worker(env: Mapping[str, str], log_path: Path, http_port: int) -> Iterator[LocalWorker]:
    """``python -m consensus_engine.workers.pipeline_worker`` until the block ends (SIGTERM)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "consensus_engine.workers.pipeline_worker"],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        while not _ready(http_port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise WorkerStartError(
                    f"the worker did not start (see {log_path}):\n{_log_tail(log_path)}"
                )
            time.sleep(0.2)
        yield LocalWorker(process.pid, log_path, http_port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
