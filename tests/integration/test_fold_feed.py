"""The person fold's feed against a real broker: which partitions it reads, where it stops, what it commits."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from confluent_kafka import Message

from stream.batch_consumer import BatchConsumer
from stream.fold_feed import FoldFeed
from tests.integration.test_batch_consumer import _committed, _produce

pytestmark = pytest.mark.kafka


class _Folded:
    """What the feed folded, as (partition, offset), and how many flushes ran."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []
        self.flushes = 0
        #: While cleared, folding the record at `hold_at` waits.
        self.go_on = asyncio.Event()
        self.go_on.set()
        self.hold_at: tuple[int, int] | None = None
        self.holding = asyncio.Event()

    async def fold(self, message: Message) -> None:
        where = (message.partition(), message.offset())
        if where == self.hold_at:
            self.holding.set()
            await self.go_on.wait()
        self.seen.append(where)

    async def flush(self) -> None:
        self.flushes += 1

    async def until(self, count: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.seen) < count:
            assert time.monotonic() < deadline, f"folded {len(self.seen)} of {count}"
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _running(bootstrap: str, group: str, topic: str, folded: _Folded) -> AsyncIterator[FoldFeed]:
    consumer = BatchConsumer(
        bootstrap, group, [], commit_interval_s=3600.0, session_timeout_s=6.0, heartbeat_interval_s=1.0, max_records=4
    )
    feed = FoldFeed(consumer, topic, folded.flush)
    task = asyncio.create_task(feed.run(folded.fold))
    try:
        yield feed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await feed.close()


async def test_it_folds_only_the_partitions_it_follows_and_resumes_where_it_released(kafka_bootstrap, make_topics):
    """Scenario: 5 records on each of 4 partitions; the feed follows 0 and 2, then is released, then
    3 more records land on each partition and it follows 0 and 2 again. Expected: nothing before the
    first `follow`; then every record of 0 and 2 once, in order, none of 1 and 3; `release` flushes,
    then commits 5 and 5; after following again exactly the 3 new records of each are folded."""
    topics = make_topics(partitions=4)
    group = f"fold-{uuid.uuid4().hex[:8]}"
    _produce(kafka_bootstrap, topics.person_inputs, dict.fromkeys(range(4), 5))
    folded = _Folded()
    async with _running(kafka_bootstrap, group, topics.person_inputs, folded) as feed:
        await asyncio.sleep(1.0)
        assert folded.seen == []
        await feed.follow([0, 2])
        await folded.until(10)
        await asyncio.sleep(1.0)  # nothing of partitions 1 and 3 may follow
        assert sorted(folded.seen) == [(p, o) for p in (0, 2) for o in range(5)]
        assert [o for p, o in folded.seen if p == 0] == list(range(5))

        await feed.release()
        assert folded.flushes == 1 and feed.partitions == frozenset()
        assert _committed(kafka_bootstrap, group, topics.person_inputs, 4) == {0: 5, 2: 5}

        _produce(kafka_bootstrap, topics.person_inputs, dict.fromkeys(range(4), 3))
        await asyncio.sleep(1.0)
        assert len(folded.seen) == 10  # released: reads nothing
        await feed.follow([0, 2])
        await folded.until(16)
        await asyncio.sleep(1.0)
        assert sorted(folded.seen[10:]) == [(p, o) for p in (0, 2) for o in range(5, 8)]


async def test_a_release_inside_a_batch_stops_after_the_record_under_way_and_commits_only_what_was_folded(
    kafka_bootstrap, make_topics
):
    """Scenario: 8 records on partition 1, batches of at most 4; folding offset 2 waits while
    `release` is called. Expected: `release` returns only after that record was folded; offsets 3
    and later are not folded; the commit is 3; following again folds 3 to 7, each once."""
    topics = make_topics(partitions=2)
    group = f"fold-{uuid.uuid4().hex[:8]}"
    _produce(kafka_bootstrap, topics.person_inputs, {1: 8})
    folded = _Folded()
    folded.hold_at, folded.go_on = (1, 2), asyncio.Event()
    async with _running(kafka_bootstrap, group, topics.person_inputs, folded) as feed:
        await feed.follow([1])
        await asyncio.wait_for(folded.holding.wait(), 30)
        releasing = asyncio.create_task(feed.release())
        await asyncio.sleep(0.5)
        assert not releasing.done()  # it waits for the record under way
        folded.go_on.set()
        await asyncio.wait_for(releasing, 30)
        assert folded.seen == [(1, 0), (1, 1), (1, 2)]
        assert _committed(kafka_bootstrap, group, topics.person_inputs, 2) == {1: 3}

        await feed.follow([1])
        await folded.until(8)
        await asyncio.sleep(1.0)
        assert folded.seen == [(1, o) for o in range(8)]
