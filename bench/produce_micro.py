"""Microbenchmark: CPU per produced message, aiokafka (faust's producer) against confluent-kafka,
and the worker's own producer with a delivery report per message against one per run of a key.

    .venv/bin/python -m bench.produce_micro --messages 20000
    .venv/bin/python -m bench.produce_micro --messages 400000 --run-length 21 --only-fast

Why the worker sends its flips and re-keyed inputs through librdkafka (stream/fast_producer.py):
both producers get the same flip-sized JSON values and person keys, idempotent, linger 5 ms, and
the process's CPU time (librdkafka's threads included) is divided by the message count.

Why a run of flips under one key asks for one delivery report (`FastProducer.send_run`): the
worker's `FastProducer` (its settings, linger 10 ms) sends the same messages once with `send`
(a report each) and once with `send_run` in runs of `--run-length` messages under one key (21:
the flips of a new person in benchmark 1), each followed by the flush a commit makes. The main
thread's CPU time per message is what the fold pays; librdkafka's own threads run beside it.

Each run uses fresh topics of 16 partitions and deletes them afterwards, on the cluster named by
`COHORTS_KAFKA_BOOTSTRAP` or else a local broker started for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from confluent_kafka import Producer

from bench.common import delete_prefixed_topics, local_broker
from cohorts.topics import TopicSpec
from infra.kafka_admin import ensure_topics
from stream.fast_producer import FastProducer
from stream.runtime import WorkerTuning

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


async def fast_producer_us(bootstrap: str, topic: str, messages: int, run_length: int) -> float:
    """Main-thread CPU µs per message through the worker's producer: `send` for each message when
    `run_length` is 1, else `send_run` in runs of that many under one key; a flush every 20,000."""
    producer = FastProducer(bootstrap, linger_ms=WorkerTuning().producer_linger_ms)
    keys = [f"p{n}".encode() for n in range(5000)]
    try:
        producer.send(topic, b"warm", VALUE)
        await producer.flush()
        cpu, sent = time.thread_time(), 0
        while sent < messages:
            key = keys[(sent // run_length) % len(keys)]
            if run_length == 1:
                producer.send(topic, key, VALUE)
            else:
                producer.send_run(topic, key, [VALUE] * run_length)
            sent += run_length
            if sent % 20_000 < run_length:
                await producer.flush()
        await producer.flush()
        return (time.thread_time() - cpu) / sent * 1e6
    finally:
        producer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--run-length", type=int, default=21, help="messages per key for send_run")
    parser.add_argument("--only-fast", action="store_true", help="only the worker's producer, both ways")
    args = parser.parse_args(argv)
    prefix = f"bprod{uuid.uuid4().hex[:8]}_"
    topics = [f"{prefix}aiokafka", f"{prefix}confluent", f"{prefix}send", f"{prefix}send_run"]
    configured = os.environ.get("COHORTS_KAFKA_BOOTSTRAP")
    with tempfile.TemporaryDirectory(prefix="produce-micro-") as work, local_broker(Path(work), configured) as b:
        ensure_topics(b.bootstrap, [TopicSpec(name, 16) for name in topics])
        try:
            if not args.only_fast:
                a_cpu, a_wall = asyncio.run(aiokafka_us(b.bootstrap, topics[0], args.messages))
                c_cpu, c_wall = confluent_us(b.bootstrap, topics[1], args.messages)
            each = asyncio.run(fast_producer_us(b.bootstrap, topics[2], args.messages, 1))
            runs = asyncio.run(fast_producer_us(b.bootstrap, topics[3], args.messages, args.run_length))
        finally:
            delete_prefixed_topics(b.bootstrap, prefix)
    print(f"{args.messages:,} messages; load average {os.getloadavg()}")
    if not args.only_fast:
        print(f"aiokafka        {a_cpu:6.1f} µs CPU per message, {a_wall:6.1f} µs wall")
        print(f"confluent-kafka {c_cpu:6.1f} µs CPU per message, {c_wall:6.1f} µs wall")
    label = f"FastProducer.send_run, runs of {args.run_length}"
    print(f"{'FastProducer.send':<34}{each:5.2f} µs main-thread CPU per message, each one reported")
    print(f"{label:<34}{runs:5.2f} µs main-thread CPU per message, the last of a run reported")


if __name__ == "__main__":
    main()
