"""The worker's start-up topic check against a real broker: it creates the changelog itself."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import ConfigResource

from cohorts.settings import Settings
from cohorts.topics import Topics
from infra.kafka_admin import admin_client, existing_partitions
from stream.topology import TopicMismatchError, changelog_topic, check_topics

pytestmark = pytest.mark.kafka


def test_check_topics_creates_every_topic_and_a_compacted_changelog(kafka_bootstrap: str, tmp_path: Path):
    """Scenario: a fresh prefix; before faust starts, the changelog exists with the configured
    partitions, compacted, so faust never races its own topic creation."""
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=f"c{uuid.uuid4().hex[:8]}_", partitions=3,
                        data_dir=tmp_path)  # fmt: skip
    check_topics(settings)
    admin = admin_client(kafka_bootstrap)
    existing = existing_partitions(admin)
    changelog = changelog_topic(settings)
    assert existing[changelog] == 3
    for spec in Topics(settings.topic_prefix, 3).specs():
        assert existing[spec.name] == spec.partitions
    [config] = admin.describe_configs([ConfigResource("topic", changelog)]).values()
    assert config.result()["cleanup.policy"].value == "compact"
    check_topics(settings)  # a second start finds everything in place


def test_a_changelog_with_another_partition_count_stops_the_start(kafka_bootstrap: str, tmp_path: Path):
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=f"c{uuid.uuid4().hex[:8]}_", partitions=3,
                        data_dir=tmp_path)  # fmt: skip
    check_topics(settings)
    with pytest.raises(TopicMismatchError, match="persons-changelog has 3 partitions"):
        check_topics(settings.model_copy(update={"partitions": 4}))
