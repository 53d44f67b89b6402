"""The worker's start-up check of its topics (design §3: co-partitioning is fixed at creation).

Creates what is missing (the specs of `cohorts topics create`, via `infra.kafka_admin`) and refuses
to start when an existing topic, or the person table's changelog, has a partition count other than
configured: keys would silently land on the wrong partition otherwise.

The changelog is created here too, before faust starts, rather than by faust: faust would create it
with replication factor 1 whatever the cluster's default, and on a fresh cluster its agents could
start before the new topic was in their metadata (a `PartitionsMismatch` that stalled folding for
minutes). Created here, it gets the cluster's default replication factor and is visible, leaders
elected, before the worker subscribes.
"""

from __future__ import annotations

from confluent_kafka import KafkaException

from cohorts.settings import Settings
from cohorts.topics import Topics, TopicSpec
from infra.kafka_admin import TopicMismatchError, admin_client, ensure_topics, existing_partitions

__all__ = ["TopicMismatchError", "changelog_topic", "check_topics"]


def changelog_topic(settings: Settings) -> str:
    """faust's changelog of the person table: `{app id}-persons-changelog`."""
    return f"{settings.topic_prefix}cohorts-worker-persons-changelog"


def check_topics(settings: Settings, timeout_s: float = 30.0) -> None:
    """Verify the changelog's partition count, then create or verify every service topic and the changelog."""
    try:
        existing = existing_partitions(admin_client(settings.bootstrap), timeout_s=min(timeout_s, 10.0))
    except KafkaException as exc:
        raise ConnectionError(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from exc
    changelog = changelog_topic(settings)
    if changelog in existing and existing[changelog] != settings.partitions:
        raise TopicMismatchError(
            f"refusing to start: COHORTS_PARTITIONS={settings.partitions} but {changelog} has "
            f"{existing[changelog]} partitions (partition counts are fixed at creation)"
        )
    changelog_spec = TopicSpec(changelog, settings.partitions, {"cleanup.policy": "compact"}, co_partitioned=True)
    specs = [*Topics(settings.topic_prefix, settings.partitions).specs(), changelog_spec]
    try:
        ensure_topics(settings.bootstrap, specs, timeout_s)
    except TopicMismatchError as exc:
        raise TopicMismatchError(f"refusing to start: {exc}") from exc
