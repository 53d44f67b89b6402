"""The person fold's reader of `cohort_person_inputs`: librdkafka, following faust's assignment.

A table needs faust for its partitions: the co-partitioned assignment, changelog recovery and the
hand-over of each partition's RocksDB. Reading the inputs does not, and faust's per-record path did
not keep up with them: inputs waited 70-350 ms in its fetch loop and stream queue while the
process stayed half idle (docs/benchmarks.md, "Where the time goes"). So faust keeps the group
membership (`cohort_control` and the person table's changelog, co-partitioned) and this feed reads
the same partitions of `cohort_person_inputs` through a `stream.batch_consumer.BatchConsumer`
that joins no group:

- when faust has recovered the tables of a new assignment (`follow`, on `app.on_rebalance_complete`),
  the feed reads those partitions, each from the position committed in the fold's group
  (`Topics.fold_group`);
- when a rebalance revokes them, or the worker stops (`release`, before faust closes the
  partitions' databases), it stops between two records, runs the pre-commit flush, commits the
  position after the last record folded and unassigns. The next owner starts there.

At least once, as in stream.batch_consumer: a position is committed only after everything the
records before it caused is acknowledged by Kafka, and the fold's idempotence by source offset
absorbs what a crash makes it read twice. A rebalance is eager (every partition is revoked before
any is assigned again), so two workers never fold the same partition at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from confluent_kafka import Message

from stream.batch_consumer import BatchConsumer
from stream.time_slices import TimeSlice

__all__ = ["FoldFeed"]

log = logging.getLogger(__name__)

#: Folds one record (a message of `cohort_person_inputs`, one input or a batch of them).
Fold = Callable[[Message], Awaitable[None]]


class FoldFeed:
    def __init__(self, consumer: BatchConsumer, topic: str, flush: Callable[[], Awaitable[None]]) -> None:
        """`flush` is the worker's pre-commit flush (stream.fast_producer.attach)."""
        self._consumer = consumer
        self._topic = topic
        self._flush = flush
        #: Held while a batch is read and folded, and while the feed changes its partitions.
        self._lock = asyncio.Lock()
        self._following = asyncio.Event()
        self._releasing = False
        self._closed = False
        #: The partitions being read (empty while released).
        self.partitions: frozenset[int] = frozenset()

    async def follow(self, partitions: Iterable[int]) -> None:
        """Read these partitions of the topic from now on: faust assigned them and recovered their state."""
        async with self._lock:
            if self._closed:
                return
            if self.partitions:  # assigned again without a revocation first: keep what was folded
                await self._consumer.commit(self._flush)
            self.partitions = frozenset(partitions)
            await self._consumer.assign([(self._topic, p) for p in sorted(self.partitions)])
            self._releasing = False
            self._following.set()
        log.info("person fold reads partitions %s", sorted(self.partitions))

    async def release(self) -> None:
        """Stop reading after the record being folded; flush, commit what was folded, unassign."""
        self._releasing = True
        self._following.clear()
        async with self._lock:
            if self._closed:  # the fold task ended (a crash): the next owner re-reads since its last commit
                return
            await self._consumer.commit(self._flush)
            await self._consumer.assign([])
            self.partitions = frozenset()
        log.info("person fold released its partitions")

    async def run(self, fold: Fold) -> None:
        """Fold records until cancelled, committing every commit interval while following."""
        consumer, turn = self._consumer, TimeSlice()
        while True:
            await self._following.wait()
            async with self._lock:
                if self._releasing:  # released while this loop waited for the lock
                    continue
                records = await consumer.batch()
                turn.restart()
                for n, record in enumerate(records):
                    if self._releasing:
                        consumer.unread(records[n:])
                        break
                    await fold(record)
                    await turn.maybe_yield()  # a record can hold hundreds of inputs
                if consumer.due() and not self._releasing:
                    await consumer.commit(self._flush)

    async def lag(self) -> dict[tuple[str, int], int]:
        return await self._consumer.lag()

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            await self._consumer.close()
