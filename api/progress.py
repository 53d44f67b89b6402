"""How far this process's views have applied each topic-partition; writers wait on it.

A position is the next offset the feeder will read: every record below it (data, transaction
markers, compacted gaps) is already folded and committed in the api's store. The feeder raises
positions after each committed batch; a writer waits until the positions pass the offsets it
produced (read-your-writes, design §2) or the committed end of a topic (catch-up before a write).

Invariant: a position never moves backwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

__all__ = ["Progress", "TopicPartition"]

TopicPartition = tuple[str, int]


class Progress:
    def __init__(self, initial: Mapping[TopicPartition, int] | None = None) -> None:
        self._positions: dict[TopicPartition, int] = dict(initial or {})
        self._changed = threading.Condition()

    def advance(self, positions: Mapping[TopicPartition, int]) -> None:
        with self._changed:
            for tp, position in positions.items():
                if position > self._positions.get(tp, -1):
                    self._positions[tp] = position
            self._changed.notify_all()

    def position(self, tp: TopicPartition) -> int:
        """The next offset to apply, or -1 if nothing is known about `tp` yet."""
        with self._changed:
            return self._positions.get(tp, -1)

    def snapshot(self) -> dict[TopicPartition, int]:
        with self._changed:
            return dict(self._positions)

    def reached(self, targets: Mapping[TopicPartition, int]) -> bool:
        with self._changed:
            return self._reached(targets)

    def wait(self, targets: Mapping[TopicPartition, int], timeout_s: float) -> bool:
        """True once every position is at least its target; False after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not self._reached(targets):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def _reached(self, targets: Mapping[TopicPartition, int]) -> bool:
        return all(self._positions.get(tp, -1) >= target for tp, target in targets.items())
