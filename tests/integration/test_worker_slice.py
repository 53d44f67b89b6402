"""Thin slice: one PostHog event reaches the person record in the worker's RocksDB table."""

from __future__ import annotations

import pytest

from stream.state.codec import decode
from stream.state.record import SOURCE_EVENTS
from tests.integration.worker_harness import TopicReader, produce, start_worker

pytestmark = pytest.mark.kafka


def test_an_event_changes_the_person_record(make_topics, make_settings, tmp_path):
    """Scenario: a worker runs; one event for person p1 of team 7 is produced; the table's changelog
    (the replica of the RocksDB table) gets a known record for `7:p1` that applied the event."""
    topics = make_topics(partitions=2)
    settings = make_settings(topics, tmp_path)
    worker = start_worker(settings, tmp_path)
    try:
        event = {
            "uuid": "u1",
            "event": "$pageview",
            "properties": "{}",
            "timestamp": "2025-01-01 10:00:00.000000",
            "team_id": 7,
            "distinct_id": "d1",
            "person_id": "p1",
            "created_at": "2025-01-01 10:00:00.000000",
        }
        produce(settings.bootstrap, topics.events, [(b"u1", event)])
        changelog = TopicReader(settings.bootstrap, f"{topics.prefix}cohorts-worker-persons-changelog")
        try:
            messages = changelog.wait_for(lambda ms: any(k == b"7:p1" for k, _ in ms), timeout_s=60)
        finally:
            changelog.close()
        record = decode(next(v for k, v in messages if k == b"7:p1"))
        assert record.known
        assert record.applied == {(SOURCE_EVENTS, 0): 0} or record.applied == {(SOURCE_EVENTS, 1): 0}
    finally:
        worker.stop()
