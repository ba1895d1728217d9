"""Google's Pub/Sub emulator jar as a child process on a free port.

The jar ships with google-cloud-cli on some images (Debian 12 has it, Debian 13 lacks
it; no registry we can reach ships it). Where it or ``java`` is missing, the demo and
the tests use the embedded server (:mod:`consensus_engine.devtools.pubsub_server`) and
the benchmarks skip their Pub/Sub rows.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from consensus_engine.devtools.loopback import http_request
from consensus_engine.devtools.process import ChildProcess, ProcessError, free_port, spawn

JAR_DIR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib")
JAR_GLOB = "cloud-pubsub-emulator-*.jar"
READY_TIMEOUT_S = 60.0


def find_emulator_jar(directory: Path = JAR_DIR) -> Path | None:
    """The newest emulator jar, or None when it (or ``java`` on PATH) is missing."""
    if shutil.which("java") is None:
        return None
    jars = sorted(directory.glob(JAR_GLOB))
    return jars[-1] if jars else None


def why_no_emulator_jar(directory: Path = JAR_DIR) -> str:
    """Why :func:`find_emulator_jar` found nothing, in a few words."""
    return "no java on PATH" if shutil.which("java") is None else f"no {directory / JAR_GLOB}"


def answers_ok(host: str, *, timeout_s: float = 0.5) -> bool:
    """True when ``host`` ("HOST:PORT") answers HTTP GET / with "Ok", as the jar does."""
    with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
        return http_request(f"http://{host}/", timeout=timeout_s).body.strip() == b"Ok"
    return False


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a child hook so the JVM gets SIGTERM when its parent dies.

    A pytest killed by ``timeout`` or CI (SIGTERM/SIGKILL) runs no teardown; without
    this the JVM would outlive it. The signal follows the *thread* that started the
    child, which for pytest fixtures, the demo and the benchmarks is the main thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)
    return lambda: prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)


@dataclass
class EmulatorProcess(ChildProcess):
    host: str  # "127.0.0.1:PORT"

    def stop(self, timeout: float = 10) -> int:
        """Stop the JVM and remove its log; idempotent."""
        status = super().stop(timeout)
        self.log_path.unlink(missing_ok=True)
        return status


def start_emulator(
    jar: Path, *, timeout_s: float = READY_TIMEOUT_S, retries: int = 2
) -> EmulatorProcess:
    """Start the jar and wait until it answers; a small heap keeps parallel test runs light."""
    host = f"127.0.0.1:{free_port()}"
    handle, log_name = tempfile.mkstemp(prefix="pubsub-emulator-", suffix=".log")
    os.close(handle)
    command = ["java", "-Xmx512m", "-XX:+UseSerialGC", "-jar", str(jar)]
    command += ["--host=127.0.0.1", f"--port={host.rpartition(':')[2]}"]
    popen = spawn(command, env=os.environ, log_path=Path(log_name), preexec_fn=_die_with_parent())
    process = EmulatorProcess(popen, Path(log_name), f"the Pub/Sub emulator ({jar})", host)
    try:
        return process.started(lambda: answers_ok(host), timeout_s)
    except ProcessError as error:
        if error.exited and retries > 0:  # another process may have taken the port first
            return start_emulator(jar, timeout_s=timeout_s, retries=retries - 1)
        raise


@dataclass(frozen=True)
class Emulator:
    """Where the emulator listens (``host:port``), or ``None`` with why not."""

    host: str | None
    description: str


@contextlib.contextmanager
def pubsub_emulator(configured: str | None) -> Iterator[Emulator]:
    """``configured`` (``PUBSUB_EMULATOR_HOST``) if it answers, else the jar, started here
    and stopped when the block ends, else why not (the demo and the benchmarks use this)."""
    if configured:
        host = configured if answers_ok(configured, timeout_s=1) else None
        missing = "" if host else " does not answer"
        yield Emulator(host, f"PUBSUB_EMULATOR_HOST={configured}{missing}")
        return
    jar = find_emulator_jar()
    if jar is None:
        yield Emulator(None, f"PUBSUB_EMULATOR_HOST unset and {why_no_emulator_jar()}")
        return
    try:
        process = start_emulator(jar)
    except ProcessError as error:
        yield Emulator(None, f"emulator jar did not become ready: {error}")
        return
    try:
        yield Emulator(
            process.host, f"{jar.name} started here on {process.host} (pid {process.pid})"
        )
    finally:
        process.stop()
