"""Ingest's batch consumer against a real broker: what it commits, and when."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from stream.batch_consumer import BatchConsumer

pytestmark = pytest.mark.kafka


def _produce(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for partition, count in counts.items():
        for n in range(count):
            producer.produce(topic, f"v{n}".encode(), f"k{n}".encode(), partition)
    assert producer.flush(30) == 0


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = reader.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}
    finally:
        reader.close()


def _consumer(bootstrap: str, group: str, topic: str, **overrides: object) -> BatchConsumer:
    settings: dict = {"commit_interval_s": 0.0, "session_timeout_s": 6.0, "heartbeat_interval_s": 1.0}
    settings.update(overrides)
    return BatchConsumer(bootstrap, group, [topic], **settings)


async def _read(consumer: BatchConsumer, count: int, timeout_s: float = 30.0) -> list:
    records: list = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count:
        assert time.monotonic() < deadline, f"read {len(records)} of {count}"
        records += await consumer.batch()
    return records


async def test_commit_waits_for_the_flush_then_covers_every_record_handed_out(kafka_bootstrap, make_topics):
    """Scenario: 7 records on partition 0 and 3 on partition 2. Expected: batches hand out all ten in
    partition order; nothing is committed until `commit` runs, and when the flush it awaits returns
    nothing is committed yet either; afterwards the group's offsets are 7 and 3."""
    topics = make_topics(partitions=4)
    group = f"g-{uuid.uuid4().hex[:8]}"
    _produce(kafka_bootstrap, topics.events, {0: 7, 2: 3})
    consumer = _consumer(kafka_bootstrap, group, topics.events)
    try:
        records = await _read(consumer, 10)
        by_partition = {p: [r.offset() for r in records if r.partition() == p] for p in (0, 2)}
        assert by_partition == {0: list(range(7)), 2: list(range(3))}
        assert _committed(kafka_bootstrap, group, topics.events, 4) == {}

        seen_during_flush: list[dict[int, int]] = []

        async def flush() -> None:
            await asyncio.sleep(0.2)
            seen_during_flush.append(_committed(kafka_bootstrap, group, topics.events, 4))

        await consumer.commit(flush)
        assert seen_during_flush == [{}]
        assert _committed(kafka_bootstrap, group, topics.events, 4) == {0: 7, 2: 3}
    finally:
        await consumer.close()


async def test_a_failed_flush_commits_nothing_and_the_next_commit_still_covers_those_records(
    kafka_bootstrap, make_topics
):
    """Scenario: the flush raises (Kafka refused an output). Expected: the error reaches the caller,
    no offset is committed; a later successful commit covers the same records."""
    topics = make_topics(partitions=1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    _produce(kafka_bootstrap, topics.events, {0: 5})
    consumer = _consumer(kafka_bootstrap, group, topics.events)
    try:
        await _read(consumer, 5)

        async def refused() -> None:
            raise RuntimeError("Kafka refused an output")

        async def delivered() -> None:
            return None

        with pytest.raises(RuntimeError, match="refused"):
            await consumer.commit(refused)
        assert _committed(kafka_bootstrap, group, topics.events, 1) == {}
        await consumer.commit(delivered)
        assert _committed(kafka_bootstrap, group, topics.events, 1) == {0: 5}
    finally:
        await consumer.close()


async def test_a_restarted_group_resumes_after_the_commit_and_rereads_what_was_not_committed(
    kafka_bootstrap, make_topics
):
    """Scenario: 10 records; the first consumer commits after reading them, 5 more arrive and it reads
    them but stops without committing. Expected: the next consumer of the group gets exactly those 5."""
    topics = make_topics(partitions=1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    _produce(kafka_bootstrap, topics.events, {0: 10})
    first = _consumer(kafka_bootstrap, group, topics.events)

    async def delivered() -> None:
        return None

    try:
        await _read(first, 10)
        await first.commit(delivered)
        _produce(kafka_bootstrap, topics.events, {0: 5})
        await _read(first, 5)
    finally:
        await first.close()
    second = _consumer(kafka_bootstrap, group, topics.events)
    try:
        records = await _read(second, 5)
        assert [r.offset() for r in records] == [10, 11, 12, 13, 14]
    finally:
        await second.close()


async def test_due_follows_the_commit_interval_and_lag_counts_what_is_not_handed_out(kafka_bootstrap, make_topics):
    """Scenario: 50 records, batches of at most 20. Expected: after one batch the lag of the partition
    is 30; not due before the interval has passed since the last commit, due after it."""
    topics = make_topics(partitions=1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    _produce(kafka_bootstrap, topics.events, {0: 50})
    consumer = _consumer(kafka_bootstrap, group, topics.events, commit_interval_s=0.5, max_records=20)
    try:
        records = await _read(consumer, 1)
        assert len(records) <= 20
        handed_out = len(records)
        deadline = time.monotonic() + 10
        while (lag := await consumer.lag()) != {(topics.events, 0): 50 - handed_out}:
            assert time.monotonic() < deadline, lag
            await asyncio.sleep(0.1)

        async def delivered() -> None:
            return None

        await consumer.commit(delivered)
        assert not consumer.due()
        await asyncio.sleep(0.6)
        assert consumer.due()
    finally:
        await consumer.close()


async def test_positions_of_a_failed_commit_are_committed_by_the_next_one(kafka_bootstrap, make_topics):
    """Scenario: a consumer that joins no group (the fold's feed) reads 5 records of partition 0, then
    commits while another consumer is a member of the group, which the broker refuses to a
    non-member. Expected: nothing committed; once the member has left, the next commit, with no new
    record handed out in between, commits 5."""
    topics = make_topics(partitions=1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    _produce(kafka_bootstrap, topics.person_inputs, {0: 5})
    feed = BatchConsumer(
        kafka_bootstrap, group, [], commit_interval_s=0.0, session_timeout_s=6.0, heartbeat_interval_s=1.0
    )
    member = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "session.timeout.ms": 6000})

    async def flush() -> None:
        pass

    try:
        await feed.assign([(topics.person_inputs, 0)])
        assert len(await _read(feed, 5)) == 5
        member.subscribe([topics.person_inputs])
        deadline = time.monotonic() + 30
        while not member.assignment():
            assert time.monotonic() < deadline, "the member never joined"
            member.poll(0.2)
        await feed.commit(flush)
        assert _committed(kafka_bootstrap, group, topics.person_inputs, 1) == {}
        member.close()
        await feed.commit(flush)
        assert _committed(kafka_bootstrap, group, topics.person_inputs, 1) == {0: 5}
    finally:
        await feed.close()
