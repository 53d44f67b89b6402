"""The API read benchmark's data set: cohorts, persons and memberships, produced to the api's topics.

Owns the deterministic layout (`ApiDataset`, `members_of`) and `produce_dataset`, which writes it
to the topics an api process consumes, in the shapes the worker and PostHog write them:

- `cohort_catalog`: one `CatalogRecord` per cohort (ids 1..cohorts, version 1, dynamic), the
  filters taken in turn from `bench.ingest.benchmark_cohorts` (139 distinct definitions, so
  `condition_type` and `filters` render as varied real cohorts do);
- `clickhouse_person` and `clickhouse_person_distinct_id`: one person record and one distinct id
  per person, PostHog's formats;
- `cohort_membership_changed`: one `entered` `MembershipChange` per membership;
- `cohort_calculation_reports`: one finished report per cohort and partition, so every cohort
  shows a completed calculation and its `count`.

Why through Kafka: the api builds its views only by folding these topics (design §2), so the
preload goes through the same feeder, folds and RocksDB layout the read paths then read; nothing
is written into the api's store from outside.

Invariants: the same sizes give the same bytes; a cohort's members are distinct persons; every
person record exists before the load starts (the run waits for the api to apply everything).
Nothing here connects at import.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from confluent_kafka import Producer

from bench.ingest import benchmark_cohorts
from cli.demo_data import clickhouse_time
from cohorts.topics import Topics
from cohorts.wire import CalculationReport, CatalogRecord, MembershipChange

__all__ = ["ApiDataset", "members_of", "person_id", "produce_dataset"]

#: Fixed instant the data set is stamped at (2025-06-01T00:00:00Z), so the bytes never change.
BASE_US = 1_748_736_000_000_000
_PERSON_NAMESPACE = uuid.UUID("6c1f4a8e-2f0b-4a5e-9c33-0d1b2e3f4a5b")
#: Consecutive cohorts start their member ranges this many persons apart (a prime, so ranges of
#: neighbouring cohorts overlap only partly and every person belongs to several cohorts).
_STRIDE = 7_919


@dataclass(frozen=True, slots=True)
class ApiDataset:
    """`cohorts` cohorts of team `team_id` sharing `members` memberships over `persons` persons."""

    team_id: int
    cohorts: int
    members: int
    persons: int

    @property
    def per_cohort(self) -> int:
        return self.members // self.cohorts


def person_id(index: int) -> str:
    """The uuid of person `index` (stable across runs)."""
    return str(uuid.uuid5(_PERSON_NAMESPACE, str(index)))


def members_of(cohort_index: int, per_cohort: int, persons: int) -> range:
    """Person indexes of cohort `cohort_index` (0-based): `per_cohort` consecutive persons,
    wrapping around, starting `_STRIDE` further for each cohort. Distinct while
    `per_cohort <= persons`."""
    if per_cohort > persons:
        raise ValueError(f"{per_cohort} members per cohort need at least as many persons, not {persons}")
    start = (cohort_index * _STRIDE) % persons
    return range(start, start + per_cohort)


def _messages(data: ApiDataset, topics: Topics) -> Iterator[tuple[str, bytes | None, bytes, int | None]]:
    """(topic, key, value, partition) of every record, catalog first, reports last."""
    templates = benchmark_cohorts(data.team_id, 139)
    for index in range(data.cohorts):
        template = templates[index % len(templates)]
        record = CatalogRecord(
            id=index + 1,
            team_id=data.team_id,
            version=1,
            name=f"{template.name} #{index + 1}",
            filters=template.filters,
            created_at_us=BASE_US + index * 1_000_000,
        )
        yield topics.catalog, str(record.id).encode(), record.to_bytes(), 0
    for index in range(data.persons):
        pid = person_id(index)
        created_us = BASE_US - (data.persons - index) * 1_000_000
        properties = {"email": f"user{index}@example.com", "name": f"User {index}", "plan": ("free", "pro")[index % 2]}
        person = {
            "id": pid,
            "team_id": data.team_id,
            "properties": orjson.dumps(properties).decode(),
            "is_identified": 1,
            "is_deleted": 0,
            "version": 1,
            "created_at": clickhouse_time(created_us),
        }
        yield topics.persons, pid.encode(), orjson.dumps(person), None
        distinct = {"team_id": data.team_id, "distinct_id": f"user-{index}", "person_id": pid, "version": 1}
        yield topics.distinct_ids, f"user-{index}".encode(), orjson.dumps(distinct), None
    stamp = clickhouse_time(BASE_US)
    for index in range(data.cohorts):
        for member in members_of(index, data.per_cohort, data.persons):
            pid = person_id(member % data.persons)
            change = MembershipChange(data.team_id, index + 1, pid, "entered", stamp, 1)
            yield topics.membership_changed, pid.encode(), change.to_bytes(), None
    partitions = topics.partitions
    for index in range(data.cohorts):
        for partition in range(partitions):
            share = data.per_cohort // partitions + (1 if partition < data.per_cohort % partitions else 0)
            report = CalculationReport(data.team_id, index + 1, 1, partition, stamp, stamp, share)
            yield topics.calculation_reports, str(index + 1).encode(), report.to_bytes(), partition


def produce_dataset(bootstrap: str, topics: Topics, data: ApiDataset) -> tuple[int, float]:
    """Produce the data set; returns (messages, seconds). Raises RuntimeError if any delivery failed."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",  # Kafka's Java partitioner, as PostHog and the worker key
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
            "enable.idempotence": True,
        }
    )
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    started = time.monotonic()
    sent = 0
    for topic, key, value, partition in _messages(data, topics):
        kwargs = {} if partition is None else {"partition": partition}
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=on_delivery, **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
        sent += 1
        if sent % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(300)
    seconds = time.monotonic() - started
    if remaining or failures:
        raise RuntimeError(f"preload: {remaining} undelivered, {len(failures)} failed (first: {failures[:1]})")
    return sent, seconds
