"""CPU seconds of the processes a benchmark runs, read from Linux's /proc.

Whether the box, not the design, set the pace: per request or run, what the service's
processes, PostgreSQL's backends, the emulator and the benchmark itself spent.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Collection, Mapping
from functools import partial
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PidSource = Callable[[], Collection[int]]
log = logging.getLogger("bench")


def _cpu_seconds(pid: int) -> float | None:
    """User plus system time of a live process; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # After the command name (which may hold spaces): state, ppid, pgrp, ... utime is
    # field 14 of the whole line, stime 15.
    fields = text.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def pids_running(argument: str) -> list[int]:
    """Processes with ``argument`` as one of their arguments (the emulator's ``--port=N``)."""
    needle = argument.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (entry / "cmdline").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
    return found


def backend_pids(sessions: sessionmaker[Session]) -> list[int]:
    """The PostgreSQL server processes serving this database (none on SQLite)."""
    with sessions() as session:
        if session.get_bind().dialect.name != "postgresql":
            return []
        rows = session.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        return [int(pid) for pid in rows]


def shared_sources(
    sessions: sessionmaker[Session], emulator_host: str | None
) -> dict[str, PidSource]:
    """The servers every benchmark shares: the scratch database's backends and the emulator."""
    sources: dict[str, PidSource] = {"PostgreSQL": partial(backend_pids, sessions)}
    if emulator_host is not None:
        port = emulator_host.rpartition(":")[2]
        sources["emulator"] = partial(pids_running, f"--port={port}")
    return sources


def this_process() -> list[int]:
    return [os.getpid()]


def machine_busy_seconds() -> float:
    """CPU seconds all of the machine's CPUs spent busy since boot (/proc/stat), NaN if unknown.

    Other work on the box (tests, builds) competes for the same cores; the difference
    between this and what our processes spent shows how much.
    """
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


class CpuMeter:
    """CPU seconds that named groups of processes spend between two samples."""

    def __init__(self, sources: Mapping[str, PidSource]) -> None:
        self.sources = sources
        self._start: dict[str, dict[int, float]] = {}

    def _sample(self) -> dict[str, dict[int, float]]:
        sample: dict[str, dict[int, float]] = {}
        for name, source in self.sources.items():
            seconds: dict[int, float] = {}
            try:
                pids = source()
            except Exception as error:
                log.debug("no pids for %s: %r", name, error)
                pids = []
            for pid in pids:
                cpu = _cpu_seconds(pid)
                if cpu is not None:
                    seconds[pid] = cpu
            sample[name] = seconds
        return sample

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict[str, float]:
        """Per group: what its processes spent since :meth:`start` (all of it for new ones).

        A group with no process at either end (a remote emulator, SQLite) is left out.
        """
        end = self._sample()
        spent: dict[str, float] = {}
        for name, seconds in end.items():
            before = self._start.get(name, {})
            if seconds or before:
                spent[name] = sum(cpu - before.get(pid, 0.0) for pid, cpu in seconds.items())
        return spent
