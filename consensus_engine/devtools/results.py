"""A benchmark's figures: rows that could not run, percentiles and number formatting."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger("bench")
T = TypeVar("T")


@dataclass(frozen=True)
class Skipped:
    """A row that could not run: ``kind`` is "skipped" (a server is missing) or "failed"."""

    reason: str
    kind: str = "skipped"

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason}"


def attempt(action: Callable[[], T]) -> T | Skipped:
    """Run one row; an error becomes a failed row instead of ending the benchmark."""
    try:
        return action()
    except Exception as error:
        log.debug("row failed", exc_info=True)
        return Skipped(f"{type(error).__name__}: {error}"[:600], kind="failed")


def attempt_cleanup(what: str, action: Callable[[], object]) -> None:
    """Cleanup must not hide the figures (or other cleanups): say what failed and go on."""
    try:
        action()
    except Exception as error:
        log.warning("could not %s: %r", what, error)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN without samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def fmt(value: float, spec: str, width: int) -> str:
    """``value`` formatted to ``width``, or a dash for a figure that was not measured (NaN)."""
    return f"{'-':>{width}}" if math.isnan(value) else f"{value:{width}{spec}}"
