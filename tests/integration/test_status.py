"""`cohorts status` data read from a real broker: topics, worker-group lag, catalog count, last flips."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from cli.producer import json_producer, produce_json
from cli.status import collect_status, render_status, worker_group
from cohorts.topics import Topics
from cohorts.wire import CatalogRecord, MembershipChange

pytestmark = pytest.mark.kafka


def _produce(bootstrap: str, records: list[tuple[str, str | None, object]]) -> None:
    producer = json_producer(bootstrap)
    for topic, key, value in records:
        if value is None:
            producer.produce(topic, key=key.encode() if key else None, value=None)
        else:
            produce_json(producer, topic, key, value)
    assert producer.flush(10) == 0


def _commit(bootstrap: str, group: str, offsets: list[TopicPartition]) -> None:
    """Commit offsets as the worker group would, without joining it (assign + synchronous commit)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def test_status_of_fresh_topics_is_empty(kafka_bootstrap, make_topics, make_settings, tmp_path) -> None:
    """Scenario: topics just created, nothing produced: zero messages, no lag, no cohorts, no flips."""
    topics = make_topics(partitions=2)
    status = collect_status(make_settings(topics, tmp_path))
    assert [t["partitions"] for t in status["topics"]] == [t.partitions for t in topics.specs()]
    assert all(t["messages"] == 0 for t in status["topics"])
    assert [(w["lag"], w["members"]) for w in status["worker_groups"]] == [(0, 0), (0, 0), (0, 0), (0, 0)]
    assert status["catalog"] == {"cohorts": 0, "deleted": 0}
    assert status["recent_flips"] == []
    assert "Membership flips: none yet" in render_status(status)


def test_status_counts_catalog_cohorts_and_shows_the_last_flips(
    kafka_bootstrap, make_topics, make_settings, tmp_path
) -> None:
    """Scenario: catalog holds cohort 1 (live), 2 (soft-deleted), 3 (tombstoned) and a reservation key;
    six flips spread over two partitions. Status shows 1 live + 1 deleted cohort and the 5 newest flips."""
    topics = make_topics(partitions=2)
    changes = [
        MembershipChange(7, 1, f"person-{i}", "entered" if i % 2 == 0 else "left", f"2026-01-01T00:00:0{i}.000000Z", 1)
        for i in range(6)
    ]
    catalog = [
        (topics.catalog, "reserve:abc", {"reserved": True}),
        (topics.catalog, "1", CatalogRecord(id=1, team_id=7, version=1, name="live").to_dict()),
        (topics.catalog, "2", CatalogRecord(id=2, team_id=7, version=2, deleted=True).to_dict()),
        (topics.catalog, "3", CatalogRecord(id=3, team_id=7, version=1).to_dict()),
        (topics.catalog, "3", None),
    ]
    _produce(kafka_bootstrap, catalog)
    for change in changes:  # one at a time, so broker timestamps order them
        _produce(kafka_bootstrap, [(topics.membership_changed, change.person_id, change.to_dict())])

    status = collect_status(make_settings(topics, tmp_path), flips=5)

    assert status["catalog"] == {"cohorts": 1, "deleted": 1}
    assert [flip["person_id"] for flip in status["recent_flips"]] == [f"person-{i}" for i in range(1, 6)]
    assert status["recent_flips"][-1] == changes[-1].to_dict()
    by_name = {t["name"]: t for t in status["topics"]}
    assert by_name[topics.membership_changed]["messages"] == 6
    assert by_name[topics.catalog]["compacted"] is True
    text = render_status(status)
    assert "Catalog: 1 cohort (1 deleted)" in text
    assert "person person-5" in text and "person person-0" not in text


def test_worker_group_lag_counts_from_committed_offsets(kafka_bootstrap, make_topics, make_settings, tmp_path) -> None:
    """Scenario: 10 events on partition 0 of the events topic; ingest's group committed offset 4 there.
    Lag = 6 on events; control has 3 messages and nothing committed by faust's group, so all 3 count;
    the fold's group committed 2 of 5 re-keyed inputs and is read by faust's group."""
    topics = make_topics(partitions=1)
    settings = make_settings(topics, tmp_path)
    _produce(kafka_bootstrap, [(topics.events, f"e{i}", {"i": i}) for i in range(10)])
    _produce(kafka_bootstrap, [(topics.control, "7:p", {"type": "tick"}) for _ in range(3)])
    _commit(kafka_bootstrap, topics.ingest_group, [TopicPartition(topics.events, 0, 4)])
    _commit(kafka_bootstrap, worker_group(settings), [TopicPartition(topics.events, 0, 9)])  # not its topic
    _produce(kafka_bootstrap, [(topics.person_inputs, "7:p", {"i": i}) for i in range(5)])
    _commit(kafka_bootstrap, topics.fold_group, [TopicPartition(topics.person_inputs, 0, 2)])

    ingest, fold, worker, announcer = collect_status(settings)["worker_groups"]

    assert (ingest["group"], worker["group"]) == (f"{topics.prefix}cohorts-worker-ingest", worker_group(settings))
    assert fold["group"] == f"{topics.prefix}cohorts-worker-fold"
    assert (announcer["group"], announcer["lag"]) == (f"{topics.prefix}cohorts-worker-announce", 0)
    assert (fold["state"], fold["lag"]) == (f"read by {worker_group(settings)}", 3)
    ingest_lag = {row["name"]: row for row in ingest["topics"]}
    lag = {row["name"]: row for row in worker["topics"]}
    assert ingest_lag[topics.events]["lag"] == 6 and ingest_lag[topics.events]["partitions_committed"] == 1
    assert topics.events not in lag
    assert lag[topics.control]["lag"] == 3 and lag[topics.control]["partitions_committed"] == 0
    assert topics.membership_changed not in lag | ingest_lag  # an output, not consumed by the worker
    assert (ingest["lag"], worker["lag"]) == (6, 3)


def test_status_reports_missing_topics_and_unreachable_kafka(kafka_bootstrap, make_settings, tmp_path) -> None:
    """Scenario: a prefix with no topics shows each as missing; a dead bootstrap is a ConnectionError."""
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}_", partitions=2)
    status = collect_status(make_settings(topics, tmp_path))
    assert all(t["partitions"] is None and t["messages"] is None for t in status["topics"])
    assert "MISSING" in render_status(status)
    with pytest.raises(ConnectionError, match="cannot reach Kafka"):
        collect_status(make_settings(topics, tmp_path, kafka_bootstrap="127.0.0.1:1"), timeout_s=2)
