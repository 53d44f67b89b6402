"""The worker's per-input outputs (flips, re-keyed inputs) through librdkafka, flushed before commits.

A flip costs one Kafka message, and a new person can flip dozens of cohorts at once. faust's
producer is aiokafka, running in the event loop: 20.6 µs of CPU per message (`bench.produce_micro`),
before faust's own wrapper. confluent-kafka queues a message in C and a librdkafka thread sends
it: 3.8 µs. So the messages one input causes go through this producer instead.

At-least-once is kept the way faust keeps it for its own producer: before committing offsets
faust awaits `app.producer.flush()`, and `attach` makes that flush also wait until every message
this producer accepted before the flush began is acknowledged by Kafka. A message that can never be
delivered makes the flush raise, so the offsets of the input that caused it are not committed.
Messages are never timed out locally (`message.timeout.ms=0`): through a broker outage they wait,
as the commit does. Keys land where Java and aiokafka put them (`partitioner: murmur2_random`).

Never: flush by waiting for an empty queue (agents keep producing, that would starve commits),
or block the event loop while waiting (delivery reports are served by `poll(0)` between sleeps).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import faust
from confluent_kafka import KafkaError, Producer

__all__ = ["FastProducer", "attach"]

#: How often a flush looks at delivery reports while it waits.
_FLUSH_POLL_S: Final[float] = 0.002


class DeliveryFailed(RuntimeError):
    """Kafka refused a message for good; the inputs that caused it must not be committed."""


class FastProducer:
    def __init__(self, bootstrap: str, **config: Any) -> None:
        logger = logging.getLogger("stream.fast_producer.librdkafka")
        settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "linger.ms": 2,
            "message.timeout.ms": 0,
            "logger": logger,
        }
        settings.update(config)
        self._producer = Producer(settings)
        self._sequence = 0
        #: Sequence numbers of the messages not yet acknowledged.
        self._outstanding: set[int] = set()
        self._failure: KafkaError | None = None

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Queue one message; Kafka acknowledges it later (see `flush`)."""
        self._sequence += 1
        number = self._sequence
        self._outstanding.add(number)

        def delivered(error: KafkaError | None, _message: Any) -> None:
            self._outstanding.discard(number)
            if error is not None and self._failure is None:
                self._failure = error

        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: serve delivery reports until it drains
                self._producer.poll(0.01)
        self._producer.poll(0)

    async def flush(self) -> None:
        """Wait until every message sent before this call is acknowledged; raise if one failed."""
        target = self._sequence
        outstanding = self._outstanding
        while True:
            self._producer.poll(0)
            if self._failure is not None:
                raise DeliveryFailed(f"Kafka refused a worker output: {self._failure}")
            if not outstanding or min(outstanding) > target:
                return
            await asyncio.sleep(_FLUSH_POLL_S)

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)


def attach(app: faust.App, fast: FastProducer) -> None:
    """Make faust's pre-commit flush also flush `fast` (call before the worker starts)."""
    producer = app.producer
    flush_faust = producer.flush

    async def flush() -> None:
        await flush_faust()
        await fast.flush()

    producer.flush = flush
