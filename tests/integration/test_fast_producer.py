"""The worker's librdkafka producer: a flush returns once everything sent before it is in Kafka."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from cohorts.topics import partition_for
from stream.fast_producer import FastProducer
from stream.runtime import WorkerTuning

pytestmark = pytest.mark.kafka


async def test_flush_waits_for_every_message_sent_before_it_and_keys_land_like_java(kafka_bootstrap, make_topics):
    topics = make_topics(partitions=4)
    fast = FastProducer(kafka_bootstrap, linger_ms=WorkerTuning().producer_linger_ms)
    sent = {f"p{n}".encode(): f"v{n}".encode() for n in range(2000)}
    for key, value in sent.items():
        fast.send(topics.membership_changed, key, value)
    await fast.flush()
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}"})
    try:
        partitions = range(topics.partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topics.membership_changed, p))[1] for p in partitions}
        assert sum(ends.values()) == len(sent)  # all acknowledged when flush returned, no waiting here
        consumer.assign([TopicPartition(topics.membership_changed, p, 0) for p in partitions])
        got: dict[bytes, tuple[bytes, int]] = {}
        while len(got) < len(sent):
            for message in consumer.consume(500, timeout=5.0):
                got[message.key()] = (message.value(), message.partition())
        assert {key: value for key, (value, _) in got.items()} == sent
        assert all(partition == partition_for(key, topics.partitions) for key, (_, partition) in got.items())
    finally:
        consumer.close()
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
        consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}"})
        try:
            ends = {
                p: consumer.get_watermark_offsets(TopicPartition(topics.membership_changed, p))[1]
                for p in range(topics.partitions)
            }
        finally:
            consumer.close()
        assert ends == {0: 5, 1: 0, 2: 30, 3: 0}
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
        consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}"})
        try:
            partitions = range(topics.partitions)
            ends = {
                p: consumer.get_watermark_offsets(TopicPartition(topics.membership_changed, p))[1] for p in partitions
            }
            expected = sum(len(values) for values in runs.values())
            assert sum(ends.values()) == expected == 4_650  # no waiting here: all were in when flush returned
            consumer.assign([TopicPartition(topics.membership_changed, p, 0) for p in partitions])
            got: dict[bytes, list[bytes]] = {}
            seen = 0
            while seen < expected:
                for message in consumer.consume(500, timeout=5.0):
                    assert message.partition() == partition_for(message.key(), topics.partitions)
                    got.setdefault(message.key(), []).append(message.value())
                    seen += 1
            assert got == runs
        finally:
            consumer.close()
    finally:
        fast.close()
