"""Two workers in one consumer group: co-partitioned assignment, and a survivor taking over.

Scenario: two worker processes (separate data directories) share 4 partitions; persons spread over
all partitions get their flips; one worker stops; the survivor restores the stopped worker's
partitions from the table changelog and keeps counting from the held state: a second event makes a
person reach ">= 2 pageviews", which needs the first event counted before the handover.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from cohorts.settings import Settings
from cohorts.timestamps import parse_timestamp
from cohorts.topics import Topics, partition_for, person_key
from infra.kafka_admin import ensure_topics
from tests.integration.worker_harness import (
    TopicReader,
    finished_reports,
    members,
    posthog_event,
    produce,
    start_worker,
)
from tests.unit.stream.cohort_records import group, performed_multiple, record

pytestmark = pytest.mark.kafka

NOW = parse_timestamp("2025-01-15 12:00:00")
DAY = 86_400_000_000
PARTITIONS = 4


def test_a_surviving_worker_takes_over_partitions_with_their_state(kafka_bootstrap: str, tmp_path: Path):
    topics = Topics(prefix=f"g{uuid.uuid4().hex[:10]}_", partitions=PARTITIONS)
    ensure_topics(kafka_bootstrap, topics.specs())

    def settings(name: str) -> Settings:
        return Settings(
            kafka_bootstrap=kafka_bootstrap,
            topic_prefix=topics.prefix,
            partitions=PARTITIONS,
            data_dir=tmp_path / name,
        )

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = start_worker(settings("a"), tmp_path / "a", now_us=NOW, tick_interval_s=2)
    second = start_worker(settings("b"), tmp_path / "b", now_us=NOW, tick_interval_s=2)
    flips = TopicReader(kafka_bootstrap, topics.membership_changed)
    reports = TopicReader(kafka_bootstrap, topics.calculation_reports)
    try:
        produce(
            kafka_bootstrap, topics.catalog, [(b"1", record(1, group(performed_multiple("$pageview", "gte", 2, 7))))]
        )
        reports.wait_for(lambda ms: len(finished_reports(ms, 1, 1)) == PARTITIONS, 60)
        # One person per partition, so both workers hold state.
        persons: dict[int, str] = {}
        n = 0
        while len(persons) < PARTITIONS:
            person_id = f"user{n}"
            persons.setdefault(partition_for(person_key(1, person_id).encode(), PARTITIONS), person_id)
            n += 1
        ids = sorted(persons.values())
        produce(
            kafka_bootstrap,
            topics.events,
            [(f"{p}-1".encode(), posthog_event(1, p, "$pageview", NOW - DAY)) for p in ids]
            + [(f"{p}-2".encode(), posthog_event(1, p, "$pageview", NOW - DAY // 2)) for p in ids[:2]],
        )
        flips.wait_for(lambda ms: members(ms, 1).get(1, set()) == set(ids[:2]), 60)
        for worker in (first, second):
            assert worker.process.poll() is None, worker.log()[-3000:]
        folded = [_folded(worker.web_port, topics.person_inputs) for worker in (first, second)]
        assert all(count > 0 for count in folded), f"both workers should hold partitions: {folded}"
        second.stop()
        produce(
            kafka_bootstrap,
            topics.events,
            [(f"{p}-3".encode(), posthog_event(1, p, "$pageview", NOW - DAY // 3)) for p in ids[2:]],
        )
        flips.wait_for(lambda ms: members(ms, 1).get(1, set()) == set(ids), 90)
        assert first.process.poll() is None, first.log()[-3000:]
    finally:
        flips.close()
        reports.close()
        second.stop()
        first.stop()


def _folded(web_port: int, topic: str) -> float:
    for _ in range(20):
        try:
            text = httpx.get(f"http://127.0.0.1:{web_port}/metrics", timeout=5).text
            break
        except httpx.TransportError:
            time.sleep(0.5)
    else:
        raise AssertionError(f"no metrics on port {web_port}")
    prefix = f'cohorts_worker_messages_in_total{{topic="{topic}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))
