"""Clocks the worker can run on: the wall clock, or a file a test rewrites (epoch µs)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["Clock", "file_clock", "wall_clock_us"]

Clock = Callable[[], int]


def wall_clock_us() -> int:
    return time.time_ns() // 1_000


def file_clock(path: Path) -> Clock:
    """A clock reading `path` on every call; a torn or missing file keeps the last value read."""
    last = [int(path.read_text().strip())]

    def now_us() -> int:
        with contextlib.suppress(OSError, ValueError):  # a test is rewriting the file right now
            last[0] = int(path.read_text().strip())
        return last[0]

    return now_us
