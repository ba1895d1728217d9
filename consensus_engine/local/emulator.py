"""Find or start a Pub/Sub emulator for the demo or a benchmark run.

The demo and the benchmarks run with one command on a bare machine: when
``PUBSUB_EMULATOR_HOST`` is unset, Google's emulator jar is started on a free
port and stopped afterwards; when neither is possible, callers get the reason
and skip their Pub/Sub rows instead of failing.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

JAR_DIR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib")
JAR_GLOB = "cloud-pubsub-emulator-*.jar"
STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Emulator:
    """Where the emulator listens (``host:port``), or ``None`` with why not."""

    host: str | None
    description: str


def free_port() -> int:
    """A port nothing listens on now; the jar binds it a moment later."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ok(host: str) -> bool:
    """The emulator answers a plain HTTP GET / with "Ok" once it serves gRPC."""
    try:
        with urllib.request.urlopen(f"http://{host}/", timeout=1) as response:
            body: bytes = response.read()
    except (OSError, urllib.error.URLError):
        return False
    return body.strip() == b"Ok"


def _wait_ready(process: subprocess.Popen[bytes], host: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if _answers_ok(host):
            return True
        time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the JVM lingers."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _tail(log: IO[bytes], limit: int = 400) -> str:
    log.seek(0)
    text = log.read().decode(errors="replace").strip()
    return text[-limit:] or "no output"


def _start_jar(jar: str, java: str, log: IO[bytes]) -> tuple[subprocess.Popen[bytes], str]:
    host = f"127.0.0.1:{free_port()}"
    command = [java, "-Xmx512m", "-XX:+UseSerialGC", "-jar", jar]
    command += ["--host=127.0.0.1", f"--port={host.rpartition(':')[2]}"]
    process = subprocess.Popen(  # noqa: S603 - our own java and jar paths
        command, stdin=subprocess.DEVNULL, stdout=log, stderr=log
    )
    return process, host


@contextlib.contextmanager
def pubsub_emulator(
    configured: str | None, timeout: float = STARTUP_TIMEOUT_S
) -> Iterator[Emulator]:
    """Yield the emulator to use: ``configured`` (``host:port``), else a jar started here."""
    if configured:
        if _answers_ok(configured):
            yield Emulator(configured, f"PUBSUB_EMULATOR_HOST={configured}")
        else:
            yield Emulator(None, f"PUBSUB_EMULATOR_HOST={configured} does not answer")
        return
    jars = sorted(str(jar) for jar in JAR_DIR.glob(JAR_GLOB))
    java = shutil.which("java")
    if not jars or java is None:
        missing = "emulator jar" if not jars else "java"
        yield Emulator(None, f"PUBSUB_EMULATOR_HOST unset and no {missing} ({JAR_DIR / JAR_GLOB})")
        return
    with tempfile.TemporaryFile() as log:
        process, host = _start_jar(jars[-1], java, log)
        try:
            if _wait_ready(process, host, timeout):
                name = Path(jars[-1]).name
                yield Emulator(host, f"{name} started here on {host} (pid {process.pid})")
            else:
                yield Emulator(None, f"emulator jar did not become ready: {_tail(log)}")
        finally:
            _stop(process)
