"""Every state change the api makes, as Kafka records (design §2, §3).

A request's changes (`Changes`: catalog records, control messages, api-log records) are produced
in one Kafka transaction, so every reader that folds committed records (every api process reads
with `isolation.level=read_committed`) sees all of them or none. The api answers only after its
own feeder has applied what it produced (read-your-writes): `Progress` tells it when.

Order of one `write(build, cohort_id=...)`, under the publisher's lock:
1. Take the transactional producer that owns the write: the cohort's own
   (`transactional.id = <prefix>cohorts-api-cohort-<id>`, shared by every api process), or this
   process's (`<prefix>cohorts-api-<instance id>`) for a new cohort. A producer that was not
   initialised yet calls `init_transactions`, which fences every older producer with the same id
   in any process: from then on only this one can commit records about that cohort.
2. Catch up: wait until this process's views have applied the committed end (LSO) of the
   catalog and api-log partitions, as of now.
3. `build(reserve)` reads the views and returns the changes, or raises an `ApiError` (nothing is
   produced). `reserve()` produces an id reservation inside the transaction (design §2: the id is
   the reservation's catalog offset + 1; offsets of one partition are unique, so ids are unique
   across api processes without a coordinator), then its tombstone, so compaction drops it.
4. Produce the changes and commit the transaction. A commit that fails after every record was
   acknowledged, with any error but one that requires an abort, may or may not have been taken
   by the coordinator. It is settled first: its transaction is ended (by the fence that failed
   it, or by initialising the owner's producer again), and a read-committed fetch of its first
   record tells which way it ended. Committed: go on to 5; aborted: run 1-5 again.
5. Wait until the feeder applied every produced offset, then return.

Concurrent writes to one cohort through two processes (design §2): the catalog topic's order is
the truth, and a cohort's records are written by one producer at a time. If B initialises the
cohort's producer while A holds it, A is fenced: A's open transaction is aborted (or its next
commit fails), nothing of it is ever read by an api process, and A runs 1-5 again on views that
now include B's change (up to `attempts` times, then `WriteConflict`, a 409). So a PATCH is
always applied to the latest committed row, and each catalog record's `version` is its
predecessor's + 1: versions increase strictly along the topic, in every process, after a
restart and after compaction.

Limits, as Kafka transactions have them: the worker reads `cohort_control` and `cohort_catalog`
uncommitted, so it may briefly see records of a transaction that was then aborted (a fenced
write that is retried, or a failure answered with 503); and a process that dies inside a
transaction holds back read-committed readers of those partitions until the next write to that
cohort fences it or `transaction.timeout.ms` passes.

File-system views and dead letters are not cohort changes: a plain idempotent producer sends
them outside transactions. A view logged by a read (`log(..., wait=False)`) is not waited for:
the read answers at once, and `settle` is what a later reader of views calls to see every view
this process logged so far (read-your-writes moved from the read that logs to the read that
shows). `MemoryPublisher` is the unit tests' stand-in: it folds what it is
given straight into the views, as a broker plus the feeder would.

Exception tree:
    RuntimeError
     └── PublishError          Kafka did not take the change (nothing was written): 503
          ├── NotApplied       written, but this process did not apply it in time: 503
          ├── OutcomeUnknown   a failed commit Kafka could not be asked about: 503
          └── WriteConflict    fenced by other writers of the cohort on every attempt: 409

Never: answer a request before its records are committed and applied; produce a catalog record
outside a transaction.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from api.api_log import ApiLogRecord
from api.metrics import ApiMetrics
from api.progress import Progress, TopicPartition
from api.store import Store
from api.views.record import Fold, Record
from cohorts.settings import Settings
from cohorts.topics import Topics, partition_for, person_key
from cohorts.wire import CatalogRecord, ControlMessage, DeadLetter

__all__ = [
    "RESERVE_PREFIX",
    "Changes",
    "ControlEnvelope",
    "KafkaPublisher",
    "MemoryPublisher",
    "NotApplied",
    "PublishError",
    "Publisher",
    "Reserve",
    "Unawaited",
    "WriteConflict",
    "control_for_person",
]

log = logging.getLogger(__name__)

RESERVE_PREFIX = "reserve:"


class PublishError(RuntimeError):
    """Kafka did not take the change in time; nothing of it was written."""


class NotApplied(PublishError):
    """The change is in Kafka, but this process's views did not apply it in time."""


