"""`render_status`: the text of `cohorts status`, from a status dict (no broker)."""

from __future__ import annotations

from typing import Any

from cli.status import render_status, worker_group
from cli.tail import format_change
from cohorts.settings import Settings
from cohorts.topics import Topics
from cohorts.wire import MembershipChange
from stream.app import worker_app_id


def _status(**overrides: Any) -> dict[str, Any]:
    topics = Topics(prefix="p_", partitions=4)
    status: dict[str, Any] = {
        "bootstrap": "kafka:9092",
        "topic_prefix": "p_",
        "topics": [
            {
                "name": s.name,
                "partitions": s.partitions,
                "expected_partitions": s.partitions,
                "compacted": s.config.get("cleanup.policy") == "compact",
                "messages": 0,
            }
            for s in topics.specs()
        ],
        "worker_groups": [
            {
                "group": "p_cohorts-worker-ingest",
                "state": "stable",
                "members": 2,
                "lag": 1234,
                "topics": [{"name": topics.events, "lag": 1234, "partitions_committed": 4, "partitions": 4}],
            },
            {
                "group": "p_cohorts-worker",
                "state": "stable",
                "members": 2,
                "lag": 0,
                "topics": [{"name": topics.control, "lag": 0, "partitions_committed": 4, "partitions": 4}],
            },
        ],
        "catalog": {"cohorts": 12, "deleted": 3},
        "recent_flips": [],
        "unreadable_messages": 0,
    }
    status.update(overrides)
    return status


def test_healthy_deployment_reads_ok_with_lag_and_catalog_count() -> None:
    text = render_status(_status())
    lines = text.splitlines()
    assert lines[0] == "Kafka kafka:9092  prefix p_"
    assert lines[1] == "OK"
    assert "Worker group p_cohorts-worker-ingest: stable, 2 members, lag 1,234" in text
    assert "Worker group p_cohorts-worker: stable, 2 members, lag 0" in text
    assert "Catalog: 12 cohorts (3 deleted)" in text
    assert "Membership flips: none yet" in text
    assert all(line == line.rstrip() for line in lines)


def test_compacted_catalog_topic_is_marked_and_counts_are_singular() -> None:
    status = _status()
    catalog_row = next(t for t in status["topics"] if t["name"] == "p_cohort_catalog")
    catalog_row["messages"] = 1
    line = next(line for line in render_status(status).splitlines() if "p_cohort_catalog" in line)
    assert "1 partition " in line and "1 message " in line and line.endswith("compacted")


def test_missing_topic_and_partition_mismatch_are_called_out_first() -> None:
    status = _status()
    status["topics"][0].update(partitions=None, messages=None)
    status["topics"][3].update(partitions=8)
    text = render_status(status)
    verdict = text.splitlines()[1]
    assert verdict.startswith("ATTENTION: ")
    assert "topic missing: p_clickhouse_events_json" in verdict
    assert "partition mismatch: p_cohort_person_inputs" in verdict
    assert "MISSING (run `cohorts topics create`)" in text
    assert "MISMATCH: configured 4" in text


def test_group_without_members_says_no_worker_runs_and_uncommitted_partitions_are_noted() -> None:
    worker = {
        "group": "p_cohorts-worker",
        "state": "dead",
        "members": 0,
        "lag": 5,
        "topics": [{"name": "p_cohort_control", "lag": 5, "partitions_committed": 0, "partitions": 4}],
    }
    ingest = {**worker, "group": "p_cohorts-worker-ingest", "lag": 0, "topics": []}
    text = render_status(_status(worker_groups=[ingest, worker]))
    assert "no worker running" in text.splitlines()[1]
    assert "dead, no members (no worker running), lag 5" in text
    assert "(nothing committed yet)" in text


def test_last_flips_use_the_tail_line_format_in_order() -> None:
    flips = [
        MembershipChange(1, 7, "a", "entered", "2026-01-01T00:00:00.000000Z", 2),
        MembershipChange(1, 7, "b", "left", "2026-01-01T00:00:01.000000Z", 2),
    ]
    text = render_status(_status(recent_flips=[f.to_dict() for f in flips]))
    lines = text.splitlines()
    start = lines.index("Last 2 membership flips")
    assert lines[start + 1 : start + 3] == [f"  {format_change(f)}" for f in flips]


def test_one_flip_is_singular_and_unreadable_messages_are_reported() -> None:
    flip = MembershipChange(1, 7, "a", "entered", "2026-01-01T00:00:00.000000Z", 2)
    text = render_status(_status(recent_flips=[flip.to_dict()], unreadable_messages=2))
    assert "Last 1 membership flip" in text.splitlines()
    assert "Unreadable messages skipped: 2" in text
    assert "unreadable messages" in text.splitlines()[1]


def test_empty_prefix_is_not_shown() -> None:
    assert render_status(_status(topic_prefix="")).splitlines()[0] == "Kafka kafka:9092"


def test_worker_group_is_the_worker_app_id() -> None:
    """Status reads the group the worker really joins (its faust app id), whatever the prefix."""
    settings = Settings(kafka_bootstrap="127.0.0.1:1", topic_prefix="staging.")
    assert worker_group(settings) == worker_app_id(settings) == "staging.cohorts-worker"


def test_each_worker_topic_is_committed_by_exactly_one_group() -> None:
    """The PostHog inputs by ingest's group, the re-keyed inputs by the fold's, control by faust's,
    the catalog by the announcer's; outputs by none. The fold's group has no members: faust's read
    for it."""
    topics = Topics(prefix="staging.")
    groups = topics.worker_groups()
    assert groups == {
        "staging.cohorts-worker-ingest": [topics.events, topics.persons, topics.distinct_ids],
        "staging.cohorts-worker-fold": [topics.person_inputs],
        "staging.cohorts-worker": [topics.control],
        "staging.cohorts-worker-announce": [topics.catalog],
    }
    assert topics.followed_groups() == {"staging.cohorts-worker-fold": "staging.cohorts-worker"}
