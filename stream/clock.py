"""Clocks the worker can run on: the wall clock, a file a test rewrites, or a fixed instant (epoch µs)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["Clock", "file_clock", "fixed_clock", "wall_clock_us"]

Clock = Callable[[], int]


def wall_clock_us() -> int:
    return time.time_ns() // 1_000


def fixed_clock(now_us: int) -> Clock:
    """A clock that never moves: benchmarks that replay a data set at its end. Cheaper than a file
    clock, whose stat per call took 4% of the worker's samples in benchmark 1."""
    return lambda: now_us


#: A file clock re-reads its file at least this often even when a stat shows no change (a
#: filesystem's modification times can be coarser than two quick rewrites in place).
_FILE_CLOCK_REREAD_S = 0.05


def file_clock(path: Path) -> Clock:
    """A clock that follows `path` (write it by rename to be seen at once): re-read when a stat
    shows another file, size or modification time, and at least every 50 ms. A stat costs a fifth
    of a read, and the worker asks for the time once per input. A torn or missing file keeps the
    last value read."""
    last = [int(path.read_text().strip())]
    seen: list[object] = [None, time.monotonic()]

    def now_us() -> int:
        with contextlib.suppress(OSError, ValueError):  # a test is rewriting the file right now
            stat = os.stat(path)
            version = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            checked = time.monotonic()
            if version != seen[0] or checked - seen[1] >= _FILE_CLOCK_REREAD_S:  # type: ignore[operator]
                last[0] = int(path.read_text().strip())
                seen[0], seen[1] = version, checked
        return last[0]

    return now_us
