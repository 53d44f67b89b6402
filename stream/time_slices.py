"""Share the event loop fairly between tasks that each work through long batches.

Ingest and the person fold both run as tasks of one event loop. asyncio runs ready tasks in turn,
so each gets the loop for as long as it runs between two awaits: when ingest yielded once per
1,000 records (about 250 ms) and the fold once per message (a few ms), the fold got a sliver of
each round and fell seconds behind while ingest kept up (docs/benchmarks.md). A `TimeSlice`
yields once its budget of work has run, so every busy task gets turns of about the same length.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

__all__ = ["DEFAULT_SLICE_S", "TimeSlice"]

#: How long a task works before letting the others run: short enough for ticks and heartbeats,
#: long enough that switching costs nothing measurable.
DEFAULT_SLICE_S: Final[float] = 0.02


class TimeSlice:
    def __init__(self, budget_s: float = DEFAULT_SLICE_S) -> None:
        self._budget_s = budget_s
        self._until = time.perf_counter() + budget_s

    def over(self) -> bool:
        """Whether this task has worked for its budget: a plain check for hot loops, which then
        await `maybe_yield` only when it is over (one coroutine per record costs more than the check)."""
        return time.perf_counter() >= self._until

    async def maybe_yield(self) -> None:
        """Let the other tasks run if this one has worked for its budget since it last did."""
        if self.over():
            await asyncio.sleep(0)
            self.restart()

    def restart(self) -> None:
        """A fresh budget: the task just waited (for records, for a flush) and others ran meanwhile."""
        self._until = time.perf_counter() + self._budget_s
