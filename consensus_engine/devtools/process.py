"""A child process in its own process group, with its output in a log file.

Workers, the API, Google's emulator and Prometheus start the same way: from our
environment less the settings, on free ports; they are ready when a probe says so, and
stop with SIGTERM, then SIGKILL for whatever is left of their group (forked children
that outlived their parent included).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from consensus_engine.settings import Settings

log = logging.getLogger(__name__)

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()


class ProcessError(RuntimeError):
    """The child exited or never became ready; the message ends with its log."""

    def __init__(self, message: str, *, exited: bool) -> None:
        super().__init__(message)
        self.exited = exited


def environ_without_settings() -> dict[str, str]:
    """This process's environment minus every variable Settings reads, so only ours count."""
    names = {name.upper() for name in Settings.model_fields}
    return {key: value for key, value in os.environ.items() if key.upper() not in names}


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now, for a child to bind a moment later.

    Chosen below the kernel's ephemeral range where it has one: outgoing connections
    draw their source ports from that range, so on a busy machine one of them could
    take the port before the child binds it. Another process choosing ports the
    same way may still, which is why the choice is random and never repeated here.
    """
    low, high = _listening_range()
    for _ in range(200):
        port = random.randint(low, high) if high else 0  # noqa: S311 - not a secret
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            chosen: int = probe.getsockname()[1]
        if chosen not in _handed_out:
            _handed_out.add(chosen)
            return chosen
    raise OSError(f"no free port on {host} between {low} and {high}")


def _listening_range() -> tuple[int, int]:
    """Ports from 20000 up to the ephemeral range's start; (0, 0) lets the kernel choose."""
    try:
        first = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0, 0
    return (20_000, first - 1) if first > 21_000 else (0, 0)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in this block, as Ctrl-C does.

    Children started here live in sessions of their own, so a SIGTERM that ended only us
    (a CI job's timeout, ``kill``) would leave them running and holding their ports; as an
    interrupt it unwinds the block that stops them. Main thread only.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def spawn(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path | None = None,
    preexec_fn: Callable[[], object] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a new session (so its group is ours to kill), logging to a file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        return subprocess.Popen(  # noqa: S603 - our own commands
            command,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec_fn,
        )


@dataclass
class ChildProcess:
    """A started child; ``name`` ("the worker") words its errors."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    name: str

    @property
    def pid(self) -> int:
        return self.popen.pid

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, limit: int = 3000) -> str:
        return self.logs()[-limit:]

    def pids(self) -> set[int]:
        """The child and every live process it forked, their children included (none once
        the child is gone)."""
        import psutil  # the dev extra's (benchmarks, tests), not the demo's

        try:
            child = psutil.Process(self.popen.pid)
            return {child.pid, *(process.pid for process in child.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()

    def _error(self, what: str, *, exited: bool) -> ProcessError:
        return ProcessError(
            f"{self.name} {what}; end of {self.log_path}:\n{self.tail()}", exited=exited
        )

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise self._error(f"exited with {self.popen.returncode}", exited=True)

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        """Until ``ready()`` holds; ProcessError if the child exits or time runs out first."""
        deadline = time.monotonic() + timeout
        while not ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise self._error(f"was not ready after {timeout:.0f} s", exited=False)
            time.sleep(0.05)

    def started(self, ready: Callable[[], bool], timeout: float) -> Self:
        """:meth:`wait_until`, stopping a child that never gets ready before raising."""
        try:
            self.wait_until(ready, timeout)
        except BaseException:
            self.stop(timeout=15)
            raise
        return self

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (the child finishes what it is doing), SIGKILL after ``timeout``; its status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %.0f s", self.name, timeout)
        self.kill()
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL the whole group at once: no clean-up of any kind."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)
