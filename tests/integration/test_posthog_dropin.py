"""PostHog drop-in: recorded-shape messages of PostHog's three topics are consumed as they are, and
what comes out on `cohort_membership_changed` has PostHog's shape (plus `version`).

Fixtures: tests/fixtures/posthog/*.jsonl (see the README there). The worker's clock is pinned to
2025-01-15 12:00 UTC, the day the fixtures were recorded for.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from cohorts.settings import Settings
from cohorts.timestamps import parse_timestamp
from cohorts.topics import Topics
from infra.kafka_admin import ensure_topics
from tests.integration.worker_harness import (
    TopicReader,
    WorkerProcess,
    finished_reports,
    members,
    produce,
    start_worker,
)
from tests.unit.stream.cohort_records import group, performed, person_prop, record

pytestmark = pytest.mark.kafka

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "posthog"
NOW = parse_timestamp("2025-01-15 12:00:00")
PARTITIONS = 2
ALICE, BOB, CAROL, DAVE = (
    "0194a1b2-0000-7000-8000-00000000a11c",
    "0194a1b2-0000-7000-8000-000000000b0b",
    "0194a1b2-0000-7000-8000-00000000ca01",
    "0194a1b2-0000-7000-8000-00000000da7e",
)
#: PostHog's `cohort_membership_changed` fields (reference §9.1) plus this service's `version`.
POSTHOG_CHANGE_FIELDS = {"team_id", "cohort_id", "person_id", "last_updated", "status", "version"}


def _lines(name: str) -> list[dict]:
    return [orjson.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


@pytest.fixture
def worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[Topics, WorkerProcess]]:
    topics = Topics(prefix=f"ph{uuid.uuid4().hex[:10]}_", partitions=PARTITIONS)
    ensure_topics(kafka_bootstrap, topics.specs())
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=topics.prefix, partitions=PARTITIONS, data_dir=tmp_path / "data"
    )
    process = start_worker(settings, tmp_path, now_us=NOW, tick_interval_s=1.0)
    try:
        yield topics, process
    finally:
        process.stop()


def test_posthog_topics_are_consumed_as_they_are(kafka_bootstrap: str, worker) -> None:
    """Scenario: four cohorts of team 42 exist; PostHog's person, distinct-id and event messages arrive
    unchanged. Alice's stale v2 (plan free) is ignored, Carol's tombstone removes her, Dave is known
    from an event alone, team 43's event touches nothing; nothing is dead-lettered."""
    topics, process = worker
    cohorts = {
        4201: group(person_prop("plan", "pro")),
        4202: group(performed("$pageview", 7)),
        4203: group(performed("checkout", 30)),
        4204: group(person_prop("plan", "pro", negation=True)),
    }
    for cohort_id, filters in cohorts.items():
        produce(kafka_bootstrap, topics.catalog, [(str(cohort_id).encode(), record(cohort_id, filters, team_id=42))])
    reports = TopicReader(kafka_bootstrap, topics.calculation_reports)
    flips = TopicReader(kafka_bootstrap, topics.membership_changed)
    dead = TopicReader(kafka_bootstrap, topics.dead_letters)
    try:
        reports.wait_for(lambda ms: all(len(finished_reports(ms, c, 1)) == PARTITIONS for c in cohorts), 60)
        produce(kafka_bootstrap, topics.persons, [(p["id"].encode(), p) for p in _lines("persons.jsonl")])
        produce(
            kafka_bootstrap, topics.distinct_ids, [(d["distinct_id"].encode(), d) for d in _lines("distinct_ids.jsonl")]
        )
        produce(kafka_bootstrap, topics.events, [(e["uuid"].encode(), e) for e in _lines("events.jsonl")])

        expected = {4201: {ALICE}, 4202: {ALICE, DAVE}, 4203: {BOB}, 4204: {BOB, DAVE}}
        flips.wait_for(lambda ms: {c: members(ms, 42).get(c, set()) for c in cohorts} == expected, 60)

        for key, value in flips.messages:
            change = orjson.loads(value)
            assert set(change) == POSTHOG_CHANGE_FIELDS
            assert key.decode() == change["person_id"]
            assert change["status"] in {"entered", "left"}
            assert parse_timestamp(change["last_updated"]) > 0
        assert members(flips.messages, 43) == {}
        dead.poll(2.0)
        assert dead.messages == [], process.log()[-2000:]
    finally:
        for reader in (reports, flips, dead):
            reader.close()
