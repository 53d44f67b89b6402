"""Key -> partition for everything the worker produces and checks.

`KeyPartitioner` is the faust app's `producer_partitioner` and the worker's key check, so it must
answer exactly as aiokafka's `DefaultPartitioner` (and `cohorts.topics.partition_for`) do: keyless
messages go to a random available partition, keyed ones to murmur2(key) mod the partition count.
`partition_for` hashes in librdkafka (about 0.2 µs a key), which is as cheap as looking the answer
up in a map, so nothing is remembered.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from cohorts.topics import partition_for

__all__ = ["KeyPartitioner"]


class KeyPartitioner:
    __slots__ = ()

    def partition(self, key: bytes, partitions: int) -> int:
        """`cohorts.topics.partition_for(key, partitions)`."""
        return partition_for(key, partitions)

    def __call__(self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
        """aiokafka's partitioner interface (`DefaultPartitioner.__call__`)."""
        if key is None:
            return random.choice(available or all_partitions)
        return all_partitions[partition_for(key, len(all_partitions))]
