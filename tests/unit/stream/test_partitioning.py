"""Ingest re-keys with faust's producer (aiokafka's default partitioner); the fold and the api rely on
`cohorts.topics.partition_for`. They must agree, or a person's inputs and control messages would land
on different partitions (design §3)."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from cohorts.topics import murmur2, partition_for, person_key
from stream.partitioner import KeyPartitioner


@pytest.mark.parametrize("partitions", [1, 3, 16, 64])
def test_aiokafka_default_partitioner_agrees_with_partition_for(partitions: int):
    chooser = DefaultPartitioner()
    everyone = list(range(partitions))
    for n in range(500):
        key = person_key(n % 7, f"018f-{n:04x}-person-ü").encode()
        assert chooser(key, everyone, everyone) == partition_for(key, partitions)


@pytest.mark.parametrize("partitions", [1, 3, 16, 64])
def test_the_worker_partitioner_agrees_with_aiokafka(partitions: int):
    """Scenario: the worker's producer partitioner and its key check answer as aiokafka's default one."""
    chooser = DefaultPartitioner()
    worker = KeyPartitioner()
    everyone = list(range(partitions))
    for n in range(300):
        key = person_key(n % 5, f"p-{n}").encode()
        expected = chooser(key, everyone, everyone)
        assert worker(key, everyone, everyone) == expected == worker.partition(key, partitions)


def test_the_worker_partitioner_sends_keyless_messages_to_an_available_partition():
    worker = KeyPartitioner()
    assert {worker(None, [0, 1, 2], [2]) for _ in range(20)} == {2}
    assert worker(None, [0, 1, 2], []) in {0, 1, 2}


@pytest.mark.parametrize("partitions", [1, 2, 3, 7, 16, 64, 1000])
def test_partition_for_answers_as_the_java_formula_over_murmur2_for_every_key_length(partitions: int):
    """`partition_for` asks librdkafka's murmur2 when confluent-kafka exposes it; the Python `murmur2`
    (Java's `Utils.murmur2`) is the reference, for empty keys, every tail length and non-ASCII bytes."""
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"abcde"] + [
        person_key(n % 11, f"p-{n}-ü" * (n % 9)).encode() for n in range(2_000)
    ]
    for key in keys:
        assert partition_for(key, partitions) == (murmur2(key) & 0x7FFFFFFF) % partitions