class OutcomeUnknown(PublishError):
    """A commit failed in a way that left its outcome open, and Kafka could not be asked which
    way it ended: the change may or may not be in Kafka."""


class WriteConflict(PublishError):
    """Other processes kept writing the same cohort; this write never got to commit."""


@dataclass(frozen=True, slots=True)
class ControlEnvelope:
    """One control message with its routing: a key (partitioned by murmur2) or an explicit partition."""

    message: ControlMessage
    key: str | None = None
    partition: int | None = None


def control_for_person(message: ControlMessage) -> ControlEnvelope:
    assert message.team_id is not None and message.person_id is not None
    return ControlEnvelope(message, key=person_key(message.team_id, message.person_id))


@dataclass
class Changes:
    """Everything one request changes, produced atomically."""

    catalog: list[CatalogRecord] = field(default_factory=list)
    control: list[ControlEnvelope] = field(default_factory=list)
    log: list[ApiLogRecord] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.catalog or self.control or self.log)


#: Reserves a new cohort id inside the running write.
Reserve = Callable[[], int]
#: Reads the views and returns what to produce (None or empty: nothing); may raise ApiError.
Build = Callable[[Reserve], Changes | None]


class Publisher(Protocol):
    def write(self, build: Build, *, cohort_id: int | None = None) -> None: ...
    def log(self, record: ApiLogRecord, *, timeout_s: float | None = None, wait: bool = True) -> None: ...
    def settle(self, timeout_s: float) -> bool: ...
    def dead_letter(self, key: bytes | None, letter: DeadLetter) -> None: ...
    def close(self) -> None: ...


_FENCED_CODES = frozenset({-144, 90, 47})  # _FENCED, PRODUCER_FENCED, INVALID_PRODUCER_EPOCH


class _Fenced(Exception):
    """Another process initialised this cohort's producer: run the write again."""


class _Unsettled(Exception):
    """`commit_transaction` failed in a way that does not say whether Kafka committed: the
    coordinator may have taken the commit before the error (a lost answer, a retry that met a
    fence), or refused it (Kafka 4.1.1 answers UNKNOWN_SERVER_ERROR to a commit that races an
    epoch fence, then aborts). `delivered` is what the transaction produced."""

    def __init__(self, delivered: list[tuple[str, int, int]], error: Any) -> None:
        super().__init__(str(error))
        self.delivered = delivered
        self.error = error


class _FencingIsExpected(logging.Filter):
    """librdkafka reports being fenced as a fatal error; here it is the normal end of a cohort
    producer that another process took over (see the module docstring), so it is logged at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno > logging.INFO and ("fenced by a newer instance" in message or "old epoch" in message):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _transactions_log() -> logging.Logger:
    logger = logging.getLogger("api.kafka.transactions")
    if not any(isinstance(f, _FencingIsExpected) for f in logger.filters):
        logger.addFilter(_FencingIsExpected())
    return logger


class _Transaction:
    """One open-or-not-yet-begun transaction of one producer, and what it delivered."""

    def __init__(self, producer: Any, timeout_s: float) -> None:
        self.producer = producer
        self.timeout_s = timeout_s
        self.begun = False
        self.produced = 0
        self.delivered: list[tuple[str, int, int]] = []
        self.errors: list[Any] = []

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.errors.append(err)
        else:
            self.delivered.append((msg.topic(), msg.partition(), msg.offset()))

    def produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        if not self.begun:
            self.producer.begin_transaction()
            self.begun = True
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": self._on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self.producer.produce(topic, **kwargs)
                self.produced += 1
                return
            except BufferError:
                self.producer.poll(0.01)

    def produce_now(self, topic: str, key: bytes, value: bytes, partition: int) -> int:
        """Produce one record and wait for its offset (the transaction stays open).

        Waits with `poll`, not `flush`: confluent-kafka 2.16's flush raises SystemError when a
        delivery report is due from a producer that has turned fatal (fenced), where `poll`
        raises the fatal KafkaException, which `_transact` handles."""
        before = len(self.delivered)
        self.produce(topic, key, value, partition)
        deadline = time.monotonic() + self.timeout_s
        while len(self.delivered) == before and not self.errors and time.monotonic() < deadline:
            self.producer.poll(0.01)
        if self.errors or len(self.delivered) == before:
            raise PublishError(f"Kafka did not acknowledge a record on {topic} in time")
        return self.delivered[-1][2]


def _warn_if_lost(future: Future) -> None:
    if future.exception() is not None:
        log.warning("an api-log record sent without waiting was lost: %s", future.exception())


class Unawaited:
    """Api-log records sent without waiting (`log(..., wait=False)`): their delivery futures,
    until each is done, and the end (highest offset + 1) of those that were delivered.

    Thread-safe; `pending()` drops done futures, so it holds at most the records in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: list[Future] = []
        self._end = 0

    def add(self, future: Future) -> None:
        with self._lock:
            self._futures.append(future)

    def pending(self) -> tuple[list[Future], int]:
        """(futures still in flight, end of the delivered ones); failed deliveries are dropped."""
        with self._lock:
            still = []
            for future in self._futures:
                if not future.done():
                    still.append(future)
                elif future.exception() is None:
                    self._end = max(self._end, future.result() + 1)
            self._futures = still
            return list(still), self._end


