"""Creating and checking the service's topics on a cluster (design §3).

`ensure_topics` creates what is missing with the configured partition counts and configs and
fails loudly when an existing topic has a different partition count: co-partitioning silently
breaks otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from cohorts.topics import TopicSpec

__all__ = ["TopicMismatchError", "admin_client", "ensure_topics", "existing_partitions"]


class TopicMismatchError(RuntimeError):
    """An existing topic's partition count differs from the configured one."""


def admin_client(bootstrap: str) -> AdminClient:
    """An admin client whose librdkafka chatter (connection refused, retries) goes nowhere."""
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10_000, "logger": _quiet_logger()})


def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("cohorts.kafka_admin.librdkafka")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())
    return logger


def existing_partitions(admin: AdminClient, timeout_s: float = 10.0) -> dict[str, int]:
    """Partition count of every topic on the cluster; raises KafkaException when unreachable."""
    metadata = admin.list_topics(timeout=timeout_s)
    return {name: len(topic.partitions) for name, topic in metadata.topics.items() if not topic.error}


def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec], timeout_s: float = 30.0) -> list[str]:
    """Create missing topics, verify existing ones; returns the names created."""
    specs = list(specs)
    admin = admin_client(bootstrap)
    try:
        existing = existing_partitions(admin, timeout_s=min(timeout_s, 10.0))
    except KafkaException as exc:
        raise ConnectionError(f"cannot reach Kafka at {bootstrap}: {exc.args[0].str()}") from exc
    mismatched = [
        f"{spec.name} has {existing[spec.name]} partitions, configured {spec.partitions}"
        for spec in specs
        if spec.name in existing and existing[spec.name] != spec.partitions
    ]
    if mismatched:
        raise TopicMismatchError("partition count mismatch: " + "; ".join(mismatched))
    missing = [spec for spec in specs if spec.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(s.name, num_partitions=s.partitions, replication_factor=-1, config=s.config) for s in missing],
        operation_timeout=timeout_s,
    )
    for future in futures.values():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    _wait_visible(admin, [s.name for s in missing], timeout_s)
    return [s.name for s in missing]


def _wait_visible(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    """Metadata is eventually consistent: wait until every new topic has its leaders."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=5)
        ready = all(
            name in metadata.topics
            and not metadata.topics[name].error
            and all(p.leader >= 0 for p in metadata.topics[name].partitions.values())
            for name in names
        )
        if ready:
            return
        time.sleep(0.1)
    raise TimeoutError(f"topics not ready after {timeout_s}s: {', '.join(names)}")
