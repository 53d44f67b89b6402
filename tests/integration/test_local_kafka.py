"""The project's own broker and topic administration, against the real local Kafka."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer

from cohorts.topics import Topics, TopicSpec, partition_for
from infra.kafka_admin import TopicMismatchError, admin_client, ensure_topics, existing_partitions

pytestmark = pytest.mark.kafka


def test_every_topic_is_created_with_its_partition_count(kafka_bootstrap, make_topics) -> None:
    topics = make_topics(partitions=3)
    counts = existing_partitions(admin_client(kafka_bootstrap))
    for spec in topics.specs():
        assert counts[spec.name] == spec.partitions
    assert counts[topics.catalog] == 1
    assert counts[topics.control] == 3


def test_ensure_topics_is_idempotent_and_refuses_a_partition_mismatch(kafka_bootstrap, make_topics) -> None:
    """Scenario: topics exist with 3 partitions; asking again for 3 creates nothing, asking for 5 fails loudly."""
    topics = make_topics(partitions=3)
    assert ensure_topics(kafka_bootstrap, topics.specs()) == []
    wrong = Topics(prefix=topics.prefix, partitions=5)
    with pytest.raises(TopicMismatchError, match="has 3 partitions, configured 5"):
        ensure_topics(kafka_bootstrap, wrong.specs())


def test_confluent_producer_with_murmur2_lands_keys_where_the_java_partitioner_would(kafka_bootstrap) -> None:
    """Scenario: keys produced with partitioner murmur2_random land on `partition_for(key)` (design §3)."""
    name = "t_murmur2_check"
    ensure_topics(kafka_bootstrap, [TopicSpec(name, 8)])
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    landed: dict[str, int] = {}

    def on_delivery(err, msg) -> None:
        assert err is None
        landed[msg.key().decode()] = msg.partition()

    keys = [f"2:{i:04d}-person" for i in range(50)]
    for key in keys:
        producer.produce(name, key=key.encode(), value=b"{}", on_delivery=on_delivery)
    producer.flush(10)
    assert landed == {key: partition_for(key.encode(), 8) for key in keys}


def test_a_message_round_trips_through_the_broker(kafka_bootstrap, make_topics) -> None:
    topics = make_topics(partitions=2)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topics.events, key=b"k", value=b'{"hello": 1}')
    producer.flush(10)
    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": topics.prefix + "g", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topics.events])
    try:
        message = None
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                break
        assert message is not None and message.value() == b'{"hello": 1}'
    finally:
        consumer.close()