class KafkaPublisher:
    """Transactional writes, an idempotent producer for views and dead letters, and an LSO probe."""

    def __init__(
        self,
        settings: Settings,
        progress: Progress,
        *,
        instance_id: str,
        metrics: ApiMetrics | None = None,
        timeout_s: float = 10.0,
        apply_timeout_s: float = 10.0,
        attempts: int = 4,
        owners: int = 16,
        transaction_timeout_s: float = 60.0,
    ) -> None:
        from confluent_kafka import Producer

        self._topics = Topics(settings.topic_prefix, settings.partitions)
        self._settings = settings
        self._progress = progress
        self._instance_id = instance_id
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._apply_timeout_s = apply_timeout_s
        self._attempts = attempts
        self._owners_max = owners
        self._transaction_timeout_s = transaction_timeout_s
        self._kafka_log = logging.getLogger("api.kafka")
        self._common = {
            "bootstrap.servers": settings.bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 2,
            "client.id": "cohorts-api",
            "logger": self._kafka_log,
        }
        self._plain = Producer(
            {
                **self._common,
                "enable.idempotence": True,
                "acks": "all",
                "message.timeout.ms": int(timeout_s * 1000),
            }
        )
        self._lock = threading.RLock()
        self._creator: Any = None
        self._owners: OrderedDict[int, Any] = OrderedDict()
        self._probe: Any = None
        self._unawaited = Unawaited()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="api-producer-poll", daemon=True)
        self._poller.start()

    # Producers -----------------------------------------------------------------------------------
    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._plain.poll(0.05)

    def _transactional(self, transactional_id: str) -> Any:
        from confluent_kafka import KafkaException, Producer

        producer = Producer(
            {
                **self._common,
                "logger": _transactions_log(),
                "transactional.id": transactional_id,
                "transaction.timeout.ms": int(self._transaction_timeout_s * 1000),
                "message.timeout.ms": int(self._timeout_s * 1000),
            }
        )
        try:
            producer.init_transactions(self._timeout_s)
        except KafkaException as exc:
            raise PublishError(f"Kafka did not initialise producer {transactional_id}: {exc.args[0]}") from exc
        return producer

    def _producer_for(self, cohort_id: int | None) -> Any:
        prefix = self._settings.topic_prefix
        if cohort_id is None:
            if self._creator is None:
                self._creator = self._transactional(f"{prefix}cohorts-api-{self._instance_id}")
            return self._creator
        producer = self._owners.get(cohort_id)
        if producer is None:
            producer = self._transactional(f"{prefix}cohorts-api-cohort-{cohort_id}")
            self._owners[cohort_id] = producer
            while len(self._owners) > self._owners_max:
                _, oldest = self._owners.popitem(last=False)
                oldest.flush(1)
        self._owners.move_to_end(cohort_id)
        return producer

    def _drop(self, cohort_id: int | None) -> None:
        if cohort_id is None:
            self._creator = None
        else:
            self._owners.pop(cohort_id, None)

    # Waiting -------------------------------------------------------------------------------------
    def _probe_consumer(self) -> Any:
        from confluent_kafka import Consumer

        if self._probe is None:
            self._probe = Consumer(
                {
                    "bootstrap.servers": self._settings.bootstrap,
                    "group.id": f"cohorts-api-probe-{uuid.uuid4().hex}",
                    "isolation.level": "read_committed",
                    "enable.auto.commit": False,
                    "client.id": "cohorts-api-probe",
                    "logger": self._kafka_log,
                }
            )
        return self._probe

    def _committed_end(self, topic: str, partition: int = 0) -> int:
        from confluent_kafka import KafkaException, TopicPartition

        probe = self._probe_consumer()
        deadline = time.monotonic() + self._timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                _, end = probe.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=max(0.1, remaining), cached=False
                )
                return end
            except KafkaException as exc:
                # A new topic's leader may not be known yet: retried until the deadline.
                if remaining <= 0:
                    raise PublishError(f"Kafka did not report the end of {topic}: {exc.args[0]}") from exc
                time.sleep(0.1)

    def _catch_up(self) -> None:
        targets = {(topic, 0): self._committed_end(topic) for topic in (self._topics.catalog, self._topics.api_log)}
        if not self._progress.wait(targets, self._apply_timeout_s):
            raise PublishError("this api process is behind Kafka; nothing was written")

    def _await(self, delivered: list[tuple[str, int, int]], timeout_s: float | None = None) -> None:
        targets: dict[TopicPartition, int] = {}
        for topic, partition, offset in delivered:
            if topic in (self._topics.catalog, self._topics.api_log):
                targets[(topic, partition)] = max(targets.get((topic, partition), 0), offset + 1)
        started = time.monotonic()
        applied = self._progress.wait(targets, self._apply_timeout_s if timeout_s is None else timeout_s)
        if self._metrics is not None:
            self._metrics.apply_wait.observe(time.monotonic() - started)
        if not applied:
            raise NotApplied("the change is in Kafka but this api process has not applied it yet")

    # Writes --------------------------------------------------------------------------------------
    def write(self, build: Build, *, cohort_id: int | None = None) -> None:
        with self._lock:
            for attempt in range(self._attempts):
                producer = self._producer_for(cohort_id)
                self._catch_up()
                try:
                    delivered = self._transact(producer, build, cohort_id)
                except _Fenced:
                    self._drop(cohort_id)
                    self._count_retry("fenced by another api process", cohort_id, attempt)
                    continue
                except _Unsettled as unsettled:
                    if not self._settled_as_committed(cohort_id, unsettled):
                        self._count_retry(f"not committed ({unsettled.error})", cohort_id, attempt)
                        continue
                    delivered = unsettled.delivered
                self._await(delivered)
                return
            raise WriteConflict(f"cohort {cohort_id} kept changing under this write")

    def _count_retry(self, why: str, cohort_id: int | None, attempt: int) -> None:
        if self._metrics is not None:
            self._metrics.write_retries.inc()
        log.info("write to cohort %s %s (attempt %d)", cohort_id, why, attempt + 1)

    def _settled_as_committed(self, cohort_id: int | None, unsettled: _Unsettled) -> bool:
        """Decide an unsettled commit. Its transaction must end first: the InitProducerId that
        fenced a producer ends it (the coordinator commits one it had prepared and aborts the
        rest); a producer that was not fenced is fenced here by initialising the owner's
        producer again. Then the transaction's first record is either visible to read-committed
        readers or skipped by them."""
        topic, partition, offset = unsettled.delivered[0]
        try:
            if unsettled.error.code() not in _FENCED_CODES:
                self._producer_for(cohort_id)
            return self._committed_at(topic, partition, offset)
        except PublishError as exc:
            raise OutcomeUnknown(f"commit failed ({unsettled.error}), then {exc}") from exc

    def _committed_at(self, topic: str, partition: int, offset: int) -> bool:
        """Whether the record at `offset` was committed, once its transaction has ended (the
        committed end is past it): a read-committed fetch from there returns it, or moves its
        position past it without returning it (aborted)."""
        from confluent_kafka import TopicPartition

        deadline = time.monotonic() + self._timeout_s
        while self._committed_end(topic, partition) <= offset:
            if time.monotonic() > deadline:
                raise PublishError(f"Kafka did not end the transaction at {topic}[{partition}]@{offset} in time")
            time.sleep(0.05)
        probe = self._probe_consumer()
        probe.assign([TopicPartition(topic, partition, offset)])
        try:
            while time.monotonic() < deadline:
                message = probe.poll(0.1)
                if message is not None and message.error() is None:
                    return message.offset() == offset
                if probe.position([TopicPartition(topic, partition)])[0].offset > offset:
                    return False
            raise PublishError(f"Kafka did not return {topic}[{partition}]@{offset} in time")
        finally:
            probe.unassign()

    def _transact(self, producer: Any, build: Build, cohort_id: int | None) -> list[tuple[str, int, int]]:
        from confluent_kafka import KafkaException

        txn = _Transaction(producer, self._timeout_s)
        topics = self._topics
        committing = False

        def reserve() -> int:
            reservation = f"{RESERVE_PREFIX}{uuid.uuid4()}".encode()
            value = orjson.dumps({"reserved_at_ms": int(time.time() * 1000)})
            offset = txn.produce_now(topics.catalog, reservation, value, partition=0)
            txn.produce(topics.catalog, reservation, None, partition=0)
            return offset + 1

        try:
            changes = build(reserve)
            if not changes:
                self._abandon(txn, cohort_id, fatal=False)
                return []
            for record in changes.catalog:
                txn.produce(topics.catalog, str(record.id).encode(), record.to_bytes(), partition=0)
            for env in changes.control:
                key = None if env.key is None else env.key.encode()
                txn.produce(topics.control, key, env.message.to_bytes(), partition=env.partition)
            for item in changes.log:
                txn.produce(topics.api_log, item.key, item.to_bytes(), partition=0)
            committing = True
            producer.commit_transaction(self._timeout_s)
        except KafkaException as exc:
            error = exc.args[0]
            # commit_transaction delivers every record (and runs their delivery callbacks)
            # before it asks the coordinator to commit: only then can the commit have been taken.
            if committing and not error.txn_requires_abort() and txn.delivered and len(txn.delivered) == txn.produced:
                self._drop(cohort_id)
                raise _Unsettled(txn.delivered, error) from exc
            # A producer fenced while producing may report only `_FATAL`; its abort tells.
            fenced_on_abort = self._abandon(txn, cohort_id, fatal=error.fatal())
            if fenced_on_abort or error.code() in _FENCED_CODES:
                raise _Fenced from exc
            raise PublishError(f"Kafka did not commit the change: {error}") from exc
        except PublishError as exc:
            if self._abandon(txn, cohort_id, fatal=False):
                raise _Fenced from exc
            raise
        except BaseException:
            self._abandon(txn, cohort_id, fatal=False)
            raise
        if txn.errors:
            raise PublishError(f"Kafka refused a record: {txn.errors[0]}")
        return txn.delivered

    def _abandon(self, txn: _Transaction, cohort_id: int | None, *, fatal: bool) -> bool:
        """Abort an open transaction; a producer that cannot abort (fenced, fatal) is dropped.
        True if the abort found the producer fenced by another process."""
        from confluent_kafka import KafkaException

        if fatal:
            self._drop(cohort_id)
            return False
        if not txn.begun:
            return False
        try:
            txn.producer.abort_transaction(self._timeout_s)
        except KafkaException as exc:
            self._drop(cohort_id)
            if exc.args[0].code() in _FENCED_CODES:
                return True
            log.warning("could not abort a transaction (%s); the producer is replaced", exc.args[0])
        return False

    def log(self, record: ApiLogRecord, *, timeout_s: float | None = None, wait: bool = True) -> None:
        """Produce one api-log record outside any transaction; wait for it to be applied (each
        wait bounded by `timeout_s`, default the publisher's), or with `wait=False` return once
        it is queued (`settle` then waits for it), never blocking: a full local queue is a
        `PublishError` then."""
        bound = self._timeout_s if timeout_s is None else timeout_s
        future = self._send(self._topics.api_log, record.key, record.to_bytes(), partition=0, block=wait)
        if not wait:
            future.add_done_callback(_warn_if_lost)
            self._unawaited.add(future)
            return
        try:
            offset = future.result(timeout=bound)
        except TimeoutError as exc:
            raise PublishError("Kafka did not acknowledge in time") from exc
        self._await([(self._topics.api_log, 0, offset)], min(bound, self._apply_timeout_s))

    def settle(self, timeout_s: float) -> bool:
        """Wait until every record logged with `wait=False` so far is delivered and applied by
        this process; False if that took longer than `timeout_s` (a failed delivery is not waited for)."""
        deadline = time.monotonic() + timeout_s
        in_flight, _ = self._unawaited.pending()
        for future in in_flight:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False
            except PublishError:
                continue
        _, end = self._unawaited.pending()
        if end == 0:
            return True
        return self._progress.wait({(self._topics.api_log, 0): end}, max(0.0, deadline - time.monotonic()))

    def dead_letter(self, key: bytes | None, letter: DeadLetter) -> None:
        self._send(self._topics.dead_letters, key, letter.to_bytes())

    def _send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None, *, block: bool = True
    ) -> Future:
        """Queue one record; a full local queue is waited out, or with `block=False` refused with
        `PublishError` (a caller on the event loop must never sleep here)."""
        future: Future = Future()

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                future.set_exception(PublishError(f"delivery to {topic} failed: {err}"))
            else:
                future.set_result(msg.offset())

        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": delivered}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._plain.produce(topic, **kwargs)
                return future
            except BufferError:
                if not block:
                    raise PublishError("the local Kafka queue is full") from None
                time.sleep(0.01)

    def close(self) -> None:
        with self._lock:
            for producer in [self._creator, *self._owners.values()]:
                if producer is not None:
                    producer.flush(2)
            self._creator = None
            self._owners.clear()
            if self._probe is not None:
                self._probe.close()
                self._probe = None
        self._plain.flush(5)
        self._stop.set()
        self._poller.join(timeout=2)


