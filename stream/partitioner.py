"""Key -> partition for everything the worker produces and checks, remembered per key.

Kafka's default partitioner hashes keys with murmur2, which in Python costs tens of microseconds
a key: the worker would pay it for every re-keyed event (ingest), every person input it checks
(`wrong key or partition`) and every flip. A person's keys repeat, so the answers are kept in a
bounded map, forgotten all at once when it fills up (cheaper than an LRU and just as correct).

`KeyPartitioner` is also the faust app's `producer_partitioner`, so it must answer exactly as
aiokafka's `DefaultPartitioner` (and `cohorts.topics.partition_for`) do: keyless messages go to a
random available partition, keyed ones to murmur2(key) mod the partition count.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Final

from cohorts.topics import partition_for

__all__ = ["KeyPartitioner"]

#: Keys remembered before the map starts over (about 10 MB of small bytes and ints).
DEFAULT_SIZE: Final[int] = 65_536


class KeyPartitioner:
    __slots__ = ("_known", "_size")

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._known: dict[tuple[bytes, int], int] = {}
        self._size = size

    def partition(self, key: bytes, partitions: int) -> int:
        """`cohorts.topics.partition_for(key, partitions)`, remembered."""
        found = self._known.get((key, partitions))
        if found is None:
            if len(self._known) >= self._size:
                self._known.clear()
            found = self._known[(key, partitions)] = partition_for(key, partitions)
        return found

    def __call__(self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
        """aiokafka's partitioner interface (`DefaultPartitioner.__call__`)."""
        if key is None:
            return random.choice(available or all_partitions)
        return all_partitions[self.partition(key, len(all_partitions))]
