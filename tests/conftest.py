"""Session-wide fixtures: one real local Apache Kafka per test run, unique topics per test.

The broker is started once per session (or `COHORTS_KAFKA_BOOTSTRAP` is used when set) and
tests isolate themselves with unique topic prefixes rather than restarting it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli.local_kafka import LocalKafka, free_port
from cohorts.settings import Settings
from cohorts.topics import Topics
from infra.kafka_admin import ensure_topics


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`host:port` of a real broker: the configured cluster, else a local one started for this session."""
    configured = os.environ.get("COHORTS_KAFKA_BOOTSTRAP")
    if configured:
        yield configured
        return
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"), port=free_port())
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def make_topics(kafka_bootstrap: str) -> Callable[..., Topics]:
    """Factory: `make_topics(partitions=4)` -> Topics with a unique prefix, all created on the broker."""

    def factory(partitions: int = 4) -> Topics:
        topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}_", partitions=partitions)
        ensure_topics(kafka_bootstrap, topics.specs())
        return topics

    return factory


@pytest.fixture
def make_settings(kafka_bootstrap: str) -> Callable[..., Settings]:
    """Factory: `make_settings(topics, tmp_path, **overrides)` -> Settings for that broker and prefix."""

    def factory(topics: Topics, data_dir: Path, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "kafka_bootstrap": kafka_bootstrap,
            "topic_prefix": topics.prefix,
            "partitions": topics.partitions,
            "data_dir": data_dir,
        }
        values.update(overrides)
        return Settings(**values)

    return factory