@dataclass
class MemoryPublisher:
    """In-memory stand-in for unit tests only: keeps what would have been produced and folds it
    into the views it is attached to, as the broker and the feeder would (one batch per write)."""

    next_offset: int = 0
    catalog: list[CatalogRecord] = field(default_factory=list)
    control: list[ControlEnvelope] = field(default_factory=list)
    api_log: list[ApiLogRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    fail: bool = False
    _offsets: dict[TopicPartition, int] = field(default_factory=dict)
    _pending: list[Record] = field(default_factory=list)
    _topics: Topics | None = None
    _store: Store | None = None
    _folds: dict[str, Fold] = field(default_factory=dict)

    def attach(self, topics: Topics, store: Store, folds: dict[str, Fold]) -> None:
        self._topics, self._store, self._folds = topics, store, folds

    def _append(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> int:
        if topic == self._require_topics().catalog:
            offset = self.next_offset
            self.next_offset += 1
        else:
            offset = self._offsets.get((topic, partition), 0)
            self._offsets[(topic, partition)] = offset + 1
        self._pending.append(Record(topic, partition, offset, key, value, int(time.time() * 1000)))
        return offset

    def write(self, build: Build, *, cohort_id: int | None = None) -> None:
        self._check()
        topics = self._require_topics()
        self._pending = []

        def reserve() -> int:
            reservation = f"{RESERVE_PREFIX}{uuid.uuid4()}".encode()
            offset = self._append(topics.catalog, 0, reservation, b"{}")
            self._append(topics.catalog, 0, reservation, None)
            return offset + 1

        changes = build(reserve)
        if changes:
            for record in changes.catalog:
                self.catalog.append(record)
                self._append(topics.catalog, 0, str(record.id).encode(), record.to_bytes())
            for env in changes.control:
                self.control.append(env)
                partition = env.partition
                if partition is None:
                    partition = partition_for((env.key or "").encode(), topics.partitions)
                key = None if env.key is None else env.key.encode()
                self._append(topics.control, partition, key, env.message.to_bytes())
            for item in changes.log:
                self.api_log.append(item)
                self._append(topics.api_log, 0, item.key, item.to_bytes())
        self._apply()

    def log(self, record: ApiLogRecord, *, timeout_s: float | None = None, wait: bool = True) -> None:
        """Applied at once, `wait` or not (the broker and feeder are in-memory here)."""
        self._check()
        topics = self._require_topics()
        self._pending = []
        self.api_log.append(record)
        self._append(topics.api_log, 0, record.key, record.to_bytes())
        self._apply()

    def _apply(self) -> None:
        assert self._store is not None
        batch = self._store.batch()
        for record in self._pending:
            fold = self._folds.get(record.topic)
            if fold is not None:
                fold(batch, record)
        batch.commit()
        self._pending = []

    def _require_topics(self) -> Topics:
        if self._topics is None:
            raise RuntimeError("MemoryPublisher is not attached to an api context")
        return self._topics

    def settle(self, timeout_s: float) -> bool:
        return True

    def dead_letter(self, key: bytes | None, letter: DeadLetter) -> None:
        self.dead_letters.append(letter)

    def close(self) -> None:
        return None

    def _check(self) -> None:
        if self.fail:
            raise PublishError("Kafka is unavailable (test)")
