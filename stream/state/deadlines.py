"""The deadline index: which persons of a partition must be re-evaluated because time passed.

Derived state (design §5): each person record carries its next deadline; this index only lets a
tick find the due ones without scanning. It lives in memory, one per partition, and is rebuilt
from the records (`rebuild`, reading only each record's header) the first time a partition is
used after an assignment, so it can never disagree with the table for long.

Invariant: `deadline_of(key)` is the deadline of the record last written for `key` in this
partition. Heap entries that no longer match it are stale and skipped (lazy deletion).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from stream.state.codec import peek_deadline

__all__ = ["DeadlineIndex"]


class DeadlineIndex:
    __slots__ = ("_at", "_heap")

    def __init__(self) -> None:
        self._at: dict[bytes, int] = {}
        self._heap: list[tuple[int, bytes]] = []

    @classmethod
    def rebuild(cls, items: Iterable[tuple[bytes, bytes]]) -> DeadlineIndex:
        """An index over `(key, record bytes)` pairs, reading only the header of each record."""
        index = cls()
        for key, raw in items:
            index.set(key, peek_deadline(raw))
        return index

    def set(self, key: bytes, deadline_us: int | None) -> None:
        if deadline_us is None:
            self._at.pop(key, None)
            return
        if self._at.get(key) == deadline_us:
            return
        self._at[key] = deadline_us
        heapq.heappush(self._heap, (deadline_us, key))
        if len(self._heap) > 2 * len(self._at) + 1_024:
            self._compact()

    def deadline_of(self, key: bytes) -> int | None:
        return self._at.get(key)

    def pop_due(self, now_us: int, limit: int | None = None) -> list[bytes]:
        """Keys whose deadline is <= now, earliest first; they leave the index (the caller re-sets them)."""
        due: list[bytes] = []
        heap = self._heap
        while heap and heap[0][0] <= now_us and (limit is None or len(due) < limit):
            deadline_us, key = heapq.heappop(heap)
            if self._at.get(key) == deadline_us:
                del self._at[key]
                due.append(key)
        return due

    def next_deadline_us(self) -> int | None:
        heap = self._heap
        while heap and self._at.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def count_due(self, now_us: int) -> int:
        return sum(1 for deadline_us in self._at.values() if deadline_us <= now_us)

    def __len__(self) -> int:
        return len(self._at)

    def _compact(self) -> None:
        self._heap = [(deadline_us, key) for key, deadline_us in self._at.items()]
        heapq.heapify(self._heap)
