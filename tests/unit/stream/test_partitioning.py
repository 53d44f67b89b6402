"""Ingest re-keys with faust's producer (aiokafka's default partitioner); the fold and the api rely on
`cohorts.topics.partition_for`. They must agree, or a person's inputs and control messages would land
on different partitions (design §3)."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from cohorts.topics import partition_for, person_key


@pytest.mark.parametrize("partitions", [1, 3, 16, 64])
def test_aiokafka_default_partitioner_agrees_with_partition_for(partitions: int):
    chooser = DefaultPartitioner()
    everyone = list(range(partitions))
    for n in range(500):
        key = person_key(n % 7, f"018f-{n:04x}-person-ü").encode()
        assert chooser(key, everyone, everyone) == partition_for(key, partitions)
