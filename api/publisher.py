"""What the api writes to Kafka (design §3): catalog records, control messages, id reservations.

The api is the only writer of `cohort_catalog`. Every call waits for the broker's
acknowledgement before returning, so the api answers a request only once its records are
durable in Kafka (acks=all, idempotent producer).

Cohort ids without a coordinator (design §2): `reserve_id` produces a small reservation record
(key `"reserve:<uuid>"`) to the single-partition catalog topic and uses its offset + 1 as the
id; offsets of one partition are unique, so ids are unique across any number of api processes.
A tombstone for the reservation key follows (unawaited) so compaction drops it. Catalog
consumers must skip keys that are not a decimal cohort id.

Control messages keyed `team:person` are partitioned by the producer with `murmur2_random`,
the Java client's key function (design §3). `recalculate` is not the api's: the worker owning the
catalog partition derives it from each new catalog version.

`MemoryPublisher` implements the same interface in memory for unit tests only.
Never: produce from a request without waiting for delivery.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from cohorts.settings import Settings
from cohorts.topics import Topics, person_key
from cohorts.wire import CatalogRecord, ControlMessage, DeadLetter

__all__ = [
    "ControlEnvelope",
    "KafkaPublisher",
    "MemoryPublisher",
    "PublishError",
    "Publisher",
    "control_for_person",
]

RESERVE_PREFIX = "reserve:"


class PublishError(RuntimeError):
    """Kafka did not acknowledge a record in time; the request fails with 503."""


@dataclass(frozen=True, slots=True)
class ControlEnvelope:
    """One control message with its routing: a key (partitioned by murmur2) or an explicit partition."""

    message: ControlMessage
    key: str | None = None
    partition: int | None = None


def control_for_person(message: ControlMessage) -> ControlEnvelope:
    assert message.team_id is not None and message.person_id is not None
    return ControlEnvelope(message, key=person_key(message.team_id, message.person_id))


class Publisher(Protocol):
    def reserve_id(self) -> int: ...
    def publish_catalog(self, record: CatalogRecord) -> None: ...
    def publish_control(self, envelopes: list[ControlEnvelope]) -> None: ...
    def dead_letter(self, key: bytes | None, letter: DeadLetter) -> None: ...
    def close(self) -> None: ...


class KafkaPublisher:
    """confluent-kafka producer: idempotent, acks=all, murmur2 partitioner, a poll thread."""

    def __init__(self, settings: Settings, *, timeout_s: float = 30.0) -> None:
        from confluent_kafka import Producer

        self._topics = Topics(settings.topic_prefix, settings.partitions)
        self._timeout_s = timeout_s
        self._producer = Producer(
            {
                "bootstrap.servers": settings.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "partitioner": "murmur2_random",
                "linger.ms": 2,
                "message.timeout.ms": int(timeout_s * 1000),
                "client.id": "cohorts-api",
            }
        )
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="api-producer-poll", daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def _send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> Future:
        future: Future = Future()

        def delivered(err, msg) -> None:
            if err is not None:
                future.set_exception(PublishError(f"delivery to {topic} failed: {err}"))
            else:
                future.set_result(msg.offset())

        kwargs = {"key": key, "value": value, "on_delivery": delivered}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, **kwargs)
                break
            except BufferError:
                time.sleep(0.01)
        return future

    def _wait(self, futures: list[Future]) -> list[int]:
        deadline = time.monotonic() + self._timeout_s
        offsets = []
        for future in futures:
            try:
                offsets.append(future.result(timeout=max(0.0, deadline - time.monotonic())))
            except TimeoutError as exc:
                raise PublishError("Kafka did not acknowledge in time") from exc
        return offsets

    def reserve_id(self) -> int:
        reservation = f"{RESERVE_PREFIX}{uuid.uuid4()}".encode()
        value = orjson.dumps({"reserved_at_ms": int(time.time() * 1000)})
        (offset,) = self._wait([self._send(self._topics.catalog, reservation, value, partition=0)])
        self._send(self._topics.catalog, reservation, None, partition=0)  # tombstone, not awaited
        return offset + 1

    def publish_catalog(self, record: CatalogRecord) -> None:
        self._wait([self._send(self._topics.catalog, str(record.id).encode(), record.to_bytes(), partition=0)])

    def publish_control(self, envelopes: list[ControlEnvelope]) -> None:
        futures = [
            self._send(
                self._topics.control,
                None if env.key is None else env.key.encode(),
                env.message.to_bytes(),
                partition=env.partition,
            )
            for env in envelopes
        ]
        self._wait(futures)

    def dead_letter(self, key: bytes | None, letter: DeadLetter) -> None:
        self._send(self._topics.dead_letters, key, letter.to_bytes())

    def close(self) -> None:
        self._producer.flush(5)
        self._stop.set()
        self._poller.join(timeout=2)


@dataclass
class MemoryPublisher:
    """In-memory stand-in for unit tests only: records what would have been produced."""

    next_offset: int = 0
    catalog: list[CatalogRecord] = field(default_factory=list)
    control: list[ControlEnvelope] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    fail: bool = False

    def reserve_id(self) -> int:
        self._check()
        self.next_offset += 1
        return self.next_offset

    def publish_catalog(self, record: CatalogRecord) -> None:
        self._check()
        self.catalog.append(record)
        self.next_offset += 1

    def publish_control(self, envelopes: list[ControlEnvelope]) -> None:
        self._check()
        self.control.extend(envelopes)

    def dead_letter(self, key: bytes | None, letter: DeadLetter) -> None:
        self.dead_letters.append(letter)

    def close(self) -> None:
        return None

    def _check(self) -> None:
        if self.fail:
            raise PublishError("Kafka is unavailable (test)")
