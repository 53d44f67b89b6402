"""The api's Kafka consumer: folds the topics it reads into its RocksDB views (design §2).

One background thread, one confluent-kafka consumer, partitions assigned by hand (no consumer
group rebalancing: every api process reads every partition of these topics into its own views).

Ordering, per polled batch:
1. Decode and fold every record into one `Batch` (folds read the batch's own pending writes).
2. Put each partition's next offset into the same batch.
3. Commit the batch (one atomic RocksDB write).
A crash before 3 re-reads the batch; after 3 nothing is read twice. On start, each partition
resumes at its stored offset, or at the beginning.

A record that cannot be folded is dead-lettered with its reason (design §7) and skipped: bad
input never stops the thread. Topics that do not exist yet are retried until they do.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from api.publisher import Publisher
from api.store import Batch, Store, key
from cohorts.settings import Settings
from cohorts.wire import DeadLetter

__all__ = ["Feeder", "FeederStats", "Fold"]

log = logging.getLogger(__name__)

Fold = Callable[[Batch, bytes | None], None]


@dataclass
class FeederStats:
    applied: int = 0
    dead_lettered: int = 0
    assigned: bool = False
    errors: list[str] = field(default_factory=list)


class Feeder:
    """Consume `folds` (topic -> fold) into `store` on a daemon thread until `stop()`."""

    def __init__(self, settings: Settings, store: Store, folds: dict[str, Fold], publisher: Publisher) -> None:
        self._settings = settings
        self._store = store
        self._folds = folds
        self._publisher = publisher
        self._stop = threading.Event()
        self.stats = FeederStats()
        self._thread = threading.Thread(target=self._run, name="api-feeder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def ready(self) -> bool:
        return self.stats.assigned

    def _run(self) -> None:
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                "bootstrap.servers": self._settings.bootstrap,
                "group.id": f"cohorts-api-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "client.id": "cohorts-api-feeder",
            }
        )
        try:
            if self._assign(consumer):
                self._loop(consumer)
        finally:
            consumer.close()

    def _assign(self, consumer) -> bool:
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
                    stored = self._store.get(key("offset", topic, partition))
                    assignment.append(TopicPartition(topic, partition, OFFSET_BEGINNING if stored is None else stored))
            if not missing:
                consumer.assign(assignment)
                self.stats.assigned = True
                return True
            log.info("api feeder waiting for topics %s", missing)
            self._stop.wait(1.0)
        return False

    def _loop(self, consumer) -> None:
        while not self._stop.is_set():
            messages = consumer.consume(num_messages=500, timeout=0.2)
            if not messages:
                continue
            batch = self._store.batch()
            for message in messages:
                if message.error() is not None:
                    log.warning("api feeder: %s", message.error())
                    continue
                topic, partition, offset = message.topic(), message.partition(), message.offset()
                try:
                    self._folds[topic](batch, message.value())
                    self.stats.applied += 1
                except Exception as exc:  # bad input is dead-lettered, never fatal (design §7)
                    self.stats.dead_lettered += 1
                    reason = f"{type(exc).__name__}: {exc}"[:500]
                    log.warning("api feeder: dead-lettering %s[%s]@%s: %s", topic, partition, offset, reason)
                    self._publisher.dead_letter(
                        message.key(), DeadLetter.of(reason, topic, partition, offset, message.value())
                    )
                batch.put(key("offset", topic, partition), offset + 1)
            batch.commit()
