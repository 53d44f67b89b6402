"""The worker's librdkafka producer: a flush returns once everything sent before it is in Kafka."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from cohorts.topics import partition_for
from stream.fast_producer import FastProducer
from stream.runtime import WorkerTuning

pytestmark = pytest.mark.kafka


def _ends(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Each partition's end offset, read at once (no waiting: a flush must already have put them there)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p))[1] for p in range(partitions)}
    finally:
        consumer.close()


def _read(bootstrap: str, topic: str, partitions: int, count: int) -> list[tuple[bytes, bytes, int]]:
    """The first `count` messages of the topic as (key, value, partition), each partition's in order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}"})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        read: list[tuple[bytes, bytes, int]] = []
        while len(read) < count:
            read += [(m.key(), m.value(), m.partition()) for m in consumer.consume(500, timeout=5.0)]
        return read
    finally:
        consumer.close()


async def test_flush_waits_for_every_message_sent_before_it_and_keys_land_like_java(kafka_bootstrap, make_topics):
    topics = make_topics(partitions=4)
    fast = FastProducer(kafka_bootstrap, linger_ms=WorkerTuning().producer_linger_ms)
    sent = {f"p{n}".encode(): f"v{n}".encode() for n in range(2000)}
    try:
        for key, value in sent.items():
            fast.send(topics.membership_changed, key, value)
        await fast.flush()
        ends = _ends(kafka_bootstrap, topics.membership_changed, topics.partitions)
        assert sum(ends.values()) == len(sent)  # all acknowledged when flush returned, no waiting here
        got = _read(kafka_bootstrap, topics.membership_changed, topics.partitions, len(sent))
        assert {key: value for key, value, _ in got} == sent
        assert all(partition == partition_for(key, topics.partitions) for key, _, partition in got)
    finally:
        fast.close()


async def test_explicit_partitions_are_kept_and_acknowledged_offsets_are_tracked_per_partition(
    kafka_bootstrap, make_topics
):
    """Scenario: 30 messages to partition 2 and 5 to partition 0, all under one key. Expected: they
    land where named, not where the key hashes, and after the flush the tracked offsets are the last
    of each partition (29 and 4); another topic is not tracked."""
    topics = make_topics(partitions=4)
    fast = FastProducer(kafka_bootstrap, linger_ms=WorkerTuning().producer_linger_ms)
    offsets = fast.track_offsets(topics.membership_changed)
    try:
        for n in range(30):
            fast.send(topics.membership_changed, b"same", f"a{n}".encode(), 2)
        for n in range(5):
            fast.send(topics.membership_changed, b"same", f"b{n}".encode(), 0)
        fast.send(topics.dead_letters, b"other", b"x")
        await fast.flush()
        assert offsets == {2: 29, 0: 4}
        assert _ends(kafka_bootstrap, topics.membership_changed, topics.partitions) == {0: 5, 1: 0, 2: 30, 3: 0}
    finally:
        fast.close()


async def test_flush_waits_for_every_message_of_runs_whose_last_message_alone_is_reported(kafka_bootstrap, make_topics):
    """Scenario: 300 runs of 1 to 30 messages under 300 keys (4,650 messages), then one flush.
    Expected: when the flush returns, Kafka holds every message, each key's in the order sent, on
    the partition its key hashes to (so the report of a run's last message covered the run)."""
    topics = make_topics(partitions=4)
    fast = FastProducer(kafka_bootstrap, linger_ms=WorkerTuning().producer_linger_ms)
    runs = {f"p{n}".encode(): [f"v{n}-{i}".encode() for i in range(1 + n % 30)] for n in range(300)}
    try:
        for key, values in runs.items():
            fast.send_run(topics.membership_changed, key, values)
        await fast.flush()
        ends = _ends(kafka_bootstrap, topics.membership_changed, topics.partitions)
        assert sum(ends.values()) == sum(map(len, runs.values())) == 4_650  # all in when flush returned
        got: dict[bytes, list[bytes]] = {}
        for key, value, partition in _read(kafka_bootstrap, topics.membership_changed, topics.partitions, 4_650):
            assert partition == partition_for(key, topics.partitions)
            got.setdefault(key, []).append(value)
        assert got == runs
    finally:
        fast.close()
