"""`cohorts tail` prints membership changes from the real topic."""

from __future__ import annotations

import pytest

from cli.producer import json_producer, produce_json
from cli.tail import format_change, tail_changes
from cohorts.wire import MembershipChange

pytestmark = pytest.mark.kafka


def test_format_change_marks_entries_and_exits() -> None:
    entered = MembershipChange(2, 7, "p-1", "entered", "2026-01-01T00:00:00.000000Z", 3)
    left = MembershipChange(2, 7, "p-1", "left", "2026-01-01T00:00:01.000000Z", 3)
    assert "+ entered" in format_change(entered) and "cohort 7" in format_change(entered)
    assert "- left" in format_change(left) and "v3" in format_change(left)


def test_tail_prints_changes_from_the_topic_and_survives_garbage(kafka_bootstrap, make_topics, make_settings, tmp_path):
    topics = make_topics(partitions=2)
    change = MembershipChange(2, 7, "p-1", "entered", "2026-01-01T00:00:00.000000Z", 1)
    producer = json_producer(kafka_bootstrap)
    produce_json(producer, topics.membership_changed, "p-1", change.to_dict())
    producer.produce(topics.membership_changed, key=b"p-1", value=b"not json")
    producer.flush(10)
    lines: list[str] = []
    printed = tail_changes(
        make_settings(topics, tmp_path), from_beginning=True, limit=2, idle_timeout_s=20, echo=lines.append
    )
    assert printed == 2
    assert lines[0] == format_change(change)
    assert lines[1].startswith("(unreadable message")
