"""A confluent-kafka producer configured the one way this project needs (design §3).

`partitioner: murmur2_random` so keys land where the Java clients and aiokafka put them.
"""

from __future__ import annotations

import logging

import orjson
from confluent_kafka import Producer

__all__ = ["json_producer", "produce_json"]


def json_producer(bootstrap: str, **extra: object) -> Producer:
    logger = logging.getLogger("cohorts.producer.librdkafka")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())
    config = {
        "bootstrap.servers": bootstrap,
        "partitioner": "murmur2_random",
        "enable.idempotence": True,
        "linger.ms": 5,
        "logger": logger,
    }
    config.update(extra)
    return Producer(config)


def produce_json(producer: Producer, topic: str, key: str | None, value: object) -> None:
    """Queue one JSON message, serving delivery callbacks when the local queue is full."""
    payload = orjson.dumps(value)
    encoded_key = key.encode() if key is not None else None
    while True:
        try:
            producer.produce(topic, key=encoded_key, value=payload)
            return
        except BufferError:
            producer.poll(0.1)
