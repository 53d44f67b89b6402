"""The api's Kafka consumer: folds the topics it reads into its RocksDB views (design §2).

One background thread, one confluent-kafka consumer, partitions assigned by hand (no consumer
group rebalancing: every api process reads every partition of these topics into its own views).
It reads with `isolation.level=read_committed`, so records of an aborted api transaction are
never folded (`api.publisher`).

Ordering, per polled batch:
1. Decode and fold every record into one `Batch` (folds read the batch's own pending writes).
2. Put each partition's position (the consumer's, which also steps over transaction markers)
   into the same batch.
3. Commit the batch (one atomic RocksDB write), then raise `Progress`, waking writers that
   wait for their own records (read-your-writes).
A crash before 3 re-reads the batch; after 3 nothing is read twice. On start, each partition
resumes at its stored position, or at the beginning, so a wiped data dir rebuilds every view
from Kafka.

Ready: assigned, and caught up with the committed end of the catalog and api-log partitions as
it was at assignment (so a restarted process does not serve an empty cohort list).

Polling: the loop blocks in `poll` until a record arrives (or `idle_wait_s` passes), then
drains what is already fetched without waiting (`consume(..., timeout=0)`), so a record is
folded as soon as it is fetched (it used to wait for a 200 ms batch timeout). The idle wait
bounds how late a position that moved only over transaction markers is noticed (writers wait
for those) and how late `stop()` is seen; an idle feeder wakes `1 / idle_wait_s` times a second.

Fetching: the broker answers a fetch once it holds `api_fetch_min_bytes` (64 KiB) or after
`api_fetch_wait_ms` (20 ms). With the defaults of librdkafka (1 byte) it answered at once, so under
load the api asked for every few flips, and the broker's request handling is a large part of the
machine's CPU (docs/benchmarks.md, 2026-11-27). The cost: a record read while little arrives waits
up to the 20 ms, which a write waiting to read its own records adds to its answer.

A record that cannot be folded is dead-lettered with its reason (design §7) and skipped: bad
input never stops the thread. Topics that do not exist yet are retried until they do.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from api.metrics import ApiMetrics
from api.progress import Progress, TopicPartition
from api.publisher import Publisher
from api.store import Store, key
from api.views.record import Fold, Record
from cohorts.settings import Settings
from cohorts.wire import DeadLetter

__all__ = ["IDLE_WAIT_S", "MAX_BATCH", "Feeder", "FeederStats", "stored_positions"]

log = logging.getLogger(__name__)

_LAG_EVERY_S = 2.0
#: Longest wait for a record before the loop looks at positions again (see the module docstring).
IDLE_WAIT_S = 0.05
#: Most records folded into one RocksDB batch.
MAX_BATCH = 500


@dataclass
class FeederStats:
    applied: int = 0
    dead_lettered: int = 0
    assigned: bool = False
    caught_up: bool = False
    errors: list[str] = field(default_factory=list)


def stored_positions(store: Store, topics: list[str]) -> dict[TopicPartition, int]:
    """The positions a previous run committed, for `Progress` before the feeder starts."""
    positions = {}
    for topic in topics:
        for _, row in store.scan(key("offset", topic) + b":"):
            if isinstance(row, dict):
                positions[(topic, row["partition"])] = row["position"]
    return positions


def _next_batch(consumer: Any, idle_wait_s: float, max_batch: int) -> list[Any]:
    """Up to `max_batch` records: block until the first one (at most `idle_wait_s`), then take
    only what is already fetched."""
    first = consumer.poll(idle_wait_s)
    if first is None:
        return []
    return [first, *consumer.consume(num_messages=max_batch - 1, timeout=0)] if max_batch > 1 else [first]


class Feeder:
    """Consume `folds` (topic -> fold) into `store` on a daemon thread until `stop()`.

    `catch_up` names the topics whose committed end (at assignment) must be reached to be ready.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        folds: dict[str, Fold],
        publisher: Publisher,
        progress: Progress,
        *,
        catch_up: tuple[str, ...] = (),
        metrics: ApiMetrics | None = None,
        idle_wait_s: float = IDLE_WAIT_S,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._settings = settings
        self._idle_wait_s = idle_wait_s
        self._max_batch = max_batch
        self._store = store
        self._folds = folds
        self._publisher = publisher
        self._progress = progress
        self._catch_up = catch_up
        self._metrics = metrics
        self._stop = threading.Event()
        self._assignment: list[Any] = []
        self._ready_targets: dict[TopicPartition, int] = {}
        self.stats = FeederStats()
        self._thread = threading.Thread(target=self._run, name="api-feeder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def ready(self) -> bool:
        return self.stats.caught_up

    def _run(self) -> None:
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                "bootstrap.servers": self._settings.bootstrap,
                "group.id": f"cohorts-api-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "fetch.min.bytes": self._settings.api_fetch_min_bytes,
                "fetch.wait.max.ms": self._settings.api_fetch_wait_ms,
                "client.id": "cohorts-api-feeder",
                "logger": logging.getLogger("api.kafka"),
            }
        )
        try:
            if self._assign(consumer):
                self._loop(consumer)
        finally:
            consumer.close()

    def _assign(self, consumer: Any) -> bool:
        from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

        while not self._stop.is_set():
            assignment: list[TopicPartition] = []
            missing = []
            try:
                metadata = consumer.list_topics(timeout=5)
            except KafkaException as exc:  # broker not reachable yet: retry until stopped
                log.warning("api feeder: no metadata yet: %s", exc)
                self._stop.wait(1.0)
                continue
            for topic in self._folds:
                info = metadata.topics.get(topic)
                if info is None or info.error is not None or not info.partitions:
                    missing.append(topic)
                    continue
                for partition in sorted(info.partitions):
                    stored = self._progress.position((topic, partition))
                    assignment.append(TopicPartition(topic, partition, OFFSET_BEGINNING if stored < 0 else stored))
            if not missing:
                try:
                    self._ready_targets = {
                        (topic, 0): consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)[1]
                        for topic in self._catch_up
                    }
                    self._start_positions(consumer, assignment)
                except KafkaException as exc:
                    log.warning("api feeder: no end offsets yet: %s", exc)
                    self._stop.wait(1.0)
                    continue
                consumer.assign(assignment)
                self._assignment = assignment
                self.stats.assigned = True
                self._check_ready()
                return True
            log.info("api feeder waiting for topics %s", missing)
            self._stop.wait(1.0)
        return False

    def _start_positions(self, consumer: Any, assignment: list[Any]) -> None:
        """A partition of a topic writers wait on (`catch_up`), read from its beginning, starts
        at its low watermark: nothing below it exists, so it is all applied (an empty partition
        is caught up at once). Other partitions get a position with their first record."""
        starts = {}
        for tp in assignment:
            if tp.topic in self._catch_up and self._progress.position((tp.topic, tp.partition)) < 0:
                low, _ = consumer.get_watermark_offsets(tp, timeout=5)
                starts[(tp.topic, tp.partition)] = low
        self._progress.advance(starts)

    def _check_ready(self) -> None:
        if not self.stats.caught_up and self._progress.reached(self._ready_targets):
            self.stats.caught_up = True
            log.info("api views caught up with %s", sorted(self._ready_targets))

    def _loop(self, consumer: Any) -> None:
        lag_due = 0.0
        while not self._stop.is_set():
            messages = _next_batch(consumer, self._idle_wait_s, self._max_batch)
            batch = self._store.batch()
            for message in messages:
                if message.error() is not None:
                    log.warning("api feeder: %s", message.error())
                    continue
                self._fold(batch, message)
            moved = self._moved(consumer)
            for (topic, partition), position in moved.items():
                batch.put(key("offset", topic, partition), {"partition": partition, "position": position})
            batch.commit()
            if moved:
                self._progress.advance(moved)
                self._check_ready()
            if self._metrics is not None and time.monotonic() >= lag_due:
                lag_due = time.monotonic() + _LAG_EVERY_S
                self._observe(consumer)

    def _fold(self, batch: Any, message: Any) -> None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        _, timestamp_ms = message.timestamp()
        record = Record(topic, partition, offset, message.key(), message.value(), max(0, timestamp_ms))
        try:
            self._folds[topic](batch, record)
            self.stats.applied += 1
            if self._metrics is not None:
                self._metrics.records_applied.labels(topic).inc()
        except Exception as exc:  # bad input is dead-lettered, never fatal (design §7)
            self.stats.dead_lettered += 1
            reason = f"{type(exc).__name__}: {exc}"[:500]
            if self._metrics is not None:
                self._metrics.dead_letters.labels(topic, type(exc).__name__).inc()
            log.warning("api feeder: dead-lettering %s[%s]@%s: %s", topic, partition, offset, reason)
            self._publisher.dead_letter(message.key(), DeadLetter.of(reason, topic, partition, offset, message.value()))

    def _moved(self, consumer: Any) -> dict[TopicPartition, int]:
        """Positions that moved since the last batch (past records and transaction markers)."""
        moved = {}
        for tp in consumer.position(self._assignment):
            if tp.offset >= 0 and tp.offset > self._progress.position((tp.topic, tp.partition)):
                moved[(tp.topic, tp.partition)] = tp.offset
        return moved

    def _observe(self, consumer: Any) -> None:
        from confluent_kafka import KafkaException

        assert self._metrics is not None
        for tp in self._assignment:
            position = self._progress.position((tp.topic, tp.partition))
            self._metrics.consumer_position.labels(tp.topic, str(tp.partition)).set(max(0, position))
            try:
                _, end = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:  # not fetched yet: no lag to report
                continue
            if end >= 0:
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, end - max(0, position)))
