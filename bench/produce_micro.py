"""Microbenchmark: CPU per produced message, aiokafka (faust's producer) against confluent-kafka.

    COHORTS_KAFKA_BOOTSTRAP=127.0.0.1:9092 .venv/bin/python -m bench.produce_micro --messages 20000

Why the worker sends its flips and re-keyed inputs through librdkafka (stream/fast_producer.py):
both producers get the same flip-sized JSON values and person keys, idempotent, linger 5 ms, and
the process's CPU time (librdkafka's threads included) is divided by the message count. Each run
uses two fresh topics of 16 partitions and deletes them afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import orjson
from aiokafka import AIOKafkaProducer
from confluent_kafka import Producer

from bench.common import delete_prefixed_topics
from cohorts.topics import TopicSpec
from infra.kafka_admin import ensure_topics

VALUE = orjson.dumps(
    {"team_id": 1, "cohort_id": 5, "person_id": "p123456", "status": "entered",
     "last_updated": "2026-11-26T12:00:00.000000Z", "version": 1}
)  # fmt: skip


async def aiokafka_us(bootstrap: str, topic: str, messages: int) -> tuple[float, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=-1, enable_idempotence=True)
    await producer.start()
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        for n in range(messages):
            await producer.send(topic, VALUE, key=f"p{n % 5000}".encode())
        await producer.flush()
        return (time.process_time() - cpu) / messages * 1e6, (time.perf_counter() - wall) / messages * 1e6
    finally:
        await producer.stop()


def confluent_us(bootstrap: str, topic: str, messages: int) -> tuple[float, float]:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                         "enable.idempotence": True, "linger.ms": 5})  # fmt: skip
    cpu, wall = time.process_time(), time.perf_counter()
    for n in range(messages):
        while True:
            try:
                producer.produce(topic, VALUE, f"p{n % 5000}".encode())
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush()
    return (time.process_time() - cpu) / messages * 1e6, (time.perf_counter() - wall) / messages * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args(argv)
    bootstrap = os.environ.get("COHORTS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    prefix = f"bprod{uuid.uuid4().hex[:8]}_"
    topics = [f"{prefix}aiokafka", f"{prefix}confluent"]
    ensure_topics(bootstrap, [TopicSpec(name, 16) for name in topics])
    try:
        a_cpu, a_wall = asyncio.run(aiokafka_us(bootstrap, topics[0], args.messages))
        c_cpu, c_wall = confluent_us(bootstrap, topics[1], args.messages)
    finally:
        delete_prefixed_topics(bootstrap, prefix)
    print(f"{args.messages:,} messages; load average {os.getloadavg()}")
    print(f"aiokafka        {a_cpu:6.1f} µs CPU per message, {a_wall:6.1f} µs wall")
    print(f"confluent-kafka {c_cpu:6.1f} µs CPU per message, {c_wall:6.1f} µs wall")


if __name__ == "__main__":
    main()
