"""Which Pub/Sub server the test suite talks to, and how to start and stop it.

In order of preference:

1. ``PUBSUB_EMULATOR_HOST`` already set: a server someone else runs ("external");
2. ``CE_PUBSUB_BACKEND=fake``: the in-repo Python fake, even where the jar exists;
3. Google's emulator jar, preinstalled with google-cloud-cli on some images
   (Debian 12 has it, Debian 13 lacks it; no registry we can reach ships it);
4. otherwise the Python fake (``support.pubsub_server``).

Tests that need Google's exact behaviour check ``PubSubBackend.exact_google_behaviour``
(see the ``requires_google_emulator`` fixture), so a green run on an image
without the jar says what it skipped.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

JAR_GLOB = "cloud-pubsub-emulator-*.jar"
JAR_DIR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib")
READY_TIMEOUT_S = 60.0
GOOGLE_EMULATOR, PYTHON_FAKE, EXTERNAL = "google-emulator", "python-fake", "external"


class EmulatorStartError(RuntimeError):
    """The emulator process died or never answered; the message ends with its log."""

    def __init__(self, message: str, *, exited: bool) -> None:
        super().__init__(message)
        self.exited = exited


def find_emulator_jar(directory: Path = JAR_DIR) -> Path | None:
    """The newest emulator jar, or None when it (or ``java``) is missing."""
    if shutil.which("java") is None:
        return None
    jars = sorted(directory.glob(JAR_GLOB))
    return jars[-1] if jars else None


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def answers_ok(host: str, *, timeout_s: float = 0.5) -> bool:
    """True when ``host`` ("HOST:PORT") answers HTTP GET / with "Ok", as the jar does."""
    try:
        with urllib.request.urlopen(f"http://{host}/", timeout=timeout_s) as reply:
            return bool(reply.read(16).strip() == b"Ok")
    except (OSError, ValueError, http.client.HTTPException):
        return False


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a child hook so the jar gets SIGTERM when its parent dies.

    A pytest killed by ``timeout`` or CI (SIGTERM/SIGKILL) runs no teardown;
    without this the JVM would outlive it. The signal follows the *thread*
    that started the child, which for pytest fixtures is the main thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)
    return lambda: prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)


class EmulatorProcess:
    """Google's emulator jar as a child process on a free port."""

    def __init__(self, jar: Path, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.jar, self.host_name, self.port = jar, host, port or free_port(host)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host_name}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        if self._log is None:
            return ""
        text = Path(self._log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def start(self, *, timeout_s: float = READY_TIMEOUT_S) -> EmulatorProcess:
        """Start the jar and wait until it answers; a small heap keeps xdist workers light."""
        command = ["java", "-Xmx512m", "-XX:+UseSerialGC", "-jar", str(self.jar)]
        command += [f"--host={self.host_name}", f"--port={self.port}"]
        self._log = tempfile.NamedTemporaryFile(prefix="pubsub-emulator-", suffix=".log")  # noqa: SIM115
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent(),
        )
        deadline = time.monotonic() + timeout_s
        process = self._process
        while not answers_ok(self.address, timeout_s=0.5):
            exited = process.poll() is not None
            if exited or time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                why = (
                    f"exited with status {process.returncode}"
                    if exited
                    else f"did not answer on {self.address} within {timeout_s:.0f} s"
                )
                raise EmulatorStartError(
                    f"the Pub/Sub emulator ({self.jar}) {why}; last lines of its log:\n{tail}",
                    exited=exited,
                )
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Terminate, then kill if it lingers; idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        log, self._log = self._log, None
        if log is not None:
            with contextlib.suppress(OSError):
                log.close()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class PubSubBackend:
    """A running server: where it is, what it is, and how to stop it."""

    host: str
    name: str
    exact_google_behaviour: bool
    _stop: Callable[[], None] = field(default=lambda: None, repr=False)

    def stop(self) -> None:
        stop, self._stop = self._stop, lambda: None
        stop()


def selected_backend(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(name, detail) of the backend ``start_pubsub_backend`` would use; starts nothing."""
    environ = os.environ if environ is None else environ
    if environ.get("PUBSUB_EMULATOR_HOST"):
        return EXTERNAL, f"PUBSUB_EMULATOR_HOST={environ['PUBSUB_EMULATOR_HOST']}"
    if environ.get("CE_PUBSUB_BACKEND") == "fake":
        return PYTHON_FAKE, "forced by CE_PUBSUB_BACKEND=fake"
    jar = find_emulator_jar()
    if jar is not None:
        return GOOGLE_EMULATOR, str(jar)
    return PYTHON_FAKE, f"no {JAR_DIR / JAR_GLOB} (or no java); behaviour is approximate"


def start_pubsub_backend(environ: Mapping[str, str] | None = None) -> PubSubBackend:
    """Start the selected backend (see the module docstring) and return it, ready."""
    name, _ = selected_backend(environ)
    environ = os.environ if environ is None else environ
    if name == EXTERNAL:
        host = environ["PUBSUB_EMULATOR_HOST"]
        return PubSubBackend(host, EXTERNAL, exact_google_behaviour=answers_ok(host))
    if name == GOOGLE_EMULATOR:
        jar = find_emulator_jar()
        assert jar is not None
        for attempt in range(3):  # another process may grab the free port before java does
            try:
                process = EmulatorProcess(jar).start()
            except EmulatorStartError as error:
                if not error.exited or attempt == 2:
                    raise
                continue
            return PubSubBackend(process.address, GOOGLE_EMULATOR, True, process.stop)
    from support.pubsub_server import FakePubSubServer

    server = FakePubSubServer().start()
    return PubSubBackend(server.address, PYTHON_FAKE, False, server.stop)


def publisher_client(host: str, **kwargs: Any) -> Any:
    """A PublisherClient on an insecure channel to ``host``, whatever the environment says."""
    import grpc  # type: ignore[import-untyped, unused-ignore]
    from google.cloud.pubsub_v1 import PublisherClient  # type: ignore[import-untyped, unused-ignore]
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

    transport = PublisherGrpcTransport(channel=grpc.insecure_channel(host))
    return PublisherClient(transport=transport, **kwargs)


def subscriber_client(host: str, **kwargs: Any) -> Any:
    """A SubscriberClient on an insecure channel to ``host``; ``close()`` it when done."""
    import grpc  # type: ignore[import-untyped, unused-ignore]
    from google.cloud.pubsub_v1 import SubscriberClient  # type: ignore[import-untyped, unused-ignore]
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    transport = SubscriberGrpcTransport(channel=grpc.insecure_channel(host))
    return SubscriberClient(transport=transport, **kwargs)
