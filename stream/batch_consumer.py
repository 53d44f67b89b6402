"""A librdkafka consumer that hands a stateless stage its records in batches, at least once.

Ingest only validates, gates and re-keys: it holds no table, so it needs neither faust's
co-partitioned assignment nor its per-record path (fetch loop, conductor, event, stream iteration,
acknowledgement), which cost more than ingest's own work (docs/benchmarks.md). This consumer runs
in its own consumer group; its records reach the stage as lists of `confluent_kafka.Message`.

At least once, in this order (the stage calls `commit` when `due()`):
1. `commit(flush)` awaits `flush`, which must return only when everything the stage produced for
   the records handed out so far is acknowledged by Kafka (the worker passes the pre-commit flush
   of stream.fast_producer.attach);
2. then it commits the position after the last record handed out, per partition.
The stage does not ask for records while `commit` runs, so step 2 never covers a record whose
outputs step 1 did not wait for.

A rebalance drops the positions of revoked partitions, never committing them: their next owner
re-reads from the last commit, and the fold's idempotence by source offset absorbs the repeats.
Without `topics` the consumer joins no group: the caller `assign`s it partitions (stream.fold_feed)
and it only commits its positions in the group.
Every call into librdkafka runs on one thread of its own, so a wait for records never blocks the
event loop and rebalance callbacks never race the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from stream.read_committed import FETCH_MAX_WAIT_MS

__all__ = ["BatchConsumer"]

log = logging.getLogger(__name__)

#: Most records one batch carries.
DEFAULT_MAX_RECORDS: Final[int] = 1_000
#: How long one wait for the first record of a batch lasts (the loop then asks again).
DEFAULT_WAIT_S: Final[float] = 0.1


class BatchConsumer:
    def __init__(
        self,
        bootstrap: str,
        group: str,
        topics: Sequence[str],
        *,
        commit_interval_s: float,
        session_timeout_s: float,
        heartbeat_interval_s: float,
        max_records: int = DEFAULT_MAX_RECORDS,
        wait_s: float = DEFAULT_WAIT_S,
        fetch_min_bytes: int = 1,
        fetch_wait_ms: int = FETCH_MAX_WAIT_MS,
        **config: Any,
    ) -> None:
        """`fetch_min_bytes`: the broker answers a fetch once it has that many bytes or after
        `fetch_wait_ms`, whichever comes first (stream.runtime.WorkerTuning)."""
        settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # the api writes some inputs' neighbours in transactions; an aborted write is never read
            "isolation.level": "read_committed",
            "session.timeout.ms": int(session_timeout_s * 1000),
            "heartbeat.interval.ms": int(heartbeat_interval_s * 1000),
            "fetch.wait.max.ms": fetch_wait_ms,
            "fetch.min.bytes": fetch_min_bytes,
            "logger": logging.getLogger("stream.batch_consumer.librdkafka"),
        }
        settings.update(config)
        self._consumer = Consumer(settings)
        self._topics = list(topics)
        self._max_records = max_records
        self._wait_s = wait_s
        self._commit_interval_s = commit_interval_s
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"consumer-{group}")
        #: (topic, partition) -> the offset after the last record handed out.
        self._positions: dict[tuple[str, int], int] = {}
        self._last_commit = time.monotonic()
        self._subscribed = False

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    async def batch(self) -> list[Message]:
        """The next records, oldest first per partition; empty when none came within `wait_s`."""
        if self._topics and not self._subscribed:
            await self._call(self._subscribe)
            self._subscribed = True
        messages: list[Message] = await self._call(self._next)
        records = []
        positions = self._positions
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error on %s: %s", message.topic(), error)
                continue
            positions[(message.topic(), message.partition())] = message.offset() + 1
            records.append(message)
        return records

    def unread(self, records: Sequence[Message]) -> None:
        """Take back the hand-out of `records`, a batch's tail left unprocessed: the next commit
        stops before them (they are read again after the next `assign`)."""
        positions = self._positions
        for message in records:
            where = (message.topic(), message.partition())
            if positions.get(where, -1) > message.offset():
                positions[where] = message.offset()

    async def assign(self, partitions: Sequence[tuple[str, int]]) -> None:
        """Read exactly these (topic, partition)s from now on, each from the position committed in the
        group (the earliest without one); uncommitted positions of others are dropped."""
        keep = set(partitions)
        self._positions = {where: offset for where, offset in self._positions.items() if where in keep}
        await self._call(self._assign, [TopicPartition(topic, partition) for topic, partition in partitions])

    def due(self) -> bool:
        """Whether `commit_interval_s` has passed since the last commit."""
        return time.monotonic() - self._last_commit >= self._commit_interval_s

    async def commit(self, flush: Callable[[], Awaitable[None]]) -> None:
        """Await `flush`, then commit every position handed out before it (module docstring)."""
        self._last_commit = time.monotonic()
        await flush()
        if not self._positions:
            return
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in self._positions.items()]
        self._positions = {}
        try:
            await self._call(self._commit, offsets)
        except KafkaException as exc:  # e.g. no coordinator (broker down) or a rebalance in between
            log.warning("commit of %d positions failed: %s", len(offsets), exc)
            await self._call(self._keep_uncommitted, offsets)

    async def lag(self) -> dict[tuple[str, int], int]:
        """Records behind the high watermark per assigned partition (as of the last fetch)."""
        return await self._call(self._lag)

    async def close(self) -> None:
        """Leave the group (its partitions move at once, not after the session timeout)."""
        try:
            await self._call(self._consumer.close)
        finally:
            self._thread.shutdown(wait=False)

    # Below: run on the consumer's own thread only.

    def _subscribe(self) -> None:
        self._consumer.subscribe(self._topics, on_revoke=self._on_revoke, on_lost=self._on_revoke)

    def _assign(self, partitions: list[TopicPartition]) -> None:
        if partitions:
            self._consumer.assign(partitions)
        else:
            self._consumer.unassign()

    def _next(self) -> list[Message]:
        messages = self._consumer.consume(self._max_records, 0)
        if not messages:  # nothing buffered: wait for the first record, no longer than `wait_s`
            messages = self._consumer.consume(1, self._wait_s)
        return messages

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._positions.pop((tp.topic, tp.partition), None)

    def _commit(self, offsets: list[TopicPartition]) -> None:
        self._consumer.commit(offsets=offsets, asynchronous=False)

    def _keep_uncommitted(self, offsets: list[TopicPartition]) -> None:
        """Put a failed commit's positions back for the next one, for the partitions still assigned:
        a partition that receives nothing more would otherwise never be committed past them."""
        assigned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        positions = self._positions
        for tp in offsets:
            where = (tp.topic, tp.partition)
            if where in assigned and positions.get(where, -1) < tp.offset:
                positions[where] = tp.offset

    def _lag(self) -> dict[tuple[str, int], int]:
        assigned = self._consumer.assignment()
        lags: dict[tuple[str, int], int] = {}
        for tp in self._consumer.position(assigned) if assigned else []:
            _, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if tp.offset >= 0 and high >= 0:
                lags[(tp.topic, tp.partition)] = max(0, high - tp.offset)
        return lags
